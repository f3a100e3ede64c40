/* tealet: stackful one-shot coroutines with a C ABI.  Link: `pkg-config --cflags --libs tealet`.
 * All error codes are negative.  A tealet belongs to the thread that created it. */
#ifndef TEALET_H
#define TEALET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tealet tealet_t;

enum {
    TEALET_OK = 0,
    TEALET_ERR_INVALID = -1,  /* bad argument: NULL, freeing the current or a main tealet, ... */
    TEALET_ERR_NOMEM = -2,
    TEALET_ERR_FINISHED = -3, /* target finished */
    TEALET_ERR_THREAD = -4,   /* target belongs to another thread, or its thread exited */
    TEALET_ERR_STACK = -5     /* no stack: arena/guard budget exhausted (vm.max_map_count) */
};

enum {
    TEALET_STATUS_NEW = 0,
    TEALET_STATUS_RUNNING = 1, /* the current tealet */
    TEALET_STATUS_SUSPENDED = 2,
    TEALET_STATUS_FINISHED = 3
};

enum {
    TEALET_STACK_DEDICATED = 0, /* own mmap'd slot below a guard page; default 256 KiB */
    TEALET_STACK_SHARED = 1     /* dense: shares one of a few 8 MiB regions per thread,
                                   copied to the heap only when another tealet needs the region */
};

typedef struct tealet_config {
    size_t stack_size; /* usable bytes, 0 = default; over 1 TiB: TEALET_ERR_INVALID */
    int policy;        /* TEALET_STACK_* */
} tealet_config_t;

/* Called on the first switch into the tealet with *value = that switch's value.  Returns the
 * tealet to continue in when it finishes (NULL or unusable: the thread's main tealet), with
 * *value = the value passed there. */
typedef tealet_t *(*tealet_run_t)(tealet_t *self, void *arg, void **value);

tealet_t *tealet_main(void);     /* calling thread's main tealet, created on first use; NULL on OOM.
                                    Freed when the thread exits. */
tealet_t *tealet_current(void);
tealet_t *tealet_previous(void); /* the tealet that last switched to the current one */
int tealet_create(tealet_run_t run, void *arg, const tealet_config_t *cfg /* NULL = defaults */,
                  tealet_t **out);
int tealet_switch(tealet_t *target, void **value); /* *value in: passed to target; out: value we
                                                      are resumed with.  value may be NULL. */
int tealet_exit(tealet_t *target, void *value);    /* finish the current tealet, continue in target;
                                                      returns only on error */
int tealet_status(const tealet_t *t);
uint64_t tealet_id(const tealet_t *t);
void *tealet_get_data(const tealet_t *t);
void tealet_set_data(tealet_t *t, void *data);
size_t tealet_stack_saved(const tealet_t *t); /* bytes of its stack currently copied to the heap */
size_t tealet_stack_used(const tealet_t *t); /* bytes of a suspended tealet's live stack, in place
                                or on the heap (0 unless suspended on a live thread) */
void *tealet_translate(const tealet_t *t, const void *addr); /* where the byte at a suspended
                                  tealet's stack address lives now (in place or in its heap copy);
                                  NULL if not in its live stack */
size_t tealet_stack_size(const tealet_t *t); /* usable stack bytes; 0 for a main tealet */
int tealet_free(tealet_t *t); /* NEW, SUSPENDED or FINISHED, not current or main; a suspended
                                 tealet's stack is dropped without unwinding */
int tealet_install_overflow_handler(void); /* SIGSEGV/SIGBUS on sigaltstack: a fault in the running
                                 tealet's guard prints "tealet: stack overflow in tealet <id> (stack
                                 size N)" and aborts; other faults chain to the previous handler */
const char *tealet_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
