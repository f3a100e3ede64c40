"""Stackless Python's `stackless` module, in pure Python on `_continuation`.

Each thread has a main tasklet (the thread's own stack, an unbound continulet)
and a scheduler (`_Thread`). A switch is `current._cont.switch(to=target._cont)`:
while a bound tasklet runs, its continulet holds the suspended main
continuation, so a finishing tasklet simply returns to main (or, after
`permute`, to the next tasklet).
"""
import builtins
import contextvars
import sys
import threading

import _continuation
from _continuation import continulet, permute

from .policies import Deadline, Priority, RoundRobin

__all__ = [
    "tasklet", "channel", "bomb", "atomic", "TaskletExit", "run", "schedule",
    "schedule_remove", "getcurrent", "getmain", "getcurrentid", "getruncount",
    "get_thread_info", "set_schedule_callback", "get_schedule_callback",
    "set_channel_callback", "get_channel_callback", "set_error_handler",
    "switch_trap", "enable_softswitch", "set_run_queue", "RoundRobin",
    "Priority", "Deadline",
]

DEADLOCK = "Deadlock: the last runnable tasklet cannot be blocked."
_HAS_CONTEXT = hasattr(_continuation, "set_context")


class TaskletExit(SystemExit):
    """Raised in a tasklet to kill it silently."""


builtins.TaskletExit = TaskletExit


class bomb:
    """Carries an exception to a tasklet; it is raised when the tasklet resumes."""

    def __init__(self, exc_type=None, exc_value=None, exc_traceback=None):
        if exc_type is None:
            exc_type, exc_value, exc_traceback = sys.exc_info()
        self.type, self.value, self.traceback = exc_type, exc_value, exc_traceback

    def raise_(self):
        value = self.value
        if not isinstance(value, BaseException):
            value = self.type() if value is None else self.type(*(
                value if isinstance(value, tuple) else (value,)))
        raise value.with_traceback(self.traceback)

    def __reduce__(self):
        return bomb, (self.type, self.value, None)


def _make_bomb(exc, val=None, tb=None):
    if isinstance(exc, BaseException):
        if val is not None:
            raise TypeError("instance exception may not have a separate value")
        return bomb(type(exc), exc, tb)
    if not (isinstance(exc, type) and issubclass(exc, BaseException)):
        raise TypeError("exceptions must derive from BaseException")
    return bomb(exc, val, tb)


_schedule_cb = None
_channel_cb = None
_error_handler = None
_chan_lock = threading.Lock()
_threads = {}
_local = threading.local()


class _Thread:
    """One thread's scheduler: run queue, main and current tasklet."""

    def __init__(self):
        self.ident = threading.get_ident()
        self.queue = RoundRobin()
        self.incoming = []          # tasklets made runnable by other threads
        self.cond = threading.Condition(threading.Lock())
        self.trap = 0
        self.preempted = None
        self.main = self.current = object.__new__(tasklet)
        self.main._init(self, continulet.__new__(continulet))
        self.main._started = True
        _threads[self.ident] = self

    def alive(self):
        return any(t.ident == self.ident for t in threading.enumerate())

    def push(self, task):
        """Make `task` (of this thread) runnable, from any thread."""
        if self.ident == threading.get_ident():
            self.queue.push(task)
        else:
            with self.cond:
                self.incoming.append(task)
                self.cond.notify()

    def pop(self):
        if self.incoming:
            with self.cond:
                incoming, self.incoming = self.incoming, []
            for task in incoming:
                self.queue.push(task)
        return self.queue.pop()

    def wait(self):
        """Main is blocked and nothing is runnable: wait for another thread."""
        with self.cond:
            while not self.incoming:
                if threading.active_count() <= 1:
                    raise RuntimeError(DEADLOCK)
                self.cond.wait(0.05)
        return self.pop()

    def switch(self, cur, target):
        """Suspend `cur` (already queued, blocked or paused), resume `target`."""
        if self.trap:
            raise RuntimeError("switch_trap")
        if _schedule_cb is not None:
            _schedule_cb(cur, target)
        self.current = target
        if target._cont is None:
            target._start()
        if cur._trace or target._trace:
            sys.settrace(target.trace_function)
            sys.setprofile(target.profile_function)
        cur._cont.switch(to=target._cont)
        if cur is self.main:
            self._main_dispatch()
        return cur._resumed()

    def _main_dispatch(self):
        """Main is a trampoline: forward to the chosen tasklet, or wait."""
        main = self.main
        while True:
            if self.current is not main:
                target = self.current
                if target._cont is None:
                    target._start()
                target._cont.switch()
            elif main._blocked:
                try:
                    target = self.wait()
                except RuntimeError:
                    main._channel._unblock(main)
                    raise
                if target is not main:
                    self.current = target
            else:
                return

    def block(self, cur):
        """Switch away from `cur`, which is blocked or paused."""
        target = self.pop()
        if target is None:
            target = self.main
            if cur is target:
                self._main_dispatch()
                return cur._resumed()
        return self.switch(cur, target)


def _state():
    try:
        return _local.state
    except AttributeError:
        _local.state = _Thread()
        return _local.state


def _bootstrap(cont, task, resume=None):
    s = task._thread
    error = None
    try:
        if resume is not None:      # a tasklet loaded from a pickle mid-run (_pickling)
            resume(cont)
        else:
            task._resumed()
            task.func(*task._args, **task._kwargs)
    except TaskletExit:
        pass
    except BaseException as exc:
        error = exc
    task._finished = True
    task.func = task._args = task._kwargs = None
    task.tempval = None
    if error is not None:
        if _error_handler is not None:
            _error_handler(type(error), error, error.__traceback__)
        else:
            main = s.main
            if main._blocked:
                main._channel._unblock(main)
            elif main in s.queue:
                s.queue.remove(main)
            main.tempval = bomb(type(error), error, error.__traceback__)
            s.current = main
            return
    target = s.pop() or s.main
    s.current = target
    if target._cont is not None and target is not s.main:
        permute(cont, target._cont)


class tasklet:
    """A micro-thread: a function run on its own stack by the scheduler."""

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self._init(_state(), None)
        return self

    def _init(self, thread, cont):
        self._thread, self._cont = thread, cont
        self.func = self._args = self._kwargs = None
        self._started = self._finished = False
        self._blocked, self._channel, self._trace = 0, None, False
        self.tempval = None
        self.atomic = self.ignore_nesting = self.block_trap = False
        self.trace_function = self.profile_function = None
        self._context = contextvars.copy_context()

    def __init__(self, func=None, args=None, kwargs=None):
        if func is not None or args is not None or kwargs is not None:
            self.bind(func, args, kwargs)

    def __call__(self, *args, **kwargs):
        return self.setup(*args, **kwargs)

    def __setattr__(self, name, value):
        if name in ("trace_function", "profile_function") and value is not None:
            object.__setattr__(self, "_trace", True)
        object.__setattr__(self, name, value)

    def _start(self):
        self._started = True
        self._cont = continulet(_bootstrap, self)
        if _HAS_CONTEXT:
            _continuation.set_context(self._context, self._cont)

    def _resumed(self):
        value = self.tempval
        if isinstance(value, bomb):
            self.tempval = None
            value.raise_()
        return value

    # -- state --
    alive = property(lambda self: self is self._thread.main and self._thread.alive()
                     or self._args is not None and not self._finished)
    blocked = property(lambda self: self._blocked)
    is_main = property(lambda self: self is self._thread.main)
    is_current = property(lambda self: self is self._thread.current)
    restorable = property(lambda self: _pickling.restorable(self))
    thread_id = property(lambda self: self._thread.ident if self._thread.alive() else -1)
    #: Honest values for interpreter internals with no meaning here.
    nesting_level = property(lambda self: 0)
    recursion_depth = property(lambda self: 0)
    cstate = property(lambda self: None)

    @property
    def scheduled(self):
        s = self._thread
        return bool(self._blocked) or self is s.current or self in s.queue or self in s.incoming

    @property
    def paused(self):
        return self.alive and not self.scheduled

    @property
    def next(self):
        order = [self._thread.current] + list(self._thread.queue)
        return order[(order.index(self) + 1) % len(order)] if self in order else None

    @property
    def prev(self):
        order = [self._thread.current] + list(self._thread.queue)
        return order[order.index(self) - 1] if self in order else None

    @property
    def frame(self):
        """The suspended tasklet's top frame (tealet binding only), else None."""
        if self is self._thread.current:
            return sys._getframe(1)
        if self._cont is None or not _HAS_CONTEXT or self is self._thread.main:
            return None
        return _continuation.get_frame(self._cont)

    # -- binding and queueing --
    def bind(self, func=None, args=None, kwargs=None):
        if func is not None and not callable(func):
            raise TypeError("tasklet function must be a callable")
        if self is self._thread.current or self.scheduled:
            raise RuntimeError("tasklet is scheduled")
        if self._started and not self._finished:
            raise RuntimeError("cannot bind a tasklet that is suspended mid-run")
        if func is None and args is None and kwargs is None:
            self.func = self._args = self._kwargs = None
        else:
            if func is not None:
                self.func = func
            if args is not None or kwargs is not None:
                self._args, self._kwargs = tuple(args or ()), dict(kwargs or {})
        self._started = self._finished = False
        self._cont = None
        return self

    def setup(self, *args, **kwargs):
        if self.alive:
            raise RuntimeError("tasklet is alive")
        if self.func is None:
            raise TypeError("tasklet function must be a callable")
        self.bind(None, args, kwargs)
        return self.insert()

    def insert(self):
        if not self.alive:
            raise RuntimeError("You cannot run an unbound(dead) tasklet")
        if self._blocked:
            raise RuntimeError("You cannot run a blocked tasklet")
        if not self.scheduled:
            self._thread.push(self)
        return self

    def remove(self):
        if self._blocked:
            raise RuntimeError("You cannot remove a blocked tasklet.")
        if self is self._thread.current:
            raise RuntimeError("The current tasklet cannot be removed.")
        if self in self._thread.queue:
            self._thread.queue.remove(self)
        return self

    def bind_thread(self, thread_id=None):
        if self._started and not self._finished:
            raise RuntimeError("cannot move a started tasklet to another thread")
        if self.scheduled:
            raise RuntimeError("tasklet is scheduled")
        ident = threading.get_ident() if thread_id is None else thread_id
        if ident not in _threads:
            if ident != threading.get_ident():
                raise ValueError("no stackless scheduler in thread %r" % ident)
            _state()
        self._thread = _threads[ident]

    def _go(self, pause):
        """Run this tasklet now; the caller stays runnable unless `pause`."""
        s = _state()
        cur = s.current
        if self._thread is not s:
            raise RuntimeError("cannot switch to a tasklet of another thread")
        if self is cur:
            return
        self.insert()
        s.queue.remove(self)
        if not pause:
            s.queue.push_next(cur)
        s.switch(cur, self)

    def run(self):
        self._go(pause=False)

    def switch(self):
        self._go(pause=True)

    # -- exceptions --
    def throw(self, exc=None, val=None, tb=None, pending=False):
        self._throw(_make_bomb(exc, val, tb), pending)

    def raise_exception(self, exc, *args):
        self._throw(bomb(exc, exc(*args)), False)

    def kill(self, pending=False):
        if self.alive:
            self._throw(bomb(TaskletExit, TaskletExit()), pending)

    def _throw(self, b, pending):
        if not self.alive:
            if issubclass(b.type, TaskletExit):
                return
            raise RuntimeError("You cannot throw to a dead tasklet")
        if self is self._thread.current:
            b.raise_()
        if self._blocked:
            self._channel._unblock(self)
        self.tempval = b
        if pending or self._thread is not _state():
            self.insert()
        else:
            self.run()

    def __del__(self):
        if self._started and not self._finished and self._cont is not None \
                and not self.scheduled and self._thread is getattr(_local, "state", None):
            self.kill()

    # -- flags --
    def set_atomic(self, flag):
        old, self.atomic = self.atomic, bool(flag)
        return old

    def set_ignore_nesting(self, flag):
        old, self.ignore_nesting = self.ignore_nesting, bool(flag)
        return old

    # -- contextvars --
    def set_context(self, context):
        if not isinstance(context, contextvars.Context):
            raise TypeError("context must be a contextvars.Context")
        self._context = context
        if _HAS_CONTEXT and self._cont is not None and self._started:
            _continuation.set_context(context, None if self.is_current else self._cont)
        return self

    def context_run(self, callable, *args, **kwargs):
        return self._context.run(callable, *args, **kwargs)

    @property
    def context_id(self):
        return id(self._context)

    # -- pickling, also of tasklets suspended mid-run (see _pickling) --
    def __reduce__(self):
        return _pickling.reduce_tasklet(self)

    def __setstate__(self, state):
        _pickling.setstate_tasklet(self, state)

    def __repr__(self):
        return "<tasklet %s%s>" % (
            "main" if self.is_main else hex(id(self)),
            " dead" if not self.alive else " blocked" if self._blocked else "")


class channel:
    """Synchronous rendezvous between tasklets, also across threads."""

    def __init__(self):
        self._queue = []            # blocked (tasklet, value); all send or all receive
        self.balance = 0
        self.preference = -1
        self.schedule_all = False
        self.closing = False

    closed = property(lambda self: self.closing and self.balance == 0)
    queue = property(lambda self: self._queue[0][0] if self._queue else None)

    def close(self):
        self.closing = True

    def open(self):
        self.closing = False

    def _unblock(self, task):
        """Take a blocked `task` off this channel (kill, throw, deadlock)."""
        with _chan_lock:
            for i, (t, _) in enumerate(self._queue):
                if t is task:
                    del self._queue[i]
                    self.balance -= task._blocked
                    break
            task._blocked, task._channel = 0, None

    def _action(self, direction, value):
        """Send (direction 1) or receive (-1); return the received value."""
        s = _state()
        cur = s.current
        with _chan_lock:
            if self.balance * direction < 0:
                partner, sent = self._queue.pop(0)
                self.balance += direction
                partner._blocked, partner._channel = 0, None
            else:
                partner = None
                if self.closing:
                    raise ValueError("Send/receive operation on a closed channel")
                if cur.block_trap:
                    raise RuntimeError("this tasklet does not like to be blocked.")
                if cur is s.main and not len(s.queue) and not s.incoming \
                        and threading.active_count() <= 1:
                    raise RuntimeError(DEADLOCK)
                self._queue.append((cur, value))
                self.balance += direction
                cur._blocked, cur._channel = direction, self
        if _channel_cb is not None:
            _channel_cb(self, cur, direction > 0, partner is None)
        if partner is None:
            cur.tempval = None
            try:
                return s.block(cur)
            except RuntimeError:
                if cur._blocked:
                    self._unblock(cur)
                raise
        if direction > 0:
            partner.tempval = value
            result = None
        else:
            result = sent
        if partner._thread is not s:
            partner._thread.push(partner)
        elif self.schedule_all or self.preference == 0:
            s.queue.push(partner)
            if self.schedule_all:
                s.queue.push(cur)
                s.block(cur)
        elif self.preference == -direction:    # the partner is preferred
            s.queue.push(cur)
            s.switch(cur, partner)
        else:
            s.queue.push(partner)
        if isinstance(result, bomb):
            result.raise_()
        return result

    def send(self, value):
        self._action(1, value)

    def receive(self):
        return self._action(-1, None)

    def send_exception(self, exc, *args):
        self._action(1, bomb(exc, exc(*args)))

    def send_throw(self, exc, val=None, tb=None):
        self._action(1, _make_bomb(exc, val, tb))

    def send_sequence(self, seq):
        count = 0
        for item in seq:
            self.send(item)
            count += 1
        return count

    def __iter__(self):
        return self

    def __next__(self):
        if self.closed:
            raise StopIteration
        try:
            return self.receive()
        except ValueError:
            if self.closed:
                raise StopIteration from None
            raise

    def __reduce__(self):
        flags = (self.preference, self.schedule_all, self.closing)
        return type(self), (), (self.balance, flags, list(self._queue))

    def __setstate__(self, state):
        self.balance, (self.preference, self.schedule_all, self.closing), queue = state
        self._queue = list(queue)
        for task, _ in self._queue:
            task._blocked, task._channel = 1 if self.balance > 0 else -1, self


# -- module functions --

def getcurrent():
    return _state().current


def getmain():
    return _state().main


def getcurrentid():
    return id(_state().current)


def getruncount():
    s = _state()
    return 1 + len(s.queue) + len(s.incoming)


def get_thread_info(thread_id=None):
    s = _state() if thread_id is None else _threads.get(thread_id)
    if s is None:
        raise ValueError("no stackless scheduler in thread %r" % thread_id)
    return s.main, s.current, 1 + len(s.queue) + len(s.incoming)


def schedule(retval=None):
    s = _state()
    cur = s.current
    cur.tempval = cur if retval is None else retval
    s.queue.push(cur)
    target = s.pop()
    if target is not cur:
        s.switch(cur, target)
    value, cur.tempval = cur.tempval, None
    return value


def schedule_remove(retval=None):
    s = _state()
    cur = s.current
    cur.tempval = cur if retval is None else retval
    s.block(cur)
    value, cur.tempval = cur.tempval, None
    return value


def run(timeout=0, threadblock=False, soft=False, ignore_nesting=False, totaltimeout=False):
    """Run the scheduler until only the caller is left (see README for timeout)."""
    s = _state()
    cur = s.current
    if timeout <= 0:
        while s.queue or s.incoming or threadblock and _others_blocked(s):
            if not (s.queue or s.incoming):
                s.queue.push(s.wait())
            schedule()
        return None
    return _Preempt(s, timeout, soft, ignore_nesting, totaltimeout).run(cur)


def _others_blocked(s):
    return threading.active_count() > 1 and any(
        t._blocked for t in list(_blocked_tasks(s)))


def _blocked_tasks(s):
    import gc
    return (o for o in gc.get_objects() if isinstance(o, tasklet) and o._thread is s)


class _Preempt:
    """run(timeout): count trace events; past the budget, park the tasklet."""

    def __init__(self, s, timeout, soft, ignore_nesting, total):
        self.s, self.timeout, self.soft = s, timeout, soft
        self.ignore_nesting, self.total, self.ticks = ignore_nesting, total, 0
        self.last = None

    def trace(self, frame, event, arg):
        s = self.s
        cur = s.current
        if cur is s.main or cur is not self.last:
            self.last = cur
            if not self.total:
                self.ticks = 0
            return self.trace
        self.ticks += 1
        if self.ticks >= self.timeout and not cur.atomic:
            self.ticks = 0
            s.preempted = cur
            if s.main in s.queue:
                s.queue.remove(s.main)
            s.switch(cur, s.main)
        return self.trace

    def run(self, cur):
        s = self.s
        old = sys.gettrace()
        sys.settrace(self.trace)
        try:
            while s.queue or s.incoming:
                schedule()
                if s.preempted is not None:
                    task, s.preempted = s.preempted, None
                    return task
        finally:
            sys.settrace(old)
        return None


class atomic:
    """`with atomic():` no preemption and no involuntary thread switch inside."""

    def __enter__(self):
        self.old = getcurrent().set_atomic(True)
        return self

    def __exit__(self, *exc):
        getcurrent().set_atomic(self.old)


def set_schedule_callback(callback):
    global _schedule_cb
    old, _schedule_cb = _schedule_cb, callback
    return old


def get_schedule_callback():
    return _schedule_cb


def set_channel_callback(callback):
    global _channel_cb
    old, _channel_cb = _channel_cb, callback
    return old


def get_channel_callback():
    return _channel_cb


def set_error_handler(handler):
    global _error_handler
    old, _error_handler = _error_handler, handler
    return old


def switch_trap(delta):
    s = _state()
    old = s.trap
    s.trap += delta
    return old


def enable_softswitch(flag):
    """Hard switching only: always False; asking for True raises."""
    if flag:
        raise RuntimeError("soft switching is not available: this stackless hard-switches")
    return False


def set_run_queue(policy):
    """Replace this thread's run-queue policy; returns the old one."""
    s = _state()
    old = s.queue
    for task in list(old):
        old.remove(task)
        policy.push(task)
    s.queue = policy
    return old


from . import _pickling  # noqa: E402  (it uses the names above)
