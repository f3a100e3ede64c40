/* Static value-stack analysis of CPython bytecode (3.9-3.13), cached per code object.
 *
 * Before 3.14 CPython does not record how deep the value stack of an executing frame is, so
 * whoever needs to see a suspended frame's stack (GC traversal, pickling) derives it from the
 * bytecode: the depth before each instruction, from the compiler's own stack effects along the
 * control flow (jumps, and exception handlers: SETUP_* on <=3.10, the exception table on 3.11+).
 * Instructions are addressed by code-unit index (2-byte units; a leading EXTENDED_ARG names the
 * instruction it extends). All version differences of the bytecode live in stackdepth.c. */
#ifndef TEALET_STACKDEPTH_H
#define TEALET_STACKDEPTH_H
#include <Python.h>

typedef struct tsd_instr {
    int index;    /* code unit of the opcode itself (after any EXTENDED_ARG prefix) */
    int opcode;   /* base opcode (specialised and instrumented forms undone) */
    int oparg;    /* full argument, EXTENDED_ARG prefixes included */
    int depth;    /* value-stack entries before the instruction runs; -1 if unreachable */
} tsd_instr;

/* Describes the instruction at code unit `index` of `code`. Returns 0, or -1 (no exception set)
 * when the index is out of range or the code could not be analysed. May allocate on first use
 * per code object; never runs Python code. */
int tsd_instruction(PyCodeObject *code, int index, tsd_instr *out);

/* Number of code units of `code` (-1 if it could not be analysed). */
int tsd_code_units(PyCodeObject *code);

/* The value stack of a frame suspended inside the call a call instruction makes. */
typedef struct tsd_call {
    int height;    /* entries on the stack while the called object runs */
    int base;      /* the instruction's inputs are entries [base, height); below is untouched */
    int marker;    /* entry that is non-NULL exactly when a self is passed (method form), or -1 */
    int vector;    /* 1: the inputs are the vector passed to the called object (see below);
                      0: the instruction may swap them for converted copies (CALL_FUNCTION_EX) */
} tsd_call;

/* Describes the call made by `in`. Returns 0, or -1 if `in` is not a call instruction. */
int tsd_call_of(const tsd_instr *in, tsd_call *out);

/* The entry holding the called object. Before 3.13 it is also the entry just below the
 * arguments passed to it, which the callee may borrow for the duration of the call
 * (PY_VECTORCALL_ARGUMENTS_OFFSET: bound methods and partials put self there), so it holds an
 * owned reference only if the called object is known not to. 3.13 keeps the callable below a
 * self-or-NULL entry (the borrowable one when NULL). -1 if `c` is not a vector call. */
int tsd_call_vector_slot(const tsd_call *c, PyObject *const *stack);

#endif
