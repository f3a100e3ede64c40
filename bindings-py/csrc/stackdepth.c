/* Static value-stack analysis of CPython 3.9-3.13 bytecode (see stackdepth.h). Every bytecode
 * difference between the versions is in this file, next to the version condition. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <opcode.h>
#include <stdint.h>
#include <string.h>
#include "stackdepth.h"

#define V310 (PY_VERSION_HEX >= 0x030A0000)
#define V311 (PY_VERSION_HEX >= 0x030B0000)
#define V312 (PY_VERSION_HEX >= 0x030C0000)
#define V313 (PY_VERSION_HEX >= 0x030D0000)

#if V312
#define REQUEST_EXTRA_INDEX PyUnstable_Eval_RequestCodeExtraIndex
#define GET_EXTRA PyUnstable_Code_GetExtra
#define SET_EXTRA PyUnstable_Code_SetExtra
#else
#define REQUEST_EXTRA_INDEX _PyEval_RequestCodeExtraIndex
#define GET_EXTRA _PyCode_GetExtra
#define SET_EXTRA _PyCode_SetExtra
#endif

/* Per code object: for each code unit, the depth before the instruction it belongs to, and for
 * opcode units the base opcode and full argument. n < 0 marks code that could not be analysed. */
typedef struct table {
    int n;
    int16_t *depth;
    uint8_t *op;
    int32_t *arg;
} table;

static Py_ssize_t extra_index = -1;

static void table_free(void *p) { PyMem_RawFree(p); }

/* Jumps, as the interpreter of each version decodes them. */
static int is_jump(int op)
{
    switch (op) {
#if !V311
    case FOR_ITER: case JUMP_FORWARD: case SETUP_FINALLY: case SETUP_WITH: case SETUP_ASYNC_WITH:
    case JUMP_IF_FALSE_OR_POP: case JUMP_IF_TRUE_OR_POP: case JUMP_ABSOLUTE:
    case POP_JUMP_IF_FALSE: case POP_JUMP_IF_TRUE: case JUMP_IF_NOT_EXC_MATCH:
#elif !V312
    case FOR_ITER: case JUMP_FORWARD: case JUMP_IF_FALSE_OR_POP: case JUMP_IF_TRUE_OR_POP:
    case POP_JUMP_FORWARD_IF_FALSE: case POP_JUMP_FORWARD_IF_TRUE: case SEND:
    case POP_JUMP_FORWARD_IF_NOT_NONE: case POP_JUMP_FORWARD_IF_NONE:
    case JUMP_BACKWARD_NO_INTERRUPT: case JUMP_BACKWARD:
    case POP_JUMP_BACKWARD_IF_NOT_NONE: case POP_JUMP_BACKWARD_IF_NONE:
    case POP_JUMP_BACKWARD_IF_FALSE: case POP_JUMP_BACKWARD_IF_TRUE:
#else
    case FOR_ITER: case JUMP_FORWARD: case POP_JUMP_IF_FALSE: case POP_JUMP_IF_TRUE: case SEND:
    case POP_JUMP_IF_NOT_NONE: case POP_JUMP_IF_NONE: case JUMP_BACKWARD_NO_INTERRUPT:
    case JUMP_BACKWARD:
#endif
        return 1;
    default:
        return 0;
    }
}

/* Target code unit of a jump at `op`; `next` is the unit after it (after its inline caches). */
static int jump_target(int op, int oparg, int next)
{
#if !V310
    /* 3.9: arguments count bytes; some jumps are absolute */
    switch (op) {
    case FOR_ITER: case JUMP_FORWARD: case SETUP_FINALLY: case SETUP_WITH: case SETUP_ASYNC_WITH:
        return next + oparg / 2;
    default:
        return oparg / 2;
    }
#elif !V311
    /* 3.10: arguments count code units; some jumps are absolute */
    switch (op) {
    case FOR_ITER: case JUMP_FORWARD: case SETUP_FINALLY: case SETUP_WITH: case SETUP_ASYNC_WITH:
        return next + oparg;
    default:
        return oparg;
    }
#else
    /* 3.11+: all relative to the unit after the inline caches; backward ones subtract */
    switch (op) {
    case JUMP_BACKWARD: case JUMP_BACKWARD_NO_INTERRUPT:
#if !V312
    case POP_JUMP_BACKWARD_IF_NOT_NONE: case POP_JUMP_BACKWARD_IF_NONE:
    case POP_JUMP_BACKWARD_IF_FALSE: case POP_JUMP_BACKWARD_IF_TRUE:
#endif
        return next - oparg;
    default:
        return next + oparg;
    }
#endif
}

/* Instructions after which control never falls through to the next one. */
static int ends_block(int op)
{
    switch (op) {
    case RETURN_VALUE: case RAISE_VARARGS: case RERAISE: case JUMP_FORWARD:
#if !V311
    case JUMP_ABSOLUTE:
#else
    case JUMP_BACKWARD: case JUMP_BACKWARD_NO_INTERRUPT:
#endif
#if V312
    case RETURN_CONST:
#endif
        return 1;
    default:
        return 0;
    }
}

/* The compiler's stack effect, except where the interpreter's stack differs from its accounting. */
static int stack_effect(int op, int oparg, int jump)
{
#if V311 && !V313
    /* The generator's first resumption pushes the sent value, popped by the next POP_TOP. */
    if (op == RETURN_GENERATOR) return 1;
#endif
    return PyCompile_OpcodeStackEffectWithJump(op, oparg, jump);
}

static void push(table *t, int *work, int *nwork, int at, int depth)
{
    if (at < 0 || at >= t->n || depth < 0 || depth > INT16_MAX || t->depth[at] >= 0) return;
    t->depth[at] = (int16_t)depth;
    work[(*nwork)++] = at;
}

#if V311
static int read_varint(const unsigned char *p, Py_ssize_t len, Py_ssize_t *pos)
{
    if (*pos >= len) return -1;
    int b = p[(*pos)++];
    int val = b & 63;
    while (b & 64) {
        if (*pos >= len) return -1;
        b = p[(*pos)++];
        val = (val << 6) | (b & 63);
    }
    return val;
}

/* 3.11+: exception handlers from co_exceptiontable (start, length, target, depth<<1|lasti). At the
 * handler the stack is cut to depth, then lasti (if flagged) and the exception are pushed. */
static void seed_handlers(PyCodeObject *code, table *t, int *work, int *nwork)
{
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(code->co_exceptiontable);
    Py_ssize_t len = PyBytes_GET_SIZE(code->co_exceptiontable), pos = 0;
    while (pos < len) {
        int start = read_varint(p, len, &pos);
        int length = read_varint(p, len, &pos);
        int target = read_varint(p, len, &pos);
        int dl = read_varint(p, len, &pos);
        if (start < 0 || length < 0 || target < 0 || dl < 0) return;
        push(t, work, nwork, target, (dl >> 1) + (dl & 1) + 1);
    }
}
#endif

static table *analyse(PyCodeObject *code)
{
#if V311
    PyObject *bytes = PyCode_GetCode(code);   /* base opcodes: specialisations undone */
    if (!bytes) { PyErr_Clear(); return NULL; }
#else
    PyObject *bytes = code->co_code;
    Py_INCREF(bytes);
#endif
    const unsigned char *code_units = (const unsigned char *)PyBytes_AS_STRING(bytes);
    int n = (int)(PyBytes_GET_SIZE(bytes) / 2);
    size_t size = sizeof(table) + (size_t)n * (sizeof(int16_t) + sizeof(uint8_t) + sizeof(int32_t));
    table *t = PyMem_RawMalloc(size);
    int *work = PyMem_RawMalloc(((size_t)n + 1) * sizeof(int));
    if (!t || !work) {
        PyMem_RawFree(t);
        PyMem_RawFree(work);
        Py_DECREF(bytes);
        return NULL;
    }
    t->n = n;
    t->arg = (int32_t *)(t + 1);
    t->depth = (int16_t *)(t->arg + n);
    t->op = (uint8_t *)(t->depth + n);
    memset(t->depth, 0xff, (size_t)n * sizeof(int16_t));   /* -1: not reached */
    memset(t->op, 0, (size_t)n);
    memset(t->arg, 0, (size_t)n * sizeof(int32_t));
    int nwork = 0;
#if V310 && !V311
    /* 3.10: a generator's first resumption pushes the sent value, popped by its GEN_START */
    push(t, work, &nwork, 0, n > 0 && code_units[0] == GEN_START ? 1 : 0);
#else
    push(t, work, &nwork, 0, 0);
#endif
#if V311
    seed_handlers(code, t, work, &nwork);
#endif
    int failed = 0;
    while (nwork && !failed) {
        int i = work[--nwork], d = t->depth[i], j = i, oparg = 0;
        while (j < n && code_units[2 * j] == EXTENDED_ARG) {
            oparg = (oparg | code_units[2 * j + 1]) << 8;
            t->op[j] = EXTENDED_ARG;
            t->depth[j++] = (int16_t)d;
        }
        if (j >= n) { failed = 1; break; }
        int op = code_units[2 * j];
        oparg |= code_units[2 * j + 1];
        t->depth[j] = (int16_t)d;
        t->op[j] = (uint8_t)op;
        t->arg[j] = oparg;
        int next = j + 1;
#if V311
        while (next < n && code_units[2 * next] == CACHE) t->depth[next++] = (int16_t)d;
#endif
        int fall = stack_effect(op, oparg, 0);
        int jump = stack_effect(op, oparg, 1);
        if (fall == PY_INVALID_STACK_EFFECT || jump == PY_INVALID_STACK_EFFECT) { failed = 1; break; }
        if (is_jump(op)) push(t, work, &nwork, jump_target(op, oparg, next), d + jump);
        if (!ends_block(op)) push(t, work, &nwork, next, d + fall);
    }
    PyMem_RawFree(work);
    Py_DECREF(bytes);
    if (failed) t->n = -1;
    return t;
}

static table *table_of(PyCodeObject *code)
{
    if (extra_index < 0) {
        extra_index = REQUEST_EXTRA_INDEX(table_free);
        if (extra_index < 0) { PyErr_Clear(); return NULL; }
    }
    void *extra = NULL;
    if (GET_EXTRA((PyObject *)code, extra_index, &extra) < 0) { PyErr_Clear(); return NULL; }
    if (extra) return extra;
    table *t = analyse(code);
    if (!t) return NULL;
    if (SET_EXTRA((PyObject *)code, extra_index, t) < 0) {
        PyErr_Clear();
        PyMem_RawFree(t);
        return NULL;
    }
    return t;
}

int tsd_instruction(PyCodeObject *code, int index, tsd_instr *out)
{
    table *t = table_of(code);
    if (!t || index < 0 || index >= t->n) return -1;
    int j = index;
    while (j < t->n && t->op[j] == EXTENDED_ARG) j++;   /* <=3.10 record the prefix's index */
    if (j >= t->n || t->depth[j] < 0 || t->op[j] == 0) return -1;   /* unreached, or a 3.11+ cache */
    out->index = j;
    out->opcode = t->op[j];
    out->oparg = t->arg[j];
    out->depth = t->depth[j];
    return 0;
}

int tsd_call_of(const tsd_instr *in, tsd_call *out)
{
    int h = in->depth, n, marker;
    switch (in->opcode) {
#if !V311
    case CALL_FUNCTION:      n = in->oparg + 1; marker = -1; break;  /* callable, args */
    case CALL_FUNCTION_KW:   n = in->oparg + 2; marker = -1; break;  /* callable, args, names */
    case CALL_METHOD:        n = in->oparg + 2; marker = 0; break;   /* method or NULL, self or callable, args */
    case CALL_FUNCTION_EX:   n = 2 + (in->oparg & 1); marker = -2; break;
#elif !V312
    case PRECALL:            n = in->oparg + 2; marker = 0; break;   /* method or NULL, self or callable, args */
    case CALL:               n = in->oparg + 2; marker = 0; h += in->oparg; break;  /* args booked on PRECALL */
    case CALL_FUNCTION_EX:   n = 3 + (in->oparg & 1); marker = -2; break;
#elif !V313
    case CALL:               n = in->oparg + 2; marker = 0; break;   /* method or NULL, self or callable, args */
    case CALL_FUNCTION_EX:   n = 3 + (in->oparg & 1); marker = -2; break;
#else
    case CALL:               n = in->oparg + 2; marker = 1; break;   /* callable, self or NULL, args */
    case CALL_KW:            n = in->oparg + 3; marker = 1; break;   /* ..., keyword names */
    case CALL_FUNCTION_EX:   n = 3 + (in->oparg & 1); marker = -2; break;
#endif
    default:
        return -1;
    }
    if (n > h) return -1;
    out->height = h;
    out->base = h - n;
    out->vector = marker != -2;
    out->marker = marker >= 0 ? out->base + marker : -1;
    return 0;
}

int tsd_call_vector_slot(const tsd_call *c, PyObject *const *stack)
{
    if (!c->vector) return -1;
    if (c->marker < 0) return c->base;                 /* <=3.10 plain calls: the callable */
    if (c->marker > c->base) return c->base;           /* 3.13: the callable, below self or NULL */
    return stack[c->marker] ? c->base : c->base + 1;   /* 3.11/3.12 method form: the method; else below the args */
}

int tsd_code_units(PyCodeObject *code)
{
    table *t = table_of(code);
    return t ? t->n : -1;
}
