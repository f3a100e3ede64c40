"""One scheduler per thread: run queue, main and current tasklet, switching, waiting.

Switching follows PyPy's stackless.py: the main tasklet's container is an
unbound continulet, and a switch is `cur._cont.switch(to=target._cont)`.
While a tasklet runs, its continulet holds the suspended main continuation,
so a tasklet whose function ends returns to main unless `permute` hands that
return to the next tasklet instead.

Threads meet only here and in channels: one module lock guards every
cross-thread structure (channel queues, `incoming`, `waiting`); a thread with
nothing to run waits on its own condition (sharing that lock) until another
thread hands it a tasklet or the last thread that could do so ends.
"""
import sys
import threading
import time

import _continuation
from _continuation import permute

from .policies import RoundRobin

DEADLOCK = "Deadlock: the last runnable tasklet cannot be blocked."
bomb = None                    # stackless.bomb, set by _tasklet (which imports us)
release_blocked = None         # set by _channel (which imports us): see _ThreadEnd


class _NoCollectorThrows(BaseException):
    """Stands for ContinuletExit under a `_continuation` that has none (PyPy's)."""


ContinuletExit = getattr(_continuation, "ContinuletExit", _NoCollectorThrows)

lock = threading.Lock()
_threads = {}                  # ident -> _Thread, for threads that use stackless
_local = threading.local()
#: Foreign threads (never used stackless) cannot tell us when they end: while
#: one lives, a waiting thread re-checks for deadlock this often (seconds).
FOREIGN_RECHECK = 1.0


class hooks:
    """The process-wide callbacks (set through the module functions)."""
    schedule = None
    channel = None
    error = None


class Watchdog:
    """One `run()` call: its caller waits aside until the run queue is empty."""
    __slots__ = ("task", "threadblock", "interrupted", "stopped")

    def __init__(self, task, threadblock):
        self.task, self.threadblock = task, threadblock
        self.interrupted = None     # the tasklet preemption took out of the queue
        self.stopped = False        # a soft timeout ended the run


class _ThreadEnd:
    """Kept in thread-local storage, so it is dropped when its thread ends."""

    def __init__(self, s):
        # Own references: module globals may be gone at interpreter exit.
        self.s, self.lock, self.threads, self.release_blocked = s, lock, _threads, release_blocked

    def __del__(self):
        s = self.s
        with self.lock:
            s.alive = False
            self.threads.pop(s.ident, None)
            for other in self.threads.values():
                if other.waiting:
                    other.cond.notify()
        if s.nblocked:
            self.release_blocked(s)


class _Thread:
    """One thread's scheduler."""

    def __init__(self, tasklet_type):
        self.ident = threading.get_ident()
        self.alive = True
        self.queue = RoundRobin()   # runnable tasklets except the current one
        self.incoming = []          # made runnable by other threads, not yet queued
        self.cond = threading.Condition(lock)
        self.waiting = False
        self.trap = 0
        self.nblocked = 0           # tasklets of this thread blocked on channels
        self.watchdogs = []         # active run() calls, innermost last
        self.traced = False         # a tasklet got a trace or profile function: swap them
        self.preempt = None         # the active run(timeout) preemption, if any
        self.plain = True           # none of: a schedule callback, traced, preempt
        # While this is the only thread using stackless (solo), its channel operations
        # skip the lock; `busy` marks one in progress, so the next thread to register
        # can wait for it to end (see state()). Once a second thread came, always lock.
        self.solo = False
        self.busy = False
        self.starting = None        # an unstarted tasklet handed to main to start
        self.main = self.current = tasklet_type._new_main(self)
        self.update_plain()

    # -- the run queue --
    def push_remote(self, task):
        """Make `task` (of this thread) runnable from another thread."""
        with lock:
            self.incoming.append(task)
            task._queued = True
            self.cond.notify()

    def pop(self):
        """The next runnable tasklet, removed from the queue; None if there is none."""
        if self.incoming:
            with lock:
                incoming, self.incoming = self.incoming, []
            for task in incoming:
                self.queue.push(task)
        queue = self.queue
        if not queue:
            return None
        task = queue.pop()
        task._queued = False
        return task

    def enqueue(self, task):
        self.queue.push(task)
        task._queued = True

    def dequeue(self, task):
        """Take `task` out of the run queue if it is there."""
        if task._queued:
            if task in self.incoming:
                with lock:
                    self.incoming.remove(task)
            else:
                self.queue.remove(task)
            task._queued = False

    def runcount(self):
        return 1 + len(self.queue) + len(self.incoming)

    def wakeup_task(self):
        """Who runs when nothing else can: the innermost run() caller, else main."""
        return self.watchdogs[-1].task if self.watchdogs else self.main

    def update_plain(self):
        """Call after changing hooks.schedule, traced or preempt."""
        self.plain = hooks.schedule is None and not self.traced and self.preempt is None

    def check_trap(self):
        """Called before a path that would switch changes any state."""
        if self.trap:
            raise RuntimeError("switch_trap")

    # -- choosing and switching --
    def runnable_after(self, cur):
        """The tasklet to run now that `cur` is blocked, paused or finished.

        Waits for other threads while they could wake one of ours; raises the
        deadlock error when nothing here can ever run again.
        """
        while True:
            task = self.pop()
            if task is not None:
                return task
            wake = self.wakeup_task()
            threadblock = self.watchdogs and self.watchdogs[-1].threadblock and self.nblocked
            if wake._channel is None and not threadblock:
                return wake
            if not self.wait():
                if wake._channel is None:
                    return wake
                raise RuntimeError(DEADLOCK)

    def wait(self):
        """Sleep until another thread hands us a tasklet; False if none can."""
        with lock:
            while not self.incoming:
                foreign = _others_can_run(self)
                if foreign is None:
                    return False
                self.waiting = True
                try:
                    self.cond.wait(FOREIGN_RECHECK if foreign else None)
                finally:
                    self.waiting = False
        return True

    def _enter(self, cur, target):
        """Bookkeeping of every switch from `cur` to `target`."""
        cb = hooks.schedule
        if cb is not None:
            cb(cur, target)
        self.current = target
        if self.traced and self.preempt is None:
            cur._trace_function, cur._profile_function = sys.gettrace(), sys.getprofile()
            sys.settrace(target._trace_function)
            sys.setprofile(target._profile_function)
        if self.preempt is not None:
            self.preempt.entering(target)

    def switch(self, cur, target):
        """Suspend `cur` (queued, blocked or paused) and run `target`; returns
        the value `cur` is resumed with (its tempval; a bomb raises)."""
        if target is not cur:
            if self.plain:
                self.current = target
            else:
                if self.preempt is not None and self.preempt.stop:
                    target = self.preempt.soft_stop(cur, target)
                self._enter(cur, target)
            try:
                if cur is self.main:
                    self._from_main(target)
                elif target._cont is None:
                    self.starting = target
                    cur._cont.switch()          # to main, which starts it
                else:
                    cur._cont.switch(None, target._cont)    # to=, passed positionally: faster
            except ContinuletExit as exc:
                self._collected(cur, exc)
                raise
        value = cur.tempval
        if value is not None:
            cur.tempval = None
            if type(value) is bomb or isinstance(value, bomb):
                value.raise_()
        return value

    def _collected(self, cur, exc):
        """`cur` became garbage while suspended: the collector throws `exc` into it
        to run its finally blocks (as Stackless kills it). It runs as the current
        tasklet until `_bootstrap` hands back to the collector's."""
        if cur._channel is not None:
            # Its channel is garbage too (it held `cur`): no other thread sees it.
            cur._channel._queue.remove(cur)
            cur._channel._balance -= cur._blocked
            cur._channel = None
            self.nblocked -= 1
        exc.collector = self.current
        self.current = cur

    def block(self, cur):
        """`cur` is blocked or paused: run something else until it is resumed."""
        queue = self.queue
        if queue and not self.incoming:
            task = queue.pop()
            task._queued = False
            return self.switch(cur, task)
        return self.switch(cur, self.runnable_after(cur))

    def _from_main(self, target):
        """Main runs `target`, and starts every tasklet that is handed back to it.

        Starting each new tasklet from main links its bottom frame (f_back, as
        in PyPy) to main's frames, not to whichever tasklet scheduled it, so a
        frame chain or traceback never runs through another tasklet's frames.
        """
        while True:
            if target._cont is None:
                target._start()
            target._cont.switch()
            target = self.starting
            if target is None:
                return
            self.starting = None

    def finish(self, task, cont, error):
        """`task` ended (with `error` or None): route the return of its continulet."""
        if error is not None and hooks.error is not None:
            hooks.error(type(error), error, error.__traceback__)
            error = None
        if error is None:
            try:
                target = self.runnable_after(task)
            except RuntimeError as exc:
                error, target = exc, None
        if error is not None:
            target = self.wakeup_task()
            if target._channel is not None:
                target._channel._remove(target)
            else:
                self.dequeue(target)
            target.tempval = bomb(type(error), error, error.__traceback__)
        if self.preempt is not None and self.preempt.stop:
            target = self.preempt.soft_stop(task, target)
        self._enter(task, target)
        if target._cont is None:
            self.starting = target      # the return goes to main, which starts it
        elif target is not self.main:   # main's continuation is the default return
            permute(cont, target._cont)


def _others_can_run(s):
    """With `lock` held: None if no other thread could wake `s`; else whether
    one of them is foreign (cannot notify us when it ends)."""
    foreign = False
    possible = False
    for t in threading.enumerate():
        if t.ident == s.ident:
            continue
        other = _threads.get(t.ident)
        if other is None:
            foreign = possible = True
        elif not other.waiting or other.incoming:   # woken but not yet running counts
            possible = True
    return foreign if possible else None


def state():
    """This thread's scheduler, created on first use."""
    try:
        return _local.s
    except AttributeError:
        pass
    from ._tasklet import tasklet
    s = _local.s = _Thread(tasklet)
    _local.end = _ThreadEnd(s)
    with lock:
        _threads[s.ident] = s
        others = [o for o in _threads.values() if o is not s]
        s.solo = not others
        for o in others:
            o.solo = False
    for o in others:
        while o.busy:       # a channel operation it began without the lock
            time.sleep(0)
    s.update_plain()    # a schedule callback set while we registered
    return s


def thread_state(ident):
    return _threads.get(ident)


def all_threads():
    with lock:
        return list(_threads.values())
