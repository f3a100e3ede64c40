/* Frame chains of suspended continuations as plain data, and the driver that resumes such data
 * (CPython 3.11-3.13; earlier versions raise NotImplementedError naming the version).
 *
 * Capture: a continuation suspended in `switch` has its Python frames on its data stack. A frame
 * that called a Python function inline (no C in between) has its value stack stored and resumes
 * by pushing the callee's result and continuing after the call, exactly like a generator resumes
 * after a yield; so does a frame inside `f(*args, **kw)` whose callee is the frame above (the C in
 * between only passes the result back, see transparent_call). Such a frame becomes a record:
 *     (kind, code, function, offset, items, nulls, selfs)
 * kind "frame"; offset = byte offset of the resume point; items = localsplus[0:stacktop]
 * (locals, cells, free vars, value stack) with None where the slot is NULL (indices in `nulls`)
 * and None where it is the captured continulet itself (indices in `selfs`). 3.13's hidden frame
 * that an inlined `Cls(...)` runs `__init__` from becomes ("init", None, None, 0, (self,), (), ()):
 * resuming it checks that `__init__` returned None and passes on `self`. A frame that cannot be
 * resumed is recorded with kind "c-call" (inside a call into C: offset = that instruction),
 * "generator" (a generator/coroutine frame) or "shim" (another frame without a function), items None.
 *
 * Resume: each record becomes a suspended generator object used as a container for a plain
 * function frame (the only frame owner that lets CPython clear frames for us). The driver runs
 * them innermost first with _PyEval_EvalFrameDefault, feeding each one's result or exception to
 * the next outer one, all on one shared handled-exception item. While container k runs, the
 * thread's current frame is container k+1 (suspended), so f_back, tracebacks and a new capture
 * see the logical chain.
 *
 * Every version difference is in the block of macros below. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <frameobject.h>
#include <opcode.h>
#include <string.h>
#include "stackdepth.h"

#define V311 (PY_VERSION_HEX >= 0x030B0000)
#define V312 (PY_VERSION_HEX >= 0x030C0000)
#define V313 (PY_VERSION_HEX >= 0x030D0000)

#if V311
#include "internal/pycore_code.h"
#include "internal/pycore_frame.h"

typedef struct _PyInterpreterFrame iframe;

/* ---- the version differences, in one place ---- */
#if V313
#define FRAME_CODE(f)    ((f)->f_executable)              /* a code object, or None for shims */
#define FRAME_FUNC(f)    ((f)->f_funcobj)
#define FRAME_AT(f)      ((f)->instr_ptr)                 /* instruction executing / next */
#define FRAME_RESUME(f)  ((f)->instr_ptr + (f)->return_offset)
#define FRAME_SET_RESUME(f, p) ((f)->instr_ptr = (p), (f)->return_offset = 0)
#define HEAD(ts)         (&(ts)->current_frame)
#define EX_CALLABLE      0                                /* CALL_FUNCTION_EX inputs: callable, NULL, ... */
#define ENTRY_FRAME(f)   ((f)->owner == FRAME_OWNED_BY_CSTACK)  /* each C-level eval loop's marker frame */
#define INIT_SHIM(f)     (PyCode_Check(FRAME_CODE(f)) && (f)->stacktop == 1 \
                          && _PyCode_CODE((PyCodeObject *)FRAME_CODE(f))[0].op.code == EXIT_INIT_CHECK)
/* A base opcode whose specialised forms call a Python function inline (a frame record resumes
 * just after one): calls, `x[i]` with a Python __getitem__, properties. */
#define INLINE_CALL(op)  ((op) == CALL || (op) == CALL_KW || (op) == CALL_FUNCTION_EX \
                          || (op) == BINARY_SUBSCR || (op) == LOAD_ATTR)
#elif V312
#define FRAME_CODE(f)    ((PyObject *)(f)->f_code)
#define FRAME_FUNC(f)    ((f)->f_funcobj)
#define FRAME_AT(f)      ((f)->prev_instr)
#define FRAME_RESUME(f)  ((f)->prev_instr + 1 + (f)->return_offset)
#define FRAME_SET_RESUME(f, p) ((f)->prev_instr = (p) - 1, (f)->return_offset = 0)
#define HEAD(ts)         (&(ts)->cframe->current_frame)
#define EX_CALLABLE      1                                /* CALL_FUNCTION_EX inputs: NULL, callable, ... */
#define ENTRY_FRAME(f)   ((f)->owner == FRAME_OWNED_BY_CSTACK)
#define INIT_SHIM(f)     0                                /* __init__ is only inlined from 3.13 on */
#define INLINE_CALL(op)  ((op) == CALL || (op) == CALL_FUNCTION_EX || (op) == BINARY_SUBSCR \
                          || (op) == LOAD_ATTR)
#else
#define FRAME_CODE(f)    ((PyObject *)(f)->f_code)
#define FRAME_FUNC(f)    ((PyObject *)(f)->f_func)
#define FRAME_AT(f)      ((f)->prev_instr)
#define FRAME_RESUME(f)  ((f)->prev_instr + 1)
#define FRAME_SET_RESUME(f, p) ((f)->prev_instr = (p) - 1)
#define HEAD(ts)         (&(ts)->cframe->current_frame)
#define EX_CALLABLE      1
#define ENTRY_FRAME(f)   0
#define INIT_SHIM(f)     0
#define INLINE_CALL(op)  ((op) == CALL || (op) == CALL_FUNCTION_EX || (op) == BINARY_SUBSCR)
#endif

/* A fresh frame for `func` in frame memory `f` (takes a reference to func). */
static void frame_init(iframe *f, PyFunctionObject *func, PyCodeObject *code)
{
    Py_INCREF(func);
#if V312
    _PyFrame_Initialize(f, func, NULL, code, 0);
#else
    (void)code;
    _PyFrame_InitializeSpecials(f, func, NULL, code->co_nlocalsplus);
#endif
}

/* The generator fields make_gen() sets; 3.11 also keeps the code in the generator. */
static void gen_init(PyGenObject *gen, PyFunctionObject *func, PyCodeObject *code)
{
#if !V312
    gen->gi_code = (PyCodeObject *)Py_NewRef(code);
#else
    (void)code;
#endif
    gen->gi_weakreflist = NULL;
    gen->gi_name = Py_NewRef(func->func_name);
    gen->gi_qualname = Py_NewRef(func->func_qualname);
    gen->gi_exc_state.exc_value = NULL;
    gen->gi_exc_state.previous_item = NULL;
    gen->gi_origin_or_finalizer = NULL;
    gen->gi_hooks_inited = 0;
    gen->gi_closed = 0;
    gen->gi_running_async = 0;
    gen->gi_frame_state = FRAME_SUSPENDED;
}

/* 3.11's eval loop leaves a finished entry frame to its owner (gen_send_ex2 does this part);
 * 3.12+ clear a generator frame themselves and unlink gi_exc_state.previous_item. */
static void after_eval(PyThreadState *ts, PyGenObject *gen)
{
#if !V312
    if (gen->gi_frame_state == FRAME_EXECUTING) gen->gi_frame_state = FRAME_COMPLETED;
    ts->exc_info = gen->gi_exc_state.previous_item;
    gen->gi_exc_state.previous_item = NULL;
    ((iframe *)gen->gi_iframe)->previous = NULL;
#else
    (void)ts; (void)gen;
#endif
}

/* Raise `exc` (stolen) / take the raised exception as one object with its traceback. */
static void raise_exc(PyObject *exc)
{
#if V312
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef(Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

static PyObject *take_exc(void)
{
#if V312
    return PyErr_GetRaisedException();
#else
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb) PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v;
#endif
}
/* ---- end of version differences ---- */

#define GEN_FLAGS (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR | CO_ITERABLE_COROUTINE)

/* `f(*args, **kw)` runs through C (CALL_FUNCTION_EX) unless the callable is a plain function on
 * 3.12+. When the callable is the function the frame above runs (or a bound method of it), that C
 * only hands back its result, so the caller resumes like after an inline call: inputs gone,
 * result pushed, at the next instruction (it has no inline caches). The depth below the inputs
 * comes from stackdepth.c. Returns that depth and sets *resume, or returns -1. */
static int transparent_call(iframe *f, PyCodeObject *code, iframe *above, _Py_CODEUNIT **resume)
{
    tsd_instr in;
    tsd_call call;
    if (tsd_instruction(code, (int)(FRAME_AT(f) - _PyCode_CODE(code)), &in) < 0
        || in.opcode != CALL_FUNCTION_EX || tsd_call_of(&in, &call) < 0 || call.height > code->co_stacksize)
        return -1;
    PyObject *callable = f->localsplus[code->co_nlocalsplus + call.base + EX_CALLABLE];
    if (callable && PyMethod_Check(callable)) callable = PyMethod_GET_FUNCTION(callable);
    if (!callable || callable != FRAME_FUNC(above) || !PyFunction_Check(callable)) return -1;
    *resume = _PyCode_CODE(code) + in.index + 1;
    return call.base;
}

static long unit_offset(PyCodeObject *code, _Py_CODEUNIT *p)
{
    return (long)((char *)p - (char *)_PyCode_CODE(code));
}

/* `above`: the frame `f` called. */
static PyObject *record(iframe *f, iframe *above, PyObject *cont)
{
    PyObject *code = FRAME_CODE(f), *func = FRAME_FUNC(f);
    const char *kind;
    int n = f->stacktop, base;
    _Py_CODEUNIT *resume = NULL;
    if (!PyFunction_Check(func) && INIT_SHIM(f))
        return Py_BuildValue("(sOOl(O)()())", "init", Py_None, Py_None, 0L, f->localsplus[0]);
    if (!PyCode_Check(code) || !PyFunction_Check(func)) kind = "shim";
    else if (((PyCodeObject *)code)->co_flags & GEN_FLAGS) kind = "generator";
    else if (n >= ((PyCodeObject *)code)->co_nlocalsplus) kind = "frame";
    else if ((base = transparent_call(f, (PyCodeObject *)code, above, &resume)) >= 0) {
        kind = "frame";
        n = ((PyCodeObject *)code)->co_nlocalsplus + base;
    }
    else kind = "c-call";
    if (!PyFunction_Check(func)) func = Py_None;
    if (strcmp(kind, "frame")) {
        long at = PyCode_Check(code) ? unit_offset((PyCodeObject *)code, FRAME_AT(f)) : -1;
        return Py_BuildValue("(sOOlO()())", kind, code, func, at, Py_None);
    }
    int nnull = 0, nself = 0;
    PyObject *items = PyTuple_New(n);
    if (!items) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *v = f->localsplus[i];
        if (!v || v == cont) { nnull += !v; nself += v == cont; v = Py_None; }
        PyTuple_SET_ITEM(items, i, Py_NewRef(v));
    }
    PyObject *nulls = PyTuple_New(nnull), *selfs = PyTuple_New(nself);
    if (!nulls || !selfs) goto fail;
    for (int i = 0, a = 0, b = 0; i < n; i++) {
        PyObject *v = f->localsplus[i];
        if (!v || v == cont) {
            PyObject *ix = PyLong_FromLong(i);
            if (!ix) goto fail;
            if (!v) PyTuple_SET_ITEM(nulls, a++, ix);
            else PyTuple_SET_ITEM(selfs, b++, ix);
        }
    }
    return Py_BuildValue("(sOOlNNN)", kind, code, func,
                         unit_offset((PyCodeObject *)code, resume ? resume : FRAME_RESUME(f)), items, nulls, selfs);
fail:
    Py_DECREF(items);
    Py_XDECREF(nulls);
    Py_XDECREF(selfs);
    return NULL;
}

/* `head`: the suspended continuation's top heap frame (pystate.c). */
PyObject *tpy_frames_capture(void *head, PyObject *top, PyObject *bottom, PyObject *cont)
{
    iframe *f = head;
    if (!f || FRAME_CODE(f) != top) {
        PyErr_Format(PyExc_ValueError, "the continulet is not suspended in %R", top);
        return NULL;
    }
    PyObject *out = PyList_New(0);
    if (!out) return NULL;
    iframe *above = f;
    for (f = f->previous; f; f = f->previous) {
        if (ENTRY_FRAME(f)) continue;
        if (FRAME_CODE(f) == bottom) break;
        PyObject *r = record(f, above, cont);
        if (!r || PyList_Append(out, r) < 0) {
            Py_XDECREF(r);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(r);
        above = f;
    }
    return out;
}

/* A resumable record, taken apart (borrowed references); code and func NULL for "init". */
typedef struct record_parts {
    PyCodeObject *code;
    PyFunctionObject *func;
    long offset;
    PyObject *items, *nulls, *selfs;
} record_parts;

static int bad_record(PyObject *code, const char *why)
{
    PyErr_Format(PyExc_ValueError, "frame record for %R: %s", code, why);
    return -1;
}

/* Whether code unit `unit` of `co` comes right after an instruction that calls inline (and its
 * inline caches): where a frame suspended in a call resumes. */
static int after_inline_call(PyCodeObject *co, int unit)
{
    PyObject *bytes = PyCode_GetCode(co);            /* unspecialised: caches read as CACHE */
    if (!bytes) {
        PyErr_Clear();
        return 0;
    }
    const unsigned char *ops = (const unsigned char *)PyBytes_AS_STRING(bytes);   /* (op, arg) pairs */
    int at = unit - 1;
    while (at > 0 && ops[2 * at] == CACHE) at--;
    tsd_instr call;
    int ok = at >= 0 && tsd_instruction(co, at, &call) == 0 && call.index == at && INLINE_CALL(call.opcode);
    Py_DECREF(bytes);
    return ok;
}

/* Checks that `rec` fits its code: the shape, a resume point just after an inline call with the
 * value stack as deep as the items make it, slot indices in range, cells in the cell slots.
 * Returns 0, or -1 with ValueError. It catches records of other code (a changed source), not
 * crafted ones: like pickle data, the values and where NULLs go are trusted. */
static int parse_record(PyObject *rec, record_parts *p)
{
    const char *kind;
    PyObject *code, *func;
    if (!PyTuple_Check(rec)) {
        PyErr_Format(PyExc_TypeError, "a frame record is a tuple, not %.100s", Py_TYPE(rec)->tp_name);
        return -1;
    }
    if (!PyArg_ParseTuple(rec, "sOOlO!O!O!;frame record", &kind, &code, &func, &p->offset,
                          &PyTuple_Type, &p->items, &PyTuple_Type, &p->nulls, &PyTuple_Type, &p->selfs))
        return -1;
    p->code = NULL;
    p->func = NULL;
    if (!strcmp(kind, "init")) {
        if (PyTuple_GET_SIZE(p->items) != 1 || PyTuple_GET_SIZE(p->nulls) || PyTuple_GET_SIZE(p->selfs))
            return bad_record(code, "an __init__ record holds the new object only");
        return 0;
    }
    if (strcmp(kind, "frame") || !PyCode_Check(code) || !PyFunction_Check(func)
        || PyFunction_GET_CODE(func) != code || ((PyCodeObject *)code)->co_flags & GEN_FLAGS)
        return bad_record(code, "not a resumable frame of its function");
    PyCodeObject *co = (PyCodeObject *)code;
    Py_ssize_t n = PyTuple_GET_SIZE(p->items), nlocals = co->co_nlocalsplus;
    tsd_instr in;
    if (n < nlocals || n >= nlocals + co->co_stacksize)
        return bad_record(code, "wrong number of slots");
    if (p->offset <= 0 || p->offset % 2 || p->offset >= _PyCode_NBYTES(co)
        || tsd_instruction(co, (int)(p->offset / 2), &in) < 0 || in.index != p->offset / 2
        || in.depth != n - nlocals + 1 || !after_inline_call(co, in.index))
        return bad_record(code, "the offset is not a resume point for this many stack entries");
    const char *kinds = PyBytes_AS_STRING(co->co_localspluskinds);
    for (Py_ssize_t i = 0; i < nlocals; i++)
        if (kinds[i] & (CO_FAST_CELL | CO_FAST_FREE) && !PyCell_Check(PyTuple_GET_ITEM(p->items, i)))
            return bad_record(code, "a cell slot does not hold a cell");
    for (int pass = 0; pass < 2; pass++) {
        PyObject *ix = pass ? p->selfs : p->nulls;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(ix); j++) {
            Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(ix, j));
            if (i == -1 && PyErr_Occurred()) return -1;
            if (i < 0 || i >= n || (i < nlocals && kinds[i] & (CO_FAST_CELL | CO_FAST_FREE)))
                return bad_record(code, "slot index out of range");
        }
    }
    p->code = co;
    p->func = (PyFunctionObject *)func;
    return 0;
}

/* A suspended container resuming the checked record `p`. */
static PyGenObject *container(const record_parts *p, PyObject *cont)
{
    PyCodeObject *co = p->code;
    Py_ssize_t n = PyTuple_GET_SIZE(p->items);
    PyGenObject *gen = PyObject_GC_NewVar(PyGenObject, &PyGen_Type, co->co_nlocalsplus + co->co_stacksize);
    if (!gen) return NULL;
    gen_init(gen, p->func, co);
    iframe *f = (iframe *)gen->gi_iframe;
    frame_init(f, p->func, co);
    f->owner = FRAME_OWNED_BY_GENERATOR;
    f->previous = NULL;
    for (Py_ssize_t i = 0; i < n; i++) f->localsplus[i] = Py_NewRef(PyTuple_GET_ITEM(p->items, i));
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(p->nulls); j++)
        Py_CLEAR(f->localsplus[PyLong_AsSsize_t(PyTuple_GET_ITEM(p->nulls, j))]);
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(p->selfs); j++)
        Py_SETREF(f->localsplus[PyLong_AsSsize_t(PyTuple_GET_ITEM(p->selfs, j))], Py_NewRef(cont));
    f->stacktop = (int)n;
    FRAME_SET_RESUME(f, (_Py_CODEUNIT *)((char *)_PyCode_CODE(co) + p->offset));
    PyObject_GC_Track(gen);
    return gen;
}

/* Runs container `gen` with the callee's result `value` (stolen) or exception `exc` (stolen);
 * `outer` is the frame it returns to logically (the next container), or NULL. */
static PyObject *run(PyThreadState *ts, PyGenObject *gen, iframe *outer, PyObject *value, PyObject *exc)
{
    iframe *f = (iframe *)gen->gi_iframe;
    f->localsplus[f->stacktop++] = value ? value : Py_NewRef(Py_None);
    iframe **head = HEAD(ts), *saved = *head;
    if (outer) *head = outer;
    gen->gi_exc_state.previous_item = ts->exc_info;     /* share the handled-exception item */
    gen->gi_frame_state = FRAME_EXECUTING;
    if (exc) raise_exc(exc);
    PyObject *res = _PyEval_EvalFrameDefault(ts, f, exc != NULL);
    *head = saved;
    after_eval(ts, gen);
    return res;
}

/* The records as a tuple, each one checked; NULL + error if any does not fit. */
static PyObject *checked(PyObject *records)
{
    if (!PyTuple_Check(records) && !PyList_Check(records)) {
        PyErr_SetString(PyExc_TypeError, "expected a sequence of frame records");
        return NULL;
    }
    PyObject *seq = PySequence_Tuple(records);
    record_parts p;
    for (Py_ssize_t k = 0; seq && k < PyTuple_GET_SIZE(seq); k++)
        if (parse_record(PyTuple_GET_ITEM(seq, k), &p) < 0) Py_CLEAR(seq);
    return seq;
}

PyObject *tpy_frames_check(PyObject *records)
{
    PyObject *seq = checked(records);
    if (!seq) return NULL;
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

/* What CPython's hidden frame does when `__init__` returns `value` (stolen) for `self`. */
static PyObject *init_done(PyObject *value, PyObject *self)
{
    if (value != Py_None) {
        PyErr_Format(PyExc_TypeError, "__init__() should return None, not '%.200s'", Py_TYPE(value)->tp_name);
        Py_DECREF(value);
        return NULL;
    }
    Py_DECREF(value);
    return Py_NewRef(self);
}

/* The frame of the next container after record k (the one k returns to), or NULL. */
static iframe *outer_of(PyGenObject **gens, Py_ssize_t k, Py_ssize_t n)
{
    while (++k < n)
        if (gens[k]) return (iframe *)gens[k]->gi_iframe;
    return NULL;
}

PyObject *tpy_frames_resume(PyObject *cont, PyObject *records, PyObject *first, PyObject *handled)
{
    PyObject *seq = checked(records);
    if (!seq) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    PyGenObject **gens = PyMem_Calloc(n ? n : 1, sizeof *gens);
    PyObject **inits = PyMem_Calloc(n ? n : 1, sizeof *inits);     /* borrowed from seq */
    if (!gens || !inits) goto nomem;
    for (Py_ssize_t k = 0; k < n; k++) {
        record_parts p;
        parse_record(PyTuple_GET_ITEM(seq, k), &p);     /* checked above */
        if (!p.code) {
            inits[k] = PyTuple_GET_ITEM(p.items, 0);
            continue;
        }
        gens[k] = container(&p, cont);
        if (!gens[k]) {
            while (k--)
                if (gens[k]) { gens[k]->gi_frame_state = FRAME_COMPLETED; Py_DECREF(gens[k]); }
            goto nomem;
        }
    }
    PyThreadState *ts = PyThreadState_Get();
    /* The pending containers form the logical chain down to our caller. */
    for (Py_ssize_t k = 0; k < n; k++) {
        iframe *outer = outer_of(gens, k, n);
        if (gens[k]) ((iframe *)gens[k]->gi_iframe)->previous = outer ? outer : *HEAD(ts);
    }
    /* The frames' except blocks leave the handled exception as it was when they were captured:
     * our caller's comes back at the end. */
    PyObject *callers_handled = PyErr_GetHandledException();
    if (handled != Py_None) PyErr_SetHandledException(handled);
    PyObject *value = PyObject_CallNoArgs(first), *exc = value ? NULL : take_exc();
    for (Py_ssize_t k = 0; k < n; k++) {
        if (!gens[k]) {                 /* an exception passes through */
            if (value && !(value = init_done(value, inits[k]))) exc = take_exc();
            continue;
        }
        value = run(ts, gens[k], outer_of(gens, k, n), value, exc);   /* takes exc */
        exc = value ? NULL : take_exc();
        Py_DECREF(gens[k]);
    }
    PyErr_SetHandledException(callers_handled);
    Py_XDECREF(callers_handled);
    PyMem_Free(gens);
    PyMem_Free(inits);
    Py_DECREF(seq);
    if (exc) raise_exc(exc);
    return value;
nomem:
    PyMem_Free(gens);
    PyMem_Free(inits);
    Py_DECREF(seq);
    return PyErr_Occurred() ? NULL : PyErr_NoMemory();
}

#else   /* CPython 3.9 / 3.10 */

static PyObject *unsupported(void)
{
    PyErr_Format(PyExc_NotImplementedError,
                 "pickling running frames needs CPython 3.11, 3.12 or 3.13; this is CPython %d.%d",
                 PY_MAJOR_VERSION, PY_MINOR_VERSION);
    return NULL;
}

PyObject *tpy_frames_capture(void *head, PyObject *top, PyObject *bottom, PyObject *cont)
{
    (void)head; (void)top; (void)bottom; (void)cont;
    return unsupported();
}

PyObject *tpy_frames_resume(PyObject *cont, PyObject *records, PyObject *first, PyObject *handled)
{
    (void)cont; (void)records; (void)first; (void)handled;
    return unsupported();
}

PyObject *tpy_frames_check(PyObject *records)
{
    (void)records;
    return unsupported();
}
#endif
