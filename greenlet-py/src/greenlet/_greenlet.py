"""greenlet on top of _continuation: each started greenlet owns a continulet (`_Cont`).

The main greenlet of a thread has an unbound continulet. While a bound greenlet runs, its
continulet holds the suspended main greenlet's continuation (every switch is
``continulet.switch(current's, args, to=target's)``, which keeps it that way), so when ``run``
returns or raises the result always lands in the main greenlet's pending switch. There the
switcher notices that the greenlet marked as current is not main and forwards the result to the
finished greenlet's parent. ``run`` is called straight from the binding (all C, see `_Cont`), so
no frame of ours sits under it and its ``f_back`` is None, as in greenlet.

The continulet is a separate object from the greenlet: a suspended greenlet's own switch frame
holds its continulet (the container of that switch), never the greenlet, so dropping the last
reference to a suspended greenlet frees it at once and its ``__del__`` throws GreenletExit in.

Per-thread state lives in a ``_ThreadState``; ``ts.current`` is set by the switcher to the
greenlet it resumes, so the resumed side sees whether a plain switch or a finish woke it.

``switch`` and ``throw`` are ``_continuation.hidden_method``s: sys.setprofile sees each call as
one C call, as greenlet's, and sys.settrace none of our frames; user callbacks called from there
(settrace functions, ``run`` behind an entry frame of ours) go through ``call_visible``.
"""
import os
import sys
import threading
import weakref
from contextvars import Context
from functools import partial, wraps
from types import TracebackType
from _thread import _local
from _thread import get_ident as _get_ident
from _thread import RLock as _RLock

import _continuation

__version__ = "3.5.6"

GREENLET_USE_GC = 1  # ints, as greenlet's
GREENLET_USE_TRACING = 1
GREENLET_USE_CONTEXT_VARS = 1
GREENLET_USE_STANDARD_THREADING = 1
CLOCKS_PER_SEC = 1000000

_continulet = _continuation.continulet
_get_frame = _continuation.get_frame
_get_context = _continuation.get_context
_set_context = _continuation.set_context
_stack_used = _continuation.stack_used
_hidden_method = _continuation.hidden_method
_call_visible = _continuation.call_visible
_call_when_switchable = _continuation.call_when_switchable
# Called unbound: only `switch` has a descriptor of _Cont's own type, which 3.11+ specialize.
_cont_throw = _continulet.throw


class _Cont(_continulet):
    """The continulet of one greenlet: its callable is the greenlet's run, called with the
    first switch's arguments and without the continulet (``pass_continulet``), so nothing on
    the C stack holds the continulet."""
    __slots__ = ("gr",)  # weak proxy of its greenlet (`gr._gr_self()` is the greenlet)
    pass_continulet = False
    # A greenlet's run frame has f_back None (greenlet's), not PyPy's link to the switcher.
    detach_frames = True
    # The greenlet's __del__ throws GreenletExit; the continulet must not throw its own
    # ContinuletExit (a C-level no-op replaces the binding's finalizer, and the binding then
    # calls no finalizer at all).
    __del__ = _continulet.is_pending


class GreenletExit(BaseException):
    """This special exception does not propagate to the parent greenlet; it
    can be used to kill a single greenlet."""
    __module__ = "greenlet"  # as greenlet's: reprs, tracebacks and pickles name greenlet.GreenletExit


class error(Exception):
    """Usage error of the greenlet module."""
    __module__ = "greenlet"


class _ThreadState:
    """Everything greenlet keeps per thread."""
    __slots__ = ("current", "origin", "main", "trace", "deleteme", "alive", "ident", "lock", "fast",
                 "__weakref__")

    def __init__(self):
        self.current = self.origin = self.main = self.trace = None
        self.deleteme = []
        self.alive = True
        self.ident = _get_ident()
        # Made by open_fast(), at the thread's first switch: eventlet.monkey_patch() logs every
        # RLock that exists then ("N RLock(s) were not greened"), after it has called
        # getcurrent() and made its hub greenlet, but before anything switches.
        self.lock = None
        self.fast = _CLOSED

    def open_fast(self):
        self.lock = _RLock()
        self.lock.acquire()  # held by this thread for its life, never released
        self.update_fast()

    def update_fast(self):
        """`fast` is the RLock this thread holds while switches may take the fast path (no
        trace function, nothing queued to kill, thread alive, has switched), else _CLOSED;
        so ``fast._is_owned()`` checks the calling thread and all four in one C method call,
        cheaper than comparing ``get_ident()`` (a generic call and a big-int compare)."""
        fast = self.alive and self.trace is None and not self.deleteme and self.lock is not None
        self.fast = self.lock if fast else _CLOSED


class _ThreadDeath:
    """Stored in the thread-local; its finalizer runs when the thread's locals are dropped."""
    __slots__ = ("ts",)

    def __init__(self, ts):
        self.ts = ts

    def __del__(self):
        global _total_main_greenlets, _recent
        ts = self.ts
        ts.alive = False
        _total_main_greenlets -= 1
        # Greenlets of a dead thread cannot run again; they read as dead.
        ts.current = ts.origin = ts.trace = None
        ts.deleteme.clear()
        ts.update_fast()
        if _recent is ts:
            _recent = _NO_TS


_weak_proxy = weakref.proxy  # cheaper to make than a weakref.ref (no type call)
_weakref_count = weakref.getweakrefcount


class _Closed:
    """`fast` of a thread state whose fast path is closed: owned by no thread. Not an RLock
    that nobody holds: eventlet.monkey_patch() would replace one found in this module's
    globals by a Python RLock, and log it."""
    __slots__ = ()
    _is_owned = staticmethod(bool)  # bool() is False, in one C call


_CLOSED = _Closed()
# A thread state of no thread: `fast` is _CLOSED.
_NO_TS = _ThreadState.__new__(_ThreadState)
_NO_TS.fast = _CLOSED
# The thread state looked up last. ``_recent.fast._is_owned()`` (one C call) tells whether it is
# the calling thread's and its fast path is open, much cheaper than the thread-local lookup.
_recent = _NO_TS
_tls = _local()
_total_main_greenlets = 0
_thread_states = weakref.WeakSet()
_leaked = []  # greenlets GreenletExit did not kill: kept alive on purpose, like greenlet does


def _thread_state():
    global _recent
    try:
        ts = _tls.ts
    except AttributeError:
        ts = _new_thread_state()
    if ts.deleteme:
        _clear_deleteme(ts)
    _recent = ts
    return ts


def _opened_thread_state():
    """_thread_state() for switching or throwing: opens the thread's fast path."""
    ts = _thread_state()
    if ts.lock is None:
        ts.open_fast()
    return ts


def _new_thread_state():
    global _total_main_greenlets
    _tls.ts = ts = _ThreadState()
    main = object.__new__(greenlet)
    greenlet.__init__(main)  # parent: ts.current, None
    main._gr_main = main._gr_started = True
    main._gr_ts = ts
    # Unbound: a switch `to=` it is a plain switch of the running greenlet's continulet.
    main._gr_c = c = _Cont.__new__(_Cont)
    c.gr = main._gr_proxy
    ts.main = ts.current = main
    _tls.death = _ThreadDeath(ts)
    _thread_states.add(ts)
    _total_main_greenlets += 1
    return ts




def _clear_deleteme(ts):
    pending, ts.deleteme = ts.deleteme, []
    ts.update_fast()
    for g in pending:
        _call_when_switchable(g._kill_garbage, ts)


def getcurrent():
    """Returns the current greenlet (i.e. the one which called this function)."""
    if sys.is_finalizing():
        raise RuntimeError("greenlet is being finalized")
    ts = _recent
    return (ts if ts.fast._is_owned() else _thread_state()).current


def settrace(callback, /):
    """Sets the trace function of this thread; returns the previous one."""
    ts = _thread_state()
    previous, ts.trace = ts.trace, callback
    ts.update_fast()
    return previous


def gettrace():
    """Returns the trace function of this thread, or None."""
    return _thread_state().trace


_NOT_GIVEN = object()
_NO_MAIN_RUN = "Main greenlets do not have a run attribute."
_NO_VALUE = object()  # switch() called without arguments


def _pack(args, kwargs):
    """What a switch with these arguments returns on the other side. The switcher packs, so
    the value a continulet switch carries is already the resumed side's result."""
    if kwargs:
        return (args, kwargs) if args else kwargs
    return args[0] if len(args) == 1 else args


def _normalize_throw(typ, val, tb):
    """greenlet's throw() argument rules; returns the exception instance to raise."""
    if tb is not None and not isinstance(tb, TracebackType):
        raise TypeError("throw() third argument must be a traceback object")
    if isinstance(typ, type) and issubclass(typ, BaseException):
        if isinstance(val, typ):
            exc = val
        elif val is None:
            exc = typ()
        elif isinstance(val, tuple):
            exc = typ(*val)
        else:
            exc = typ(val)
    elif isinstance(typ, BaseException):
        if val is not None:
            raise TypeError("instance exception may not have a separate value")
        exc = typ
    else:
        raise TypeError("exceptions must be classes, or instances, not %s" % type(typ).__name__)
    if tb is not None:
        exc = exc.with_traceback(tb)
    return exc


def _check_greenlet(value):
    if not isinstance(value, greenlet):
        raise TypeError("GreenletChecker: Expected any type of greenlet, not "
                        + type(value).__name__)


def _lineage_main(g):
    """The main greenlet a greenlet belongs to: its own once started, else its parent chain's.
    Reads the slots directly: a subclass's __getattribute__ must not change the answer."""
    while not _started_of(g):
        g = _parent_of(g)
    return g if _main_of(g) else _owner_of(g)



def _cross_thread(target):
    return error("Cannot switch to a different thread\n\tCurrent:  %r\n\tExpected: %r"
                 % (getcurrent(), _lineage_main(target)))


def _run_trace(ts, event, origin, target):
    trace = ts.trace
    ts.origin = None
    try:
        _call_visible(trace, event, (origin, target))  # the user's code: traced and profiled
    except BaseException:
        ts.trace = None  # a failing trace function is uninstalled, like greenlet does
        ts.update_fast()
        raise


def _traced_run(ts, run, *args, **kwargs):
    """Entry of a greenlet started while tracing: the trace call must happen inside it."""
    _run_trace(ts, "switch", ts.origin, ts.current)
    return _call_visible(run, *args, **kwargs)


def _release_then_run(box, run, *args, **kwargs):
    """Entry of a greenlet whose run is not the callable assigned to it (a subclass's
    __getattribute__ chose another): like greenlet, it drops the assigned one inside the new
    greenlet, before run is called (its __del__ may even switch away)."""
    box.clear()
    return _call_visible(run, *args, **kwargs)


_ENTRY_CODE = (_traced_run.__code__, _release_then_run.__code__)  # for _INTERNAL_CODE
# Hidden from sys.settrace/sys.setprofile (descriptors for any object, called as functions): a
# greenlet's run is all profilers see inside it, as with greenlet's C entry.
_traced_run = _hidden_method(object, "_traced_run", _traced_run)
_release_then_run = _hidden_method(object, "_release_then_run", _release_then_run)


def _begin(target, ts, run, a, kw):
    """Gives `target` a continulet that calls run with the first switch's arguments."""
    assigned = target._gr_run
    target._gr_run = None
    if ts.trace is not None:
        run = partial(_traced_run, ts, run)
    elif assigned is not run and assigned is not _NOT_GIVEN:
        run = partial(_release_then_run, [assigned], run)
    del assigned
    c = _Cont(run, *a, **kw) if kw else _Cont(run, *a)
    c.gr = target._gr_proxy
    if target._gr_ctx is not None:
        _set_context(target._gr_ctx, c)
    target._gr_c = c
    target._gr_started = True
    target._gr_owner = ts.main
    target._gr_ts = ts


def _switch(ts, target, args, exc, kwargs=None, lowlevel=None):
    """The general switch: from the running greenlet to `target`, passing `args` and `kwargs`
    or throwing `exc`. Handles dead and unstarted targets, threads, tracing and
    finished greenlets handing their result on. Returns what the running greenlet resumes with.
    `lowlevel` replaces the continulet switch (UnswitchableGreenlet's forced failures)."""
    origin = ts.current
    while True:
        # Dead greenlets pass the switch on to their parent; unstarted ones are started.
        start = False
        while target._gr_ts is None:
            if target._gr_started:
                pass
            elif exc is None:
                start = True
                break
            else:
                # Throwing into an unstarted greenlet kills it before run is called.
                target.run  # noqa: B018 (greenlet looks run up here too: AttributeError)
                target._gr_started = True
                target._gr_run = None
                target._gr_owner = ts.main  # it died in this thread, as if started here
                if ts.trace is not None:
                    # greenlet starts it to die at once: a trace sees the throw into it.
                    _run_trace(ts, "throw", origin, target)
                    origin = target
            if isinstance(exc, GreenletExit):
                args, exc, kwargs = (exc,), None, None
            target = target._gr_parent
            if target is None:
                raise error("cannot switch to a garbage collected greenlet")
        if start:
            run = target.run  # may run Python code (a property, __getattribute__)
            if target._gr_ts is not None:
                continue  # that code started the greenlet meanwhile
            owner_ts = _ts_of(_parent_of(target))  # the common case: its parent runs here
            if owner_ts is not ts:
                owner_ts = _lineage_main(target)._gr_ts
            if owner_ts is not ts:
                if not owner_ts.alive:
                    raise error("cannot switch to a different thread (which happens to have exited)")
                raise _cross_thread(target)
            _begin(target, ts, run, args, kwargs)
            run = args = kwargs = None  # the first switch into a continulet passes None
        elif target._gr_ts is not ts:
            if not target._gr_ts.alive:
                raise error("cannot switch to a different thread (which happens to have exited)")
            raise _cross_thread(target)
        if target is ts.current:
            if ts.trace is not None:  # also a switch to itself, as greenlet's
                _run_trace(ts, "switch" if exc is None else "throw", origin, target)
            if exc is not None:
                # As greenlet's C raise: the caller's handled exception is not its context.
                context = exc.__context__
                try:
                    raise exc
                finally:
                    exc.__context__ = context
                    del exc, context  # the traceback holds this frame: no cycle through it
            return _pack(args, kwargs)
        value = None if start or exc is not None else _pack(args, kwargs)
        c = ts.current._gr_c
        tc = target._gr_c
        ts.current = target
        if ts.trace is not None:
            ts.origin = origin
        origin = None  # a suspended greenlet's frames must not hold it (see the module doc)
        try:
            if lowlevel is not None:
                value = lowlevel(c, value, tc)
            elif exc is None:
                value = c.switch(value, tc)
            else:
                value = _cont_throw(c, exc, None, None, tc)
        except BaseException as e:
            finished = ts.current
            if finished._gr_c is c:  # thrown into us
                if ts.trace is not None:
                    _run_trace(ts, "throw", ts.origin, finished)
                raise
            if finished is target and tc.is_pending():
                # The switch failed before leaving: we are still the running greenlet.
                ts.current = c.gr._gr_self()
                ts.origin = None
                if start:
                    _unbegin(target)
                raise
            # `finished` raised out of its run (this is the main greenlet): the exception goes
            # to its parent.
            target = _finish(finished, ts)
            args, exc = _forwarded(e)
            kwargs = None
        else:
            finished = ts.current
            if finished._gr_c is c:
                if ts.trace is not None:
                    _run_trace(ts, "switch", ts.origin, finished)
                return value
            target, args, exc, kwargs = _finish(finished, ts), (value,), None, None
        origin, finished = finished, None


def _unbegin(target):
    """Undoes _begin after a failed first switch: the greenlet is unstarted again (and, as in
    greenlet, has dropped its run)."""
    target._gr_c = target._gr_ts = target._gr_owner = None
    target._gr_run = _NOT_GIVEN
    target._gr_started = False


def _finish(g, ts):
    """Bookkeeping for a greenlet whose run just ended (its result landed in the main
    greenlet, which runs now); returns where the result goes."""
    ts.current = ts.main
    g._gr_ts = None  # _gr_c stays: the finished continulet holds the context it ended in
    return g._gr_parent


class _GreenletState:
    """greenlet's own state, in slots: kept out of the instance __dict__, which belongs to
    the user."""
    __slots__ = (
        "_gr_c",        # its _Cont once started (unbound for a main greenlet); a finished
                        # one holds the context it ended in
        "_gr_ts",       # its thread's _ThreadState while active (started, not dead)
        "_gr_parent",
        "_gr_run",      # run as assigned, until the start
        "_gr_started",
        "_gr_main",
        "_gr_owner",    # the main greenlet of the thread it started in
        "_gr_ctx",      # context assigned before the start, or after the finish
        "_gr_proxy",    # a weak proxy of itself (its continulet's `gr`)
        "__dict__",
        "__weakref__",
    )


_dict_slot = _GreenletState.__dict__["__dict__"]


def _set_dict(self, d):
    if not isinstance(d, dict):
        raise TypeError("__dict__ must be a dictionary")
    _dict_slot.__set__(self, d)


def _del_dict(self):
    raise TypeError("__dict__ may not be deleted")


class greenlet(_GreenletState):
    """greenlet(run=None, parent=None) -> greenlet

    Creates a new greenlet object (without running it).

     - *run* -- The callable to invoke.
     - *parent* -- The parent greenlet. The default is the current greenlet.
    """
    __module__ = "greenlet"
    __slots__ = ()
    __dict__ = property(_dict_slot.__get__, _set_dict, _del_dict)

    getcurrent = staticmethod(getcurrent)
    settrace = staticmethod(settrace)
    gettrace = staticmethod(gettrace)
    error = error
    GreenletExit = GreenletExit

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        new = cls.__dict__.get("__new__")
        if cls.__new__ is object.__new__:  # no __new__ of its own or inherited
            cls.__new__ = staticmethod(_subclass_new)
        elif isinstance(new, staticmethod):
            # Its super().__new__(cls) may reach object.__new__ (greenlet has no __new__ of its
            # own), which C greenlet's tp_new would have given greenlet's state.
            cls.__new__ = staticmethod(_with_state(new.__func__))

    def __init__(self, /, run=_NOT_GIVEN, parent=None):
        # greenlet itself has no __new__ (a Python __new__ costs more than the rest of the
        # creation): a plain greenlet gets its state here, in the first __init__ call, which
        # sees no weak reference yet; subclasses get theirs in _subclass_new.
        if not _weakref_count(self):
            ts = _recent
            if not ts.fast._is_owned():
                ts = _thread_state()
            self._gr_parent = ts.current
            self._gr_run = run
            self._gr_c = self._gr_ts = self._gr_owner = self._gr_ctx = None
            self._gr_started = self._gr_main = False
            self._gr_proxy = _weak_proxy(self)
        elif run is not _NOT_GIVEN:
            self._set_run(run)
        if parent is not None:
            self.parent = parent

    def _gr_self(self):
        """The greenlet itself, also when reached through its weak proxy."""
        return self

    def switch(self, /, *args, **kwargs):
        """Switch execution to this greenlet.

        If this greenlet has never been run, then this greenlet
        will be switched to using the body of ``self.run(*args, **kwargs)``.

        If the greenlet is active (has been run, but was switch()'ed
        out before leaving its run function), then this greenlet will
        be resumed and the return value to its switch call will be
        None if no arguments are given, the given argument if one
        argument is given, or the args tuple and keyword args dict if
        multiple arguments are given.

        If the greenlet is dead, or is the current greenlet then this
        function will simply return the arguments using the same rules as
        above.
        """
        try:
            return self._switch_slow(args, kwargs)
        except BaseException:
            _drop_own_entries()
            raise

    def _switch_positional(self, value=_NO_VALUE, /, *args):
        """switch() without keyword arguments, its common case."""
        ts = self._gr_ts
        if ts is not None and not args and ts.fast._is_owned():
            # Fast path: an active greenlet of this thread, no tracing, at most one argument.
            # Only the switcher's continulet stays in this frame while suspended (see the
            # module doc). First here: the long start below must not lengthen its jumps.
            if value is _NO_VALUE:
                value = ()
            c = ts.current._gr_c
            ts.current = self
            # Every way out by an exception goes through a handler here that drops our frames
            # from its traceback (see _drop_own_entries). Kept short: 3.11 places handlers
            # inline, and a longer fast path would need wider (EXTENDED_ARG) jumps above.
            try:
                value = c.switch(value, self._gr_c)
            except BaseException:
                try:
                    # No `as` name: every local costs each switch its setup and clearing.
                    return _resumed_with_exception(ts, c, self, sys.exc_info()[1])
                except BaseException:
                    _drop_own_entries()
                    raise
            if ts.current._gr_c is not c or ts.trace is not None:
                try:
                    return _resumed_slow(ts, c, value)
                except BaseException:
                    _drop_own_entries()
                    raise
            return value
        args = args if value is _NO_VALUE else (value, *args)
        if ts is not None or type(self) is not greenlet:
            try:
                return self._switch_slow(args, None)
            except BaseException:
                _drop_own_entries()
                raise
        # The first switch into a plain greenlet without keywords: `_switch`'s start,
        # with only the common case's steps (no run: `_switch` raises greenlet's error).
        ts = self._gr_parent._gr_ts
        if ts is None or self._gr_started or self._gr_run is _NOT_GIVEN or not ts.fast._is_owned():
            try:
                return self._switch_slow(args, None)
            except BaseException:
                _drop_own_entries()
                raise
        # From here `args` holds the new continulet (a local of its own would cost every switch
        # its setup and clearing); the switch's argument holds it anyway while we are suspended.
        self._gr_c = args = _Cont(self._gr_run, *args) if args else _Cont(self._gr_run)
        args.gr = self._gr_proxy
        self._gr_run = None
        if self._gr_ctx is not None:
            _set_context(self._gr_ctx, args)
        self._gr_started = True
        self._gr_owner = ts.main
        self._gr_ts = ts
        c = ts.current._gr_c
        ts.current = self
        try:
            value = c.switch(None, args)
        except BaseException:
            try:
                return _resumed_with_exception(ts, c, self, sys.exc_info()[1], True)
            except BaseException:
                _drop_own_entries()
                raise
        if ts.trace is None:
            finished = ts.current
            if finished._gr_c is c:
                return value
            if finished._gr_parent is ts.main:
                # Usually self returned (this is the main greenlet): the result is ours.
                ts.current = ts.main
                finished._gr_ts = None
                return value
        try:
            return _resumed_slow(ts, c, value)
        except BaseException:
            _drop_own_entries()
            raise

    def _switch_slow(self, args, kwargs, lowlevel=None):
        return _switch(_opened_thread_state(), self, args, None, kwargs or None, lowlevel)

    def throw(self, typ=GreenletExit, val=None, tb=None, /):
        """Switches execution to this greenlet, but immediately raises the
        given exception in this greenlet. If no argument is provided, the
        exception defaults to `greenlet.GreenletExit`. The normal exception
        propagation rules apply, as described for `switch`. Note that calling
        this method is almost equivalent to the following::

            def raiser():
                raise typ, val, tb
            g_raiser = greenlet(raiser, parent=g)
            g_raiser.switch()

        except that this trick does not work for the `greenlet.GreenletExit`
        exception, which would not propagate from ``g_raiser`` to ``g``.
        """
        try:
            return _switch(_opened_thread_state(), self, None, _normalize_throw(typ, val, tb))
        except BaseException:
            _drop_own_entries()
            raise

    def __bool__(self):
        return self._gr_ts is not None and self._gr_ts.alive

    @property
    def dead(self):
        """True if the greenlet has finished (or its thread has exited)."""
        if self._gr_main:
            return not self._gr_ts.alive
        return (self._gr_started and self._gr_ts is None) or (
            self._gr_ts is not None and not self._gr_ts.alive)

    def _get_run(self):
        if self._gr_started or self._gr_run is _NOT_GIVEN:
            raise AttributeError(_NO_MAIN_RUN if self._gr_main else "run")
        return self._gr_run

    def _set_run(self, run):
        if self._gr_started:
            raise AttributeError(_NO_MAIN_RUN if self._gr_main
                                 else "run cannot be set after the start of the greenlet")
        self._gr_run = run

    def _del_run(self):
        self._set_run(_NOT_GIVEN)

    run = property(_get_run, _set_run, _del_run,
                   "The callable that this greenlet will run in its own context. "
                   "It does not exist once the greenlet has started.")

    def _get_parent(self):
        return self._gr_parent

    def _set_parent(self, parent):
        if self._gr_main:
            raise AttributeError("cannot set the parent of a main greenlet")
        _check_greenlet(parent)
        p = parent
        while p is not None:
            if p is self:
                raise ValueError("cyclic parent chain")
            p = p._gr_parent
        if self._gr_started and _lineage_main(parent) is not self._gr_owner:
            raise ValueError("parent cannot be on a different thread")
        self._gr_parent = parent

    def _del_parent(self):
        raise AttributeError("can't delete attribute")

    parent = property(_get_parent, _set_parent, _del_parent,
                      "The parent greenlet: where this one's result or exception goes.")

    def _holder(self):
        """The continulet holding this greenlet's suspended continuation, or None if the
        greenlet is not suspended. A suspended main greenlet's continuation is held by the
        running greenlet's continulet."""
        ts = self._gr_ts
        if ts is None or ts.current is self:
            return None
        if self._gr_main:
            return ts.current._gr_c if ts.alive else None
        return self._gr_c

    @property
    def gr_frame(self):
        """The frame that switched away from this greenlet while it is suspended, else None."""
        holder = self._holder()
        if holder is None:
            return None
        frame = _get_frame(holder)
        while frame is not None and frame.f_code in _INTERNAL_CODE:
            frame = frame.f_back
        return frame

    def _context_holder(self, verb):
        """The continulet whose continuation this active greenlet resumes with, or None if it
        is the running greenlet of this thread."""
        ts = self._gr_ts
        if ts.current is self:
            if ts.ident != _get_ident():
                raise ValueError("cannot %s context of a greenlet that is running"
                                 " in a different thread" % verb)
            return None
        return ts.current._gr_c if self._gr_main else self._gr_c

    def _get_context(self):
        ts = self._gr_ts
        if ts is None:  # unstarted, or finished: the context it ended in unless set since
            c = self._gr_c
            return self._gr_ctx if c is None else _get_context(c)
        if not ts.alive:
            return self._gr_ctx
        holder = self._context_holder("get")
        return _get_context() if holder is None else _get_context(holder)

    def _set_context(self, ctx):
        if ctx is not None and type(ctx) is not Context:
            raise TypeError("greenlet context must be a contextvars.Context or None")
        ts = self._gr_ts
        if ts is not None and ts.alive:
            holder = self._context_holder("set")
            if holder is None:
                _set_context(ctx)
            else:
                _set_context(ctx, holder)
        elif ts is None:
            self._gr_c = None  # a finished greenlet reports ctx from now on
        self._gr_ctx = ctx

    def _del_context(self):
        raise AttributeError("can't delete context attribute")

    gr_context = property(_get_context, _set_context, _del_context,
                          "The contextvars.Context in which this greenlet runs (None: empty).")

    @property
    def _stack_saved(self):
        """Bytes of C stack kept for this greenlet's resumption (greenlet: copied to the heap;
        tealet keeps them in place in the stack region or on the heap), 0 unless suspended."""
        holder = self._holder()
        return 0 if holder is None else _stack_used(holder)

    def __getstate__(self):
        # Only this, as greenlet: copy and pickle reach it through object's __reduce_ex__.
        raise TypeError("cannot serialize '%s' object" % _tp_name(type(self)))

    def __repr__(self):
        ts = self._gr_ts
        # greenlet's otid names the thread it started in: "0x(nil)" before the start and once
        # that thread has exited.
        owner = self if self._gr_main else self._gr_owner
        owner_ts = None if owner is None else owner._gr_ts
        exited = owner_ts is not None and not owner_ts.alive
        otid = "%#x" % owner_ts.ident if owner_ts is not None and not exited else "0x(nil)"
        head = "<%s object at %#x (otid=%s)" % (_tp_name(type(self)), id(self), otid)
        if greenlet.dead.fget(self):  # greenlet's own, not a subclass's `dead`
            return head + (" (thread exited) dead>" if exited else " dead>")
        if ts is None:
            return head + " pending>"
        state = " current" if ts.current is self and ts.ident == _get_ident() else " suspended"
        return head + state + " active started" + (" main" if self._gr_main else "") + ">"

    def __del__(self):
        # Called only while its continulet is pending: started and not finished (see the
        # pending_finalizer at the end of the module).
        ts = self._gr_ts
        if not ts.alive or sys.is_finalizing():
            return
        if ts.ident != _get_ident():
            ts.deleteme.append(self)  # killed by its own thread on its next greenlet call
            ts.update_fast()
            return
        # A collection that runs on a greenlet's stack cannot switch: it kills once it is over.
        _call_when_switchable(self._kill_garbage, ts)

    def _kill_garbage(self, ts):
        """Throws GreenletExit into a suspended greenlet nobody references any more, with the
        current greenlet as its parent for the duration, so its finally blocks run."""
        if self._gr_ts is None or ts.current is self:
            return
        parent = self._gr_parent
        self._gr_parent = ts.current
        try:
            # greenlet's own throw: a subclass's override is not part of the kill.
            greenlet.throw(self, GreenletExit("Killing the greenlet because all references have vanished."))
        except BaseException as e:
            _write_unraisable(e, self)
        if self._gr_ts is not None:
            self._gr_parent = parent
            sys.stderr.write("GreenletExit did not kill %r\n" % (self,))
            _leaked.append(self)


def _tp_name(cls):
    """The type name greenlet's messages show: its C type's tp_name, for a Python subclass
    its bare name."""
    return "greenlet.greenlet" if cls is greenlet else cls.__name__


def _subclass_new(cls, *args, **kwargs):
    """__new__ of greenlet's subclasses: their __init__ may not call greenlet's."""
    self = object.__new__(cls)
    greenlet.__init__(self)
    return self


def _with_state(new):
    """A subclass's own __new__, followed by giving the greenlet it made greenlet's state if
    it has none yet."""
    @wraps(new)
    def __new__(cls, *args, **kwargs):
        self = new(cls, *args, **kwargs)
        if isinstance(self, greenlet) and not _weakref_count(self):
            greenlet.__init__(self)
        return self
    return __new__


_started_of = greenlet._gr_started.__get__
_parent_of = greenlet._gr_parent.__get__
_main_of = greenlet._gr_main.__get__
_owner_of = greenlet._gr_owner.__get__
_ts_of = greenlet._gr_ts.__get__


def _hook_args_type():
    """The type sys.unraisablehook takes (sys.UnraisableHookArgs, which sys does not export),
    from what CPython hands a hook for an exception in __del__."""
    class Raiser:
        def __del__(self):
            raise RuntimeError
    seen = []
    hook, sys.unraisablehook = sys.unraisablehook, seen.append
    try:
        Raiser()
    finally:
        sys.unraisablehook = hook
    return type(seen[0])


_HookArgs = _hook_args_type()


def _write_unraisable(exc, obj):
    """What C's PyErr_WriteUnraisable(obj) does with `exc`, shown without our frames."""
    tb = _past_own_entries(exc.__traceback__)
    _call_visible(sys.unraisablehook, _HookArgs((type(exc), exc, tb, None, obj)))


def _resumed_with_exception(ts, c, target, exc, start=False):
    try:
        finished = ts.current
        if finished._gr_c is c:  # thrown into us
            if ts.trace is not None:
                _run_trace(ts, "throw", ts.origin, finished)
        elif finished is target and target._gr_c.is_pending():
            ts.current = c.gr._gr_self()  # the switch failed before leaving: we still run
            if start:
                _unbegin(target)
        else:
            return _switch(ts, _finish(finished, ts), *_forwarded(exc))
        raise exc
    finally:
        del exc  # a traceback may hold this frame: no cycle through it


def _forwarded(exc):
    """What an exception that ended a greenlet's run passes to its parent, as `_switch`'s
    (args, exc): GreenletExit becomes a return value. The traceback loses its first entry,
    the switcher frame of ours it arrived in (as greenlet's would not show its C switch), which
    would otherwise hold the exception in a cycle."""
    exc.__traceback__ = exc.__traceback__.tb_next
    if isinstance(exc, GreenletExit):
        return (exc,), None
    return None, exc


def _resumed_slow(ts, c, value):
    finished = ts.current
    if finished._gr_c is c:
        _run_trace(ts, "switch", ts.origin, finished)
        return value
    # `finished` returned `value` (this is the main greenlet): it goes to its parent.
    ts.current = main = ts.main
    finished._gr_ts = None
    target = finished._gr_parent
    if target is main and ts.trace is None:
        return value
    return _switch(ts, target, (value,), None)


# The code of our frames that may sit on a stack under a switch: gr_frame and tracebacks skip them.
_INTERNAL_CODE = frozenset([f.__code__ for f in (
    greenlet.switch, greenlet._switch_positional, greenlet._switch_slow, greenlet.throw,
    greenlet._kill_garbage, greenlet._get_run, _switch, _resumed_with_exception, _resumed_slow,
    _run_trace, _normalize_throw, _cross_thread, _lineage_main, _thread_state,
    _opened_thread_state, _new_thread_state, _clear_deleteme, _check_greenlet, _begin, _finish,
    _forwarded)] + list(_ENTRY_CODE))
# 3.11+ re-raises (bare `raise`) an exception with its __traceback__ as it is then, adding no
# entry; before, with the traceback it was caught with, whose first entry is the raising frame's.
_RERAISE_USES_TRACEBACK = sys.version_info >= (3, 11)


def _past_own_entries(tb):
    """The first entry of traceback `tb` that is not one of our frames (or None)."""
    while tb is not None and tb.tb_frame.f_code in _INTERNAL_CODE:
        tb = tb.tb_next
    return tb


def _drop_own_entries():
    """Called in the handler of switch()'s and throw()'s outermost frame just before a bare
    `raise`: drops our frames from the handled exception's traceback, so it goes on from the
    caller's frame straight to the frames the exception came from, as with greenlet's C switch.
    Before 3.11 the first entry (that outermost frame) stays; the ones after it go."""
    exc = sys.exc_info()[1]
    head = exc.__traceback__
    tb = _past_own_entries(head.tb_next)
    if _RERAISE_USES_TRACEBACK:
        exc.__traceback__ = tb
    else:
        head.tb_next = tb

# greenlet's switch and throw are C methods: sys.setprofile sees each call as one C call with
# only the code it switches to inside, sys.settrace nothing of the switch.
greenlet.switch = _hidden_method(greenlet, "switch", greenlet.switch, greenlet._switch_positional)
greenlet.throw = _hidden_method(greenlet, "throw", greenlet.throw)
# C greenlet kills in its deallocator. As a Python __del__ this would cost every greenlet a call
# and a frame at its death; as the binding's C finalizer it costs only a greenlet whose continulet
# is pending (started, not finished; a main greenlet's never is) a hidden call.
greenlet.__del__ = _continuation.pending_finalizer(greenlet, _GreenletState._gr_c, greenlet.__del__)


class UnswitchableGreenlet(greenlet):
    """greenlet's test helper: the low-level switch into it fails on demand. With
    ``force_switch_error`` the switch raises SystemError before leaving (greenlet's messages)
    and nothing changes; with ``force_slp_switch_error`` the process dies with a fatal error,
    as greenlet does when its stack switch fails halfway."""
    force_switch_error = False
    force_slp_switch_error = False

    def switch(self, /, *args, **kwargs):
        lowlevel = None
        if self.force_slp_switch_error:
            lowlevel = _fatal_switch
        elif self.force_switch_error:
            lowlevel = partial(_failed_switch, "running greenlet." if self._gr_started
                               else "greenlet for the first time.")
        return self._switch_slow(args, kwargs, lowlevel)


def _failed_switch(what, c, value, to):
    raise SystemError("Failed to switch stacks into a " + what)


def _fatal_switch(c, value, to):
    sys.stderr.write("Fatal Python error: greenlet: Failed low-level slp_switch()."
                     " The stack is probably corrupt.\n")
    sys.stderr.flush()
    os.abort()


# greenlet._greenlet's introspection helpers, for code and tests that import them.

def get_pending_cleanup_count():
    """Greenlets queued for their own thread to kill."""
    return sum(len(ts.deleteme) for ts in list(_thread_states))


def get_total_main_greenlets():
    """Number of threads that have a main greenlet now."""
    return _total_main_greenlets


def get_clocks_used_doing_optional_cleanup():
    return 0


def enable_optional_cleanup(enabled, /):
    """Accepted for compatibility: there is no optional cleanup pass to switch."""


if sys.version_info < (3, 13):  # 3.13 has no such counter; greenlet leaves the helper out there
    get_tstate_trash_delete_nesting = _continuation.get_tstate_trash_delete_nesting


def set_thread_local(key, value, /):
    """Sets a value in the current thread's dictionary (greenlet's test helper)."""
    threading.current_thread().__dict__[key] = value
