/* Frame chains of suspended continuations as plain data, and the driver that resumes such data
 * (CPython 3.11-3.13; earlier versions raise NotImplementedError naming the version).
 *
 * Capture: a continuation suspended in `switch` has its Python frames on its data stack. A frame
 * that called a Python function inline (no C in between) has its value stack stored and resumes
 * by pushing the callee's result and continuing after the call, exactly like a generator resumes
 * after a yield. Such a frame becomes a record:
 *     (kind, code, function, offset, items, nulls, selfs)
 * kind "frame"; offset = byte offset of the resume point; items = localsplus[0:stacktop]
 * (locals, cells, free vars, value stack) with None where the slot is NULL (indices in `nulls`)
 * and None where it is the captured continulet itself (indices in `selfs`). A frame that cannot
 * be resumed is recorded with kind "c-call" (inside a call into C: offset = that instruction),
 * "generator" (a generator/coroutine frame) or "shim" (3.13's hidden __init__ frame), items None.
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
#include <string.h>

#define V311 (PY_VERSION_HEX >= 0x030B0000)
#define V312 (PY_VERSION_HEX >= 0x030C0000)
#define V313 (PY_VERSION_HEX >= 0x030D0000)

#if V311
#include "internal/pycore_frame.h"
#if V313
#include "internal/pycore_code.h"
#endif

typedef struct _PyInterpreterFrame iframe;

/* ---- the version differences, in one place ---- */
#if V313
#define FRAME_CODE(f)    ((f)->f_executable)              /* a code object, or None for shims */
#define FRAME_FUNC(f)    ((f)->f_funcobj)
#define FRAME_AT(f)      ((f)->instr_ptr)                 /* instruction executing / next */
#define FRAME_RESUME(f)  ((f)->instr_ptr + (f)->return_offset)
#define FRAME_SET_RESUME(f, p) ((f)->instr_ptr = (p), (f)->return_offset = 0)
#define HEAD(ts)         (&(ts)->current_frame)
#elif V312
#define FRAME_CODE(f)    ((PyObject *)(f)->f_code)
#define FRAME_FUNC(f)    ((f)->f_funcobj)
#define FRAME_AT(f)      ((f)->prev_instr)
#define FRAME_RESUME(f)  ((f)->prev_instr + 1 + (f)->return_offset)
#define FRAME_SET_RESUME(f, p) ((f)->prev_instr = (p) - 1, (f)->return_offset = 0)
#define HEAD(ts)         (&(ts)->cframe->current_frame)
#else
#define FRAME_CODE(f)    ((PyObject *)(f)->f_code)
#define FRAME_FUNC(f)    ((PyObject *)(f)->f_func)
#define FRAME_AT(f)      ((f)->prev_instr)
#define FRAME_RESUME(f)  ((f)->prev_instr + 1)
#define FRAME_SET_RESUME(f, p) ((f)->prev_instr = (p) - 1)
#define HEAD(ts)         (&(ts)->cframe->current_frame)
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

static long unit_offset(PyCodeObject *code, _Py_CODEUNIT *p)
{
    return (long)((char *)p - (char *)_PyCode_CODE(code));
}

static PyObject *record(iframe *f, PyObject *cont)
{
    PyObject *code = FRAME_CODE(f), *func = FRAME_FUNC(f);
    const char *kind;
    if (!PyCode_Check(code) || !PyFunction_Check(func)) kind = "shim";
    else if (((PyCodeObject *)code)->co_flags & GEN_FLAGS) kind = "generator";
    else if (f->stacktop < ((PyCodeObject *)code)->co_nlocalsplus) kind = "c-call";
    else kind = "frame";
    if (!PyFunction_Check(func)) func = Py_None;
    if (strcmp(kind, "frame")) {
        long at = PyCode_Check(code) ? unit_offset((PyCodeObject *)code, FRAME_AT(f)) : -1;
        return Py_BuildValue("(sOOlO()())", kind, code, func, at, Py_None);
    }
    int n = f->stacktop, nnull = 0, nself = 0;
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
                         unit_offset((PyCodeObject *)code, FRAME_RESUME(f)), items, nulls, selfs);
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
    for (f = f->previous; f; f = f->previous) {
#if V312
        if (f->owner == FRAME_OWNED_BY_CSTACK) continue;
#endif
        if (FRAME_CODE(f) == bottom) break;
        PyObject *r = record(f, cont);
        if (!r || PyList_Append(out, r) < 0) {
            Py_XDECREF(r);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(r);
    }
    return out;
}

/* A suspended container resuming `func` at byte `offset` with `items`; NULL + error on bad data. */
static PyGenObject *container(PyObject *rec, PyObject *cont)
{
    const char *kind;
    PyObject *code, *func, *items, *nulls, *selfs;
    long offset;
    if (!PyTuple_Check(rec) || !PyArg_ParseTuple(rec, "sOOlO!O!O!;frame record", &kind, &code, &func, &offset,
                                                 &PyTuple_Type, &items, &PyTuple_Type, &nulls, &PyTuple_Type, &selfs))
        return NULL;
    if (strcmp(kind, "frame") || !PyFunction_Check(func) || PyFunction_GET_CODE(func) != code) {
        PyErr_SetString(PyExc_ValueError, "frame record: not a resumable frame of its function");
        return NULL;
    }
    PyCodeObject *co = (PyCodeObject *)code;
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    if (co->co_flags & GEN_FLAGS || n < co->co_nlocalsplus || n >= co->co_nlocalsplus + co->co_stacksize
        || offset <= 0 || offset % 2 || offset >= _PyCode_NBYTES(co)) {
        PyErr_SetString(PyExc_ValueError, "frame record does not fit its code object");
        return NULL;
    }
    PyGenObject *gen = PyObject_GC_NewVar(PyGenObject, &PyGen_Type, co->co_nlocalsplus + co->co_stacksize);
    if (!gen) return NULL;
    gen_init(gen, (PyFunctionObject *)func, co);
    iframe *f = (iframe *)gen->gi_iframe;
    frame_init(f, (PyFunctionObject *)func, co);
    f->owner = FRAME_OWNED_BY_GENERATOR;
    f->previous = NULL;
    for (Py_ssize_t i = 0; i < n; i++) f->localsplus[i] = Py_NewRef(PyTuple_GET_ITEM(items, i));
    f->stacktop = (int)n;
    FRAME_SET_RESUME(f, (_Py_CODEUNIT *)((char *)_PyCode_CODE(co) + offset));
    PyObject_GC_Track(gen);
    for (int pass = 0; pass < 2; pass++) {
        PyObject *ix = pass ? selfs : nulls;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(ix); j++) {
            Py_ssize_t i = PyLong_AsSsize_t(PyTuple_GET_ITEM(ix, j));
            if (i < 0 || i >= n) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "frame record: slot index out of range");
                gen->gi_frame_state = FRAME_COMPLETED;   /* dropped without running its code */
                Py_DECREF(gen);
                return NULL;
            }
            Py_XSETREF(f->localsplus[i], pass ? Py_NewRef(cont) : NULL);
        }
    }
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

PyObject *tpy_frames_resume(PyObject *cont, PyObject *records, PyObject *first, PyObject *handled)
{
    if (!PyTuple_Check(records) && !PyList_Check(records)) {
        PyErr_SetString(PyExc_TypeError, "resume_frames() expects a sequence of frame records");
        return NULL;
    }
    PyObject *seq = PySequence_Tuple(records);
    if (!seq) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(seq);
    PyGenObject **gens = PyMem_Calloc(n ? n : 1, sizeof *gens);
    if (!gens) { Py_DECREF(seq); return PyErr_NoMemory(); }
    for (Py_ssize_t k = 0; k < n; k++) {
        gens[k] = container(PyTuple_GET_ITEM(seq, k), cont);
        if (!gens[k]) {
            while (k--) { gens[k]->gi_frame_state = FRAME_COMPLETED; Py_DECREF(gens[k]); }
            PyMem_Free(gens);
            Py_DECREF(seq);
            return NULL;
        }
    }
    Py_DECREF(seq);
    PyThreadState *ts = PyThreadState_Get();
    /* The pending containers form the logical chain down to our caller. */
    for (Py_ssize_t k = 0; k < n; k++)
        ((iframe *)gens[k]->gi_iframe)->previous = k + 1 < n ? (iframe *)gens[k + 1]->gi_iframe : *HEAD(ts);
    if (handled != Py_None) PyErr_SetHandledException(handled);
    PyObject *value = PyObject_CallNoArgs(first), *exc = value ? NULL : take_exc();
    for (Py_ssize_t k = 0; k < n; k++) {
        iframe *outer = k + 1 < n ? (iframe *)gens[k + 1]->gi_iframe : NULL;
        value = run(ts, gens[k], outer, value, exc);
        exc = value ? NULL : take_exc();
        Py_DECREF(gens[k]);
    }
    PyMem_Free(gens);
    if (exc) raise_exc(exc);
    return value;
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
#endif
