"""Tasklets: a function run on its own continulet by its thread's scheduler."""
import builtins
import contextvars
import sys
import threading
from collections.abc import Iterable, Mapping

import _continuation
from _continuation import continulet

from . import _pickling, _scheduler
from ._scheduler import ContinuletExit, _local, state, thread_state

_HAS_TEALET = hasattr(_continuation, "get_frame")
# PyPy's _continuation has none: its collector keeps nothing on a continulet's stack.
_call_when_switchable = getattr(_continuation, "call_when_switchable", lambda func: func())


class TaskletExit(SystemExit):
    """Raised in a tasklet to kill it silently."""


builtins.TaskletExit = TaskletExit


class bomb:
    """Carries an exception to a tasklet; it is raised when the tasklet resumes."""

    def __init__(self, exp_type=None, exp_value=None, exp_traceback=None):
        if exp_type is None:
            exp_type, exp_value, exp_traceback = sys.exc_info()
        self.type, self.value, self.traceback = exp_type, exp_value, exp_traceback

    def raise_(self):
        value = self.value
        if not isinstance(value, BaseException):
            args = () if value is None else value if isinstance(value, tuple) else (value,)
            value = self.type(*args)
        raise value.with_traceback(self.traceback)

    def __reduce__(self):
        # Tracebacks do not pickle (until frame pickling).
        return type(self), (self.type, self.value, None)


_scheduler.bomb = bomb


def make_bomb(exc, val=None, tb=None):
    """A bomb with `raise` semantics: `exc` is a class or an instance."""
    if isinstance(exc, BaseException):
        if val is not None:
            raise TypeError("instance exception may not have a separate value")
        return bomb(type(exc), exc, tb if tb is not None else exc.__traceback__)
    if not (isinstance(exc, type) and issubclass(exc, BaseException)):
        raise TypeError("exceptions must be classes or instances deriving from BaseException")
    return bomb(exc, val, tb)


def _args_tuple(args):
    # a str is refused: PyPy's `tasklet(func, label)` would otherwise bind one argument per character
    if args is None:
        return ()
    if isinstance(args, (str, bytes, bytearray)) or not isinstance(args, Iterable):
        raise TypeError("tasklet args must be a tuple, not %s" % type(args).__name__)
    return tuple(args)


def class_bomb(exc_class, args, what):
    """A bomb of `exc_class(*args)`; `exc_class` must be an exception class."""
    if not (isinstance(exc_class, type) and issubclass(exc_class, BaseException)):
        raise TypeError("%s needs an exception class as first parameter, not %s"
                        % (what, type(exc_class).__name__))
    return bomb(exc_class, exc_class(*args))


_snapshot = (contextvars.Context(),)


def _shared_context():
    """A snapshot of the running context, as a 1-tuple shared by the tasklets bound in the
    same context (their variables hold the same objects): an unstarted tasklet only reads
    it, so it costs no Context of its own (64 B) until it starts or its context is used."""
    global _snapshot
    ctx = contextvars.copy_context()
    last = _snapshot[0]
    if len(ctx) != len(last) or any(last.get(var, last) is not value for var, value in ctx.items()):
        _snapshot = (ctx,)
    return _snapshot


def _bootstrap(cont, task, resume=None):
    """The body of every tasklet's continulet (`resume`: its frames, loaded from a pickle)."""
    s = task._thread
    error = None
    try:
        if resume is not None:
            resume(cont)
        else:
            task._resumed()     # an exception thrown before the first run
            # Plain calls where they fit: on 3.9-3.11 the binding shows the GC what a suspended
            # frame holds on its value stack only at plain calls, so the inputs of a `*args` call
            # stay hidden, and a garbage tasklet whose arguments lead back to it (a channel it
            # is blocked on) would never be collected.
            func, args = task.func, task._args
            if task._kwargs is not None or len(args) > 2:
                func(*args, **(task._kwargs or {}))
            elif not args:
                func()
            elif len(args) == 1:
                func(args[0])
            else:
                func(args[0], args[1])
    except TaskletExit:
        pass
    except BaseException as exc:
        if isinstance(exc, ContinuletExit):
            task._ended()   # collected as garbage: return to the collector
            s.current = getattr(exc, "collector", s.current)
            return None
        error = exc
    task._ended()
    s.finish(task, cont, error)
    return None


class tasklet:
    """A micro-thread: a function run on its own stack by the scheduler."""

    # Memory per tasklet is a Stackless promise: slots only for what every tasklet sets; the
    # rarely set fields are class defaults, stored in the instance __dict__ only once set.
    # `_cont` is the continulet from the first switch in until the tasklet ends (never for
    # an unstarted one); `_context` the Context it starts in, or a 1-tuple holding a snapshot
    # shared by the unstarted tasklets bound in the same context (see _shared_context).
    __slots__ = ("_thread", "_cont", "func", "_args", "_context", "_channel",
                 "_queued", "tempval", "__dict__", "__weakref__")
    _kwargs = None
    atomic = ignore_nesting = block_trap = False
    _trace_function = _profile_function = None

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        self._init(state(), None)
        return self

    @classmethod
    def _new_main(cls, thread):
        main = object.__new__(cls)
        main._init(thread, continulet.__new__(continulet))
        return main

    def _init(self, thread, cont):
        self._thread, self._cont = thread, cont
        self.func = self._args = None
        self._channel, self._queued = None, False
        self.tempval = None
        self._context = None        # bind() snapshots the binder's context

    def __init__(self, func=None, args=None, kwargs=None):
        if func is not None or args is not None or kwargs is not None:
            self.bind(func, args, kwargs)

    def __call__(self, *args, **kwargs):
        return self.setup(*args, **kwargs)

    def _start(self):
        self._cont = continulet(_bootstrap, self)
        if _HAS_TEALET:
            _continuation.set_context(self._get_context(), self._cont)

    def _ended(self):
        self.func = self._args = None
        if self._kwargs is not None:
            self._kwargs = None
        self._cont = None
        self.tempval = None

    def _resumed(self):
        value = self.tempval
        self.tempval = None
        if isinstance(value, bomb):
            value.raise_()
        return value

    # -- state --
    @property
    def alive(self):
        if self is self._thread.main:
            return self._thread.alive
        # A started one dies with its thread (its stack cannot run anywhere else).
        return self._args is not None and (self._cont is None or self._thread.alive)

    @property
    def _blocked(self):
        """1 sending, -1 receiving, 0 not blocked: the tasklets a channel holds all
        block the same way, the one its balance's sign says (no slot of its own)."""
        ch = self._channel
        return 0 if ch is None else 1 if ch._balance > 0 else -1

    blocked = _blocked
    is_main = property(lambda self: self is self._thread.main)
    is_current = property(lambda self: self is self._thread.current)
    thread_id = property(lambda self: self._thread.ident if self._thread.alive else -1)
    restorable = property(lambda self: _pickling.restorable(self))

    @property
    def nesting_level(self):
        """Always 0: Stackless counts C-level interpreter recursion because it
        limited soft switching and preemption; here every switch is a hard
        switch and neither depends on it (see README, "Honest values")."""
        return 0

    @property
    def cstate(self):
        """None: a tasklet's C stack is held by its continulet, not exposed."""
        return None

    @property
    def scheduled(self):
        s = self._thread
        return self._channel is not None or self._queued or self is s.current

    @property
    def paused(self):
        return self.alive and not self.scheduled

    def _chain(self):
        s = self._thread
        if self._channel is not None:
            return self._channel._waiting()
        if self is s.current or self._queued:
            return [s.current] + list(s.queue)
        return None

    @property
    def next(self):
        """The next tasklet in the run queue (cyclic) or channel queue; else None."""
        chain = self._chain()
        if chain is None:
            return None
        i = chain.index(self) + 1
        return chain[i % len(chain)] if self._channel is None or i < len(chain) else None

    @property
    def prev(self):
        chain = self._chain()
        if chain is None:
            return None
        i = chain.index(self)
        return chain[i - 1] if self._channel is None or i > 0 else None

    @property
    def frame(self):
        """The tasklet's innermost frame outside this package, or None."""
        s = self._thread
        if self is s.current and s is state():
            frame = sys._getframe(1)
        elif not _HAS_TEALET:
            return None
        elif self is s.main:
            # Main's continuation is held by the running tasklet's continulet.
            frame = _continuation.get_frame(s.current._cont) if s.current._cont else None
        elif self._cont is not None:
            frame = _continuation.get_frame(self._cont)
        else:
            return None
        while frame is not None and frame.f_globals.get("__package__") == __package__:
            frame = frame.f_back
        return frame

    @property
    def recursion_depth(self):
        """Number of Python frames of this tasklet (its own stack only)."""
        frame, depth = self.frame, 0
        while frame is not None and frame.f_code is not _bootstrap.__code__:
            depth += 1
            frame = frame.f_back
        return depth

    # -- tracing: per tasklet, swapped on every switch once one is set --
    def _get_hook(name, getter):
        def get(self):
            if self is self._thread.current and self._thread is state():
                return getter()
            return getattr(self, name)
        return get

    def _set_hook(name, setter):
        def set(self, func):
            s = self._thread
            if func is not None:
                s.traced = True
                s.update_plain()
            object.__setattr__(self, name, func)
            if self is s.current and s is state():
                setter(func)
        return set

    trace_function = property(_get_hook("_trace_function", sys.gettrace),
                              _set_hook("_trace_function", sys.settrace))
    profile_function = property(_get_hook("_profile_function", sys.getprofile),
                                _set_hook("_profile_function", sys.setprofile))
    del _get_hook, _set_hook

    # -- binding and queueing --
    def bind(self, func=None, args=None, kwargs=None):
        """Bind a function and optionally its arguments (then it is paused);
        bind() with no arguments unbinds a tasklet that is not running."""
        if func is not None and not callable(func):
            raise TypeError("tasklet function must be a callable")
        if self is self._thread.current:
            raise RuntimeError("cannot bind the current tasklet")
        if self.scheduled:
            raise RuntimeError("tasklet is scheduled")
        if self._cont is not None:
            raise RuntimeError("cannot bind a tasklet suspended mid-run: kill it first")
        if func is None and args is None and kwargs is None:
            self.func = self._args = None
            if self._kwargs is not None:
                self._kwargs = None
        else:
            if func is not None:
                self.func = func
                self._context = _shared_context()
            if args is not None or kwargs is not None:
                if self.func is None:
                    raise TypeError("tasklet function must be a callable")
                self._args = args if type(args) is tuple else _args_tuple(args)
                if kwargs is not None and not isinstance(kwargs, Mapping):
                    raise TypeError("tasklet kwargs must be a dict, not %s" % type(kwargs).__name__)
                if kwargs or self._kwargs is not None:
                    self._kwargs = dict(kwargs) if kwargs else None
        self._cont = None
        return self

    def setup(self, *args, **kwargs):
        """Bind the arguments and insert the tasklet into the run queue."""
        if self.alive:
            raise RuntimeError("tasklet is alive")
        if self.func is None:
            raise TypeError("tasklet function must be a callable")
        self.bind(None, args, kwargs)
        return self.insert()

    def insert(self):
        if not self.alive:
            raise RuntimeError("You cannot run an unbound(dead) tasklet")
        if self._channel is not None:
            raise RuntimeError("You cannot run a blocked tasklet")
        if not self.scheduled:
            s = self._thread
            if s is state():
                s.enqueue(self)
            else:
                s.push_remote(self)
        return self

    def remove(self):
        if self._channel is not None:
            raise RuntimeError("You cannot remove a blocked tasklet.")
        if self is self._thread.current:
            raise RuntimeError("The current tasklet cannot be removed.")
        self._thread.dequeue(self)
        return self

    def bind_thread(self, thread_id=None):
        """Move a tasklet that has no stack yet (unstarted, finished, or just
        unpickled) to another thread's scheduler."""
        if self._cont is not None:
            raise RuntimeError("cannot move a tasklet suspended mid-run to another thread")
        if self.scheduled:
            raise RuntimeError("tasklet is scheduled")
        s = state() if thread_id is None or thread_id == threading.get_ident() \
            else thread_state(thread_id)
        if s is None:
            raise ValueError("no stackless scheduler in thread %r" % (thread_id,))
        self._thread = s

    def _go(self, pause):
        """Run this tasklet now; the caller stays runnable (next) unless `pause`."""
        s = state()
        if self._thread is not s:
            raise RuntimeError("cannot switch to a tasklet of another thread")
        cur = s.current
        if self is cur:
            return
        if not self.alive:
            raise RuntimeError("You cannot run an unbound(dead) tasklet")
        if self._channel is not None:
            raise RuntimeError("You cannot run a blocked tasklet")
        s.check_trap()
        s.dequeue(self)
        if not pause:
            s.queue.push_next(cur)
            cur._queued = True
        s.switch(cur, self)

    def run(self):
        """Switch to this tasklet now; the caller runs next after it."""
        self._go(pause=False)

    def switch(self):
        """Switch to this tasklet now; the caller is paused (off the queue)."""
        self._go(pause=True)

    # -- exceptions --
    def throw(self, exc=None, val=None, tb=None, pending=False):
        """Raise like `raise exc`, in this tasklet; at once unless `pending`."""
        self._throw(make_bomb(exc if exc is not None else TaskletExit, val, tb), pending)

    def raise_exception(self, exc_class, *args):
        self._throw(class_bomb(exc_class, args, "tasklet.raise_exception"), False)

    def kill(self, pending=False):
        """Raise TaskletExit in the tasklet; a no-op if it is dead."""
        if self.alive:
            self._throw(bomb(TaskletExit, TaskletExit()), pending)

    def _throw(self, b, pending):
        if not self.alive:
            if issubclass(b.type, TaskletExit):
                return
            raise RuntimeError("You cannot throw to a dead tasklet")
        s = self._thread
        local = s is state()
        if self is s.current:
            if not local:
                # It runs now and cannot be interrupted; raising here would hit the caller.
                raise RuntimeError("cannot throw into a tasklet that is running in another thread")
            b.raise_()
        if not pending and local:
            s.check_trap()
        if self._channel is not None:
            self._channel._remove(self)
        if self._cont is None and issubclass(b.type, TaskletExit):
            # Killed before its first run: it dies without running.
            s.dequeue(self)
            self._ended()
            return
        self.tempval = b
        if pending or not local:
            self.insert()
        else:
            self.run()

    def __del__(self):
        # Garbage while suspended mid-run: kill it so its finally blocks run (after the
        # collection, if one runs on a tasklet's stack: no switch is allowed there). With
        # tealet this is the binding's C finalizer (below): only a tasklet whose continulet is
        # pending gets here.
        if self._cont is not None \
                and not self.scheduled and self._thread is getattr(_local, "s", None):
            _call_when_switchable(self.kill)

    # -- flags --
    def set_atomic(self, flag):
        old = self.atomic
        if bool(flag) != old:
            self.atomic = bool(flag)
        return old

    def set_ignore_nesting(self, flag):
        old = self.ignore_nesting
        if bool(flag) != old:
            self.ignore_nesting = bool(flag)
        return old

    # -- contextvars --
    def _get_context(self):
        ctx = self._context
        if ctx is None:
            ctx = self._context = contextvars.copy_context()
        elif type(ctx) is tuple:
            ctx = self._context = ctx[0].copy()     # its own from now on
        return ctx

    def set_context(self, context):
        if not isinstance(context, contextvars.Context):
            raise TypeError("context must be a contextvars.Context")
        self._context = context
        if _HAS_TEALET and self._cont is not None:
            is_current = self is self._thread.current
            if is_current or self is not self._thread.main:
                _continuation.set_context(context, None if is_current else self._cont)
        return self

    def context_run(self, callable, *args, **kwargs):
        """Call `callable` in this tasklet's context."""
        if self is self._thread.current:
            return callable(*args, **kwargs)
        return self._get_context().run(callable, *args, **kwargs)

    @property
    def context_id(self):
        if self is self._thread.current and _HAS_TEALET:
            contextvars.copy_context()  # makes the thread's context if it has none yet
            return id(_continuation.get_context())
        return id(self._get_context())

    # -- pickling (see _pickling.py) --
    def __reduce__(self):
        return _pickling.reduce_tasklet(self)

    def __setstate__(self, state_):
        _pickling.setstate_tasklet(self, state_)

    def __repr__(self):
        what = "main" if self.is_main else "dead" if not self.alive else \
            "blocked" if self._channel is not None else "scheduled" if self.scheduled else "paused"
        return "<%s.%s %s at %#x>" % (type(self).__module__, type(self).__qualname__, what, id(self))


if hasattr(_continuation, "pending_finalizer"):
    # As Stackless's C deallocator: a tasklet that is not suspended mid-run (unstarted, ended,
    # main) dies without a Python call, and tracers see only the killed tasklet's own code.
    tasklet.__del__ = _continuation.pending_finalizer(tasklet, tasklet._cont, tasklet.__del__)


class atomic:
    """`with atomic():` no preemption inside (and no involuntary switch)."""

    def __enter__(self):
        self.old = state().current.set_atomic(True)
        return self

    def __exit__(self, *exc):
        state().current.set_atomic(self.old)
