"""Pickling of tasklets and channels, including tasklets suspended mid-run.

Unstarted tasklets (bound, with arguments), finished tasklets, channels with their queues of
blocked tasklets and bombs pickle as plain state. A tasklet suspended mid-run (CPython 3.11-3.13)
also carries its frames: its stack is `_bootstrap` -> user frames -> library frames ->
`_Thread.switch` (the switch point), and `_continuation.capture_frames` turns the frames in
between into plain records (`reduce_frames`). Loading gives the tasklet a continulet running
`_bootstrap(cont, task, resume)`, where `resume` resumes the records innermost first with what
`_Thread.switch` would have returned: `task._resumed()`, the value or the pending exception
raised inside the innermost frame (`restore_frames`).

Rules (as Stackless): a pickle with frames is tied to the bytecode magic and to the code of every
function on the stack (functions by reference plus a digest of their bytecode; lambdas and
closures by value); a stack crossing C code is refused when pickling, naming the call in the
way; the current and main tasklets cannot be pickled.
"""
import copyreg
import dis
import functools
import hashlib
import importlib
import importlib.util
import linecache
import marshal
import os
import pickle
import sys
import types

import _continuation

from ._scheduler import _Thread, state

TAG = (importlib.util.MAGIC_NUMBER, sys.implementation.cache_tag)
_SUPPORTED = (3, 11) <= sys.version_info[:2] <= (3, 13)
_LIBRARY_DIR = os.path.dirname(os.path.abspath(__file__))


def _check_tag(tag):
    if tuple(tag) != TAG:
        raise pickle.UnpicklingError(
            "this tasklet was pickled by %s (bytecode magic %s) and cannot be resumed by %s "
            "(bytecode magic %s): running frames only load in the same Python minor version"
            % (tag[1], tag[0].hex(), TAG[1], TAG[0].hex()))
    return None


class _Tag:
    """Checks the version tag first when loading, before any code is rebuilt."""

    def __reduce__(self):
        return _check_tag, (TAG,)


# -- functions and cells ------------------------------------------------------------------

def _code_parts(code):
    yield code.co_code
    yield repr((code.co_names, code.co_varnames, code.co_cellvars, code.co_freevars)).encode()
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            yield from _code_parts(c)
        else:
            yield repr(sorted(map(repr, c)) if isinstance(c, frozenset) else c).encode()


@functools.lru_cache(maxsize=4096)
def _digest(code):
    """Identifies bytecode across processes (marshal output depends on refcounts)."""
    h = hashlib.sha256()
    for part in _code_parts(code):
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()[:32]


def _by_reference(func):
    """True if pickle can find `func` again under its module and qualified name."""
    if func.__closure__ or "<" in func.__qualname__:
        return False
    try:
        obj = importlib.import_module(func.__module__)
        for part in func.__qualname__.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return False
    return obj is func


def _checksum(data):
    return hashlib.sha256(data).hexdigest()[:32]


def _make_function(tag, code, checksum, module, name, qualname, defaults, kwdefaults, closure):
    _check_tag(tag)
    # before marshal builds it: CPython trusts bytecode, a damaged one can crash the process
    if _checksum(code) != checksum:
        raise pickle.UnpicklingError("damaged code of %s.%s in the pickle" % (module, qualname))
    globs = sys.modules[module].__dict__ if module in sys.modules \
        else importlib.import_module(module).__dict__
    func = types.FunctionType(marshal.loads(code), globs, name, defaults, closure)
    func.__qualname__, func.__kwdefaults__ = qualname, kwdefaults
    return func


class _Function:
    """A function pickled by value (lambdas, closures, functions defined in functions)."""

    def __init__(self, func):
        self.func = func

    def __reduce__(self):
        f = self.func
        if not isinstance(f.__module__, str):
            # its globals cannot be found again (made by exec() with globals that lack __name__)
            raise pickle.PicklingError("cannot pickle %r: its __module__ is %r" % (f, f.__module__))
        code = marshal.dumps(f.__code__)
        return _make_function, (TAG, code, _checksum(code), f.__module__, f.__name__, f.__qualname__,
                                _wrap(f.__defaults__), _wrap_dict(f.__kwdefaults__), f.__closure__)


def _chain_exception(exc, context, cause, suppress_context):
    exc.__context__, exc.__cause__, exc.__suppress_context__ = context, cause, suppress_context
    return exc


class _Exception:
    """An exception with its __context__ and __cause__ chain (pickle keeps only its args):
    an exception being handled must re-raise with the chain it had."""

    def __init__(self, exc):
        self.exc = exc

    def __reduce__(self):
        e = self.exc
        return _chain_exception, (e, _wrap(e.__context__), _wrap(e.__cause__), e.__suppress_context__)


def _wrap(value):
    """`value`, or a stand-in that pickles it by value (a function pickle cannot find by name)
    or with its chain (an exception); tuples are searched, other containers keep their identity."""
    if isinstance(value, types.FunctionType) and not _by_reference(value):
        return _Function(value)
    if isinstance(value, BaseException) and (value.__context__ or value.__cause__):
        return _Exception(value)
    if type(value) is tuple:
        wrapped = tuple(_wrap(v) for v in value)
        return value if all(a is b for a, b in zip(wrapped, value)) else wrapped
    return value


def _wrap_dict(d):
    """A dict the tasklet owns (keyword arguments, keyword defaults), with its values wrapped."""
    return None if d is None else {k: _wrap(v) for k, v in d.items()}


_EMPTY = "stackless._pickling.empty-cell"


def _new_cell():
    return types.CellType()


def _set_cell(cell, contents):
    if contents != _EMPTY:
        cell.cell_contents = contents


def _reduce_cell(cell):
    try:
        contents = _wrap(cell.cell_contents)
    except ValueError:
        contents = _EMPTY
    return _new_cell, (), contents, None, None, _set_cell


copyreg.pickle(types.CellType, _reduce_cell)
_Thread.__reduce__ = lambda self: (state, ())


# -- frames -------------------------------------------------------------------------------

def _shape(offset, items, nulls, selfs):
    """Guards the plain integers of a record against damage: a slot wrongly cleared or a wrong
    resume point would make the interpreter read memory it must not."""
    return hashlib.sha256(repr((offset, len(items), nulls, selfs)).encode()).hexdigest()[:16]


def _load_frame(func, digest, shape, offset, items, nulls, selfs):
    name = "%s.%s" % (func.__module__, func.__qualname__)
    if _digest(func.__code__) != digest:
        raise pickle.UnpicklingError(
            "the code of %s changed since the tasklet was pickled; its frame cannot be resumed" % name)
    record = "frame", func.__code__, func, offset, items, nulls, selfs
    try:
        if not (type(offset) is int and type(items) is type(nulls) is type(selfs) is tuple):
            raise ValueError("its fields have the wrong types")
        if _shape(offset, items, nulls, selfs) != shape:
            raise ValueError("its shape does not match its checksum")
        _continuation.check_frames([record])
    except (ValueError, TypeError) as e:
        raise pickle.UnpicklingError("damaged frame of %s in the pickle: %s" % (name, e)) from None
    return record


def _load_init(obj):
    return "init", None, None, 0, (obj,), (), ()


class _Frame:
    def __init__(self, record):
        self.record = record

    def __reduce__(self):
        kind, code, func, offset, items, nulls, selfs = self.record
        if kind == "init":
            return _load_init, (_wrap(items[0]),)
        f = func if _by_reference(func) else _Function(func)
        return _load_frame, (f, _digest(code), _shape(offset, items, nulls, selfs), offset,
                             _wrap(items), nulls, selfs)


def _where(code, offset):
    line = None
    for start, end, lineno in code.co_lines():
        if start <= offset < end:
            line = lineno
    return "%s (%s:%s)" % (code.co_qualname, code.co_filename, line)


def _callee(records, i):
    """The qualified name of the function record `i` called (records run innermost first)."""
    for kind, code, *_ in reversed(records[:i]):
        if kind != "init":
            return code.co_qualname
    return "the switch"


# The C type slot through which an instruction calls a dunder method.
_SLOTS = {"COMPARE_OP": "tp_richcompare", "BINARY_OP": "a number slot (nb_*)", "BINARY_SUBSCR": "mp_subscript",
          "STORE_SUBSCR": "mp_ass_subscript", "DELETE_SUBSCR": "mp_ass_subscript", "CONTAINS_OP": "sq_contains",
          "GET_ITER": "tp_iter", "FOR_ITER": "tp_iternext", "LOAD_ATTR": "tp_getattro",
          "STORE_ATTR": "tp_setattro", "DELETE_ATTR": "tp_setattro", "UNARY_NEGATIVE": "nb_negative",
          "UNARY_INVERT": "nb_invert", "TO_BOOL": "nb_bool", "UNARY_NOT": "nb_bool"}


def _call_site(code, offset, callee):
    """Names the C function in the way at `offset`: what is called there, with its source text
    and opcode; `callee` is the Python function it called back."""
    instrs = list(dis.get_instructions(code))
    at = [n for n, ins in enumerate(instrs) if ins.offset == offset]
    if not at:
        return "an instruction at offset %d" % offset
    ins = instrs[at[0]]
    source = ins
    if ins.opname == "FOR_ITER" and at[0] > 1 and instrs[at[0] - 1].opname == "GET_ITER":
        source = instrs[at[0] - 2]      # what produced the iterable (its positions are its text)
    text = None
    pos = source.positions
    if pos and pos.lineno is not None and pos.col_offset is not None:
        src = linecache.getline(code.co_filename, pos.lineno)
        if pos.lineno == pos.end_lineno:
            text = src[pos.col_offset:pos.end_col_offset] or None
        else:                           # spans lines: its first line names it
            text = (src[pos.col_offset:].rstrip() + " ...") if src[pos.col_offset:].strip() else None
    if not text:
        return "C code called by %s (no source text to name it)" % ins.opname
    if ins.opname.startswith(("CALL", "PRECALL")):
        if callee.endswith((".__init__", ".__new__")):
            return "the C function type.__call__ (called as `%s`, %s)" % (text, ins.opname)
        return "the C function %s (called as `%s`, %s)" % (text.split("(", 1)[0].strip(), text, ins.opname)
    if ins.opname == "FOR_ITER":
        return "the C iterator of `%s` (FOR_ITER)" % text
    slot = _SLOTS.get(ins.opname)
    return "%s behind `%s` (%s)" % ("the C slot " + slot if slot else "C code", text, ins.opname)


@functools.lru_cache(maxsize=4096)
def _live_slots(code, offset):
    """Fast-local slots that may be read from `offset` on (a conservative liveness analysis)."""
    instrs = list(dis.get_instructions(code))
    at = {ins.offset: n for n, ins in enumerate(instrs)}
    if offset not in at:
        return None
    entries = [(e.start, e.end, at[e.target]) for e in dis.Bytecode(code).exception_entries
               if e.target in at]
    names = code.co_varnames
    stops = {"JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT", "RETURN_VALUE",
             "RETURN_CONST", "RAISE_VARARGS", "RERAISE"}
    uses, defs, succ = [], [], []
    for n, ins in enumerate(instrs):
        op, arg = ins.opname, ins.argval
        u, d = set(), set()
        if op in ("LOAD_FAST", "LOAD_FAST_CHECK", "LOAD_FAST_AND_CLEAR", "LOAD_CLOSURE"):
            u.add(arg)
        elif op == "LOAD_FAST_LOAD_FAST":
            u.update(arg)
        elif op in ("STORE_FAST", "DELETE_FAST"):
            d.add(arg)
        elif op == "STORE_FAST_STORE_FAST":
            d.update(arg)
        elif op == "STORE_FAST_LOAD_FAST":
            d.add(arg[0])
            if arg[1] != arg[0]:
                u.add(arg[1])
        uses.append(u)
        defs.append(d)
        nxt = {target for start, end, target in entries if start <= ins.offset < end}
        if op not in stops and n + 1 < len(instrs):
            nxt.add(n + 1)
        if (ins.opcode in dis.hasjrel or ins.opcode in dis.hasjabs) and ins.argval in at:
            nxt.add(at[ins.argval])
        succ.append(nxt)
    live = [set() for _ in instrs]
    changed = True
    while changed:
        changed = False
        for n in reversed(range(len(instrs))):
            out = set().union(*(live[s] for s in succ[n])) if succ[n] else set()
            new = uses[n] | (out - defs[n])
            if new != live[n]:
                live[n], changed = new, True
    return frozenset(names.index(v) for v in live[at[offset]] if v in names)


def _drop_dead(record):
    """Library frames hold locals they never read again (the partner tasklet of a channel
    action, the switch target): drop those so they do not drag other tasklets along."""
    kind, code, func, offset, items, nulls, selfs = record
    live = _live_slots(code, offset)
    if live is None:
        return record
    cells = set(code.co_cellvars) | set(code.co_freevars)
    dead = [i for i, name in enumerate(code.co_varnames)
            if i not in live and name not in cells and i not in nulls and i not in selfs]
    items = tuple(None if i in dead else v for i, v in enumerate(items))
    return kind, code, func, offset, items, tuple(sorted(set(nulls) | set(dead))), selfs


def capture(task):
    """(records, handled) of a suspended tasklet; PicklingError if it crosses C code."""
    from ._tasklet import _bootstrap
    if not _SUPPORTED:
        raise NotImplementedError(
            "pickling a running tasklet needs CPython 3.11, 3.12 or 3.13; this is CPython %d.%d"
            % sys.version_info[:2])
    if task._thread is not state():
        raise pickle.PicklingError("cannot pickle %r from another thread: its frames are only "
                                   "readable in the thread it runs in" % task)
    records, handled = _continuation.capture_frames(
        task._cont, _Thread.switch.__code__, _bootstrap.__code__)
    out = []
    for i, rec in enumerate(records):
        kind, code, func, offset = rec[:4]
        if kind == "frame":
            out.append(_drop_dead(rec) if os.path.dirname(code.co_filename) == _LIBRARY_DIR else rec)
            continue
        if kind == "init":
            out.append(rec)
            continue
        callee = _callee(records, i)
        if kind == "c-call":
            why = "its frame %s is inside a call to %s" % (_where(code, offset), _call_site(code, offset, callee))
        elif kind == "generator":
            why = "its frame %s is a generator or coroutine frame (those are not pickled)" % _where(code, offset)
        else:
            why = "a frame without a function (%r) is in its stack" % code
        raise pickle.PicklingError(
            "cannot pickle %r: %s, on the way to %s; a tasklet can only be resumed from a pickle "
            "when its stack holds Python frames only" % (task, why, callee))
    return tuple(_Frame(r) for r in out), handled


# -- the seams called by tasklet and channel ----------------------------------------------

def restorable(task):
    """Whether unpickling `task` gives back a tasklet that can run on."""
    if task._cont is None:
        return True
    if task is task._thread.current or task is task._thread.main or not _SUPPORTED:
        return False
    if hasattr(task, "_loaded_frames"):
        return True
    try:
        capture(task)
    except pickle.PicklingError:
        return False
    return True


def reduce_frames(task):
    """The picklable state of a suspended tasklet's frames."""
    loaded = task.__dict__.get("_loaded_frames")      # restored, not run since
    records, handled = loaded or capture(task)
    return _Tag(), records, _wrap(handled)


def restore_frames(task, frames):
    """Give `task` back the frames that `reduce_frames` produced: it comes back paused."""
    from ._tasklet import _bootstrap
    _, records, handled = frames
    task._loaded_frames = tuple(_Frame(r) for r in records), handled
    resume = functools.partial(_continuation.resume_frames, records=records,
                               first=functools.partial(_first_run, task), handled=handled)
    task._cont = _continuation.continulet(_bootstrap, task, resume)
    _continuation.set_context(task._get_context(), task._cont)


def _first_run(task):
    del task._loaded_frames
    return task._resumed()


def reduce_tasklet(task):
    if task is task._thread.current:
        raise RuntimeError("cannot pickle the current tasklet")
    if task is task._thread.main:
        raise RuntimeError("cannot pickle a main tasklet")
    frames = reduce_frames(task) if task._cont is not None else None
    flags = (task.atomic, task.block_trap, task.ignore_nesting)
    state = (_wrap(task.func), _wrap(task._args), _wrap_dict(task._kwargs),
             _wrap(task.tempval), flags, task._blocked, frames)
    # __newobj__: cls.__new__ without __init__, so a subclass whose __init__ needs arguments loads
    return copyreg.__newobj__, (type(task),), state


def setstate_tasklet(task, state):
    """Restore a tasklet into the unpickling thread; it comes back paused
    (a channel's __setstate__ re-blocks those it held)."""
    func, args, kwargs, task.tempval, flags, _blocked, frames = state
    task.func, task._args = func, args
    # Only what differs from the class defaults goes into the instance __dict__.
    for name, value in zip(("_kwargs", "atomic", "block_trap", "ignore_nesting"), (kwargs,) + flags):
        if value != getattr(task, name):
            setattr(task, name, value)
    if frames is not None:
        restore_frames(task, frames)


def reduce_channel(ch):
    flags = (ch.preference, ch.schedule_all, ch.closing)
    return copyreg.__newobj__, (type(ch),), (ch.balance, flags, ch._waiting())


def setstate_channel(ch, state):
    from ._channel import channel
    from ._scheduler import lock
    channel.__init__(ch)        # made by __new__ alone (see reduce_channel)
    balance, (ch._preference, ch._schedule_all, ch._closing), tasks = state
    direction = 1 if balance > 0 else -1
    with lock:
        for task in tasks:
            ch._queue.append(task)
            task._channel = ch
            task._thread.nblocked += 1
        ch._balance = direction * len(tasks)
