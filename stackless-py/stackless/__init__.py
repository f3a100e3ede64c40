"""Stackless Python's `stackless` module, in pure Python on `_continuation`.

Tasklets (`_tasklet.py`) run on continulets; each thread has its own main
tasklet and scheduler (`_scheduler.py`); channels (`_channel.py`) work within
and across threads; `run(timeout)` preempts (`_preempt.py`); the run-queue
order is a replaceable policy (`policies.py`); pickling lives in
`_pickling.py`. See README.md for what differs from Stackless and why.
"""
import threading

from . import _scheduler
from ._channel import channel
from ._preempt import Preemption
from ._scheduler import DEADLOCK, Watchdog, _local, hooks, state as _state  # noqa: F401 (DEADLOCK: public)
from ._tasklet import TaskletExit, atomic, bomb, tasklet
from .policies import Deadline, Priority, RoundRobin

__all__ = [
    "tasklet", "channel", "bomb", "atomic", "TaskletExit", "run", "schedule",
    "schedule_remove", "getcurrent", "getmain", "getcurrentid", "getruncount",
    "get_thread_info", "set_schedule_callback", "get_schedule_callback",
    "set_channel_callback", "get_channel_callback", "set_error_handler",
    "switch_trap", "enable_softswitch", "set_run_queue", "get_run_queue",
    "RoundRobin", "Priority", "Deadline",
]


def getcurrent():
    """The running tasklet of this thread."""
    return _state().current


def getmain():
    """The main tasklet of this thread."""
    return _state().main


def getcurrentid():
    return id(_state().current)


def getruncount():
    """Runnable tasklets of this thread, the current one included."""
    return _state().runcount()


def get_thread_info(thread_id=None):
    """(main, current, runcount) of a thread that uses stackless."""
    if thread_id is None or thread_id == threading.get_ident():
        s = _state()
    else:
        s = _scheduler.thread_state(thread_id)
        if s is None:
            raise ValueError("no stackless scheduler in thread %r" % (thread_id,))
    return s.main, s.current, s.runcount()


def schedule(retval=None):
    """Let the next runnable tasklet run; returns `retval` (default: current)."""
    try:
        s = _local.s
    except AttributeError:
        s = _state()
    cur = s.current
    if retval is None:
        retval = cur
    queue = s.queue
    if not (queue or s.incoming):
        return retval
    if s.trap:
        s.check_trap()
    queue.push(cur)
    cur._queued = True
    task = s.pop() if s.incoming else queue.pop()   # the policy may pick the caller again
    task._queued = False
    if task is cur:
        return retval
    cur.tempval = retval
    return s.switch(cur, task)


def schedule_remove(retval=None):
    """Like schedule(), but the caller leaves the run queue (it is paused)."""
    s = _state()
    cur = s.current
    s.check_trap()
    cur.tempval = cur if retval is None else retval
    return s.block(cur)


def run(timeout=0, threadblock=False, soft=False, ignore_nesting=False, totaltimeout=False):
    """Run the other tasklets until the run queue is empty; the caller waits aside.

    `timeout` > 0 preempts: a tasklet that runs `timeout` trace line events
    without switching is taken out of the queue and returned (see _preempt.py);
    with `totaltimeout` the count is for the whole run, with `soft` the run
    ends at the next switch instead. `threadblock` waits while tasklets of this
    thread are blocked on channels that other threads may serve.
    `ignore_nesting` is accepted: preemption never depends on C nesting here.
    """
    if not isinstance(timeout, int):     # Stackless: an int (it counts instructions)
        raise TypeError("run() argument 'timeout' must be int, not %s" % type(timeout).__name__)
    s = _state()
    cur = s.current
    if len(s.queue) or s.incoming:
        s.check_trap()
    watchdog = Watchdog(cur, threadblock)
    preempt = None
    if timeout > 0 and s.preempt is None:      # nested runs: the outermost timeout counts
        preempt = Preemption(s, watchdog, timeout, soft, totaltimeout)
    s.dequeue(cur)
    s.watchdogs.append(watchdog)
    if preempt is not None:
        preempt.install()
    try:
        while not (watchdog.interrupted or watchdog.stopped):
            task = s.runnable_after(cur)
            if task is cur:
                break
            s.switch(cur, task)
    finally:
        if preempt is not None:
            preempt.uninstall()
        s.watchdogs.remove(watchdog)
    return watchdog.interrupted


def _check_callable(func, what):
    # checked when set: a bad one would otherwise fail on a later switch, far from the cause
    if func is not None and not callable(func):
        raise TypeError("%s must be callable or None" % what)


def set_schedule_callback(callback):
    """`callback(prev, next)` on every switch; returns the previous one."""
    _check_callable(callback, "schedule callback")
    old, hooks.schedule = hooks.schedule, callback
    for s in _scheduler.all_threads():
        s.update_plain()
    return old


def get_schedule_callback():
    return hooks.schedule


def set_channel_callback(callback):
    """`callback(channel, tasklet, sending, willblock)` on every channel action."""
    _check_callable(callback, "channel callback")
    old, hooks.channel = hooks.channel, callback
    return old


def get_channel_callback():
    return hooks.channel


def set_error_handler(handler):
    """`handler(type, value, tb)` gets uncaught tasklet exceptions instead of run()."""
    _check_callable(handler, "error handler")
    old, hooks.error = hooks.error, handler
    return old


def get_error_handler():
    return hooks.error


def switch_trap(delta):
    """Add `delta` to this thread's trap level; while non-zero any switch
    raises RuntimeError. Returns the old level."""
    s = _state()
    old = s.trap
    s.trap += delta
    return old


def enable_softswitch(flag):
    """Always hard switching: returns False; asking for soft switching raises."""
    if flag:
        raise RuntimeError("soft switching is not available: this stackless always hard-switches")
    return False


_POLICY_METHODS = ("push", "push_next", "pop", "remove", "__contains__", "__iter__", "__len__")


def set_run_queue(policy):
    """Replace this thread's run-queue policy (see policies.py); returns the old one."""
    missing = [m for m in _POLICY_METHODS if not callable(getattr(policy, m, None))]
    if missing:
        raise TypeError("run-queue policy %r lacks %s (see stackless.policies)"
                        % (type(policy).__name__, ", ".join(missing)))
    s = _state()
    old = s.queue
    for task in list(old):
        old.remove(task)
        policy.push(task)
    s.queue = policy
    return old


def get_run_queue():
    return _state().queue


def __getattr__(name):
    """Stackless's module attributes: current, main, runcount, threads."""
    if name == "current":
        return getcurrent()
    if name == "main":
        return getmain()
    if name == "runcount":
        return getruncount()
    if name == "threads":
        # As Stackless: every thread of the interpreter, the main thread first, whether or
        # not it has used stackless yet.
        main_ident = threading.main_thread().ident
        idents = [main_ident] + [t.ident for t in threading.enumerate() if t.ident != main_ident]
        return idents + [s.ident for s in _scheduler.all_threads() if s.ident not in idents]
    raise AttributeError("module %r has no attribute %r" % (__name__, name))

