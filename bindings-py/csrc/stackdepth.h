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

/* For a frame suspended inside the call made by `in` (a call instruction): the value-stack
 * entries that are live while the callee runs (`height`, all of the call's inputs still in
 * place) and how many of them are the call's inputs (`ninputs`: callable, self or NULL,
 * arguments, keyword names), the top `ninputs` entries. Returns 0, or -1 if `in` does not make
 * a call whose inputs stay on the stack for its duration. */
int tsd_call_inputs(const tsd_instr *in, int *height, int *ninputs);

#endif
