/* Tool hooks (cargo features asan, valgrind): longjmp inside tealets (ASan unpoisons the stack
   it believes is current), several tealets sharing stack regions (copied in and out), and a
   suspended tealet freed with its frames abandoned. Built with -fsanitize=address it must run
   without ASan warnings; under valgrind without "client switching stacks?". */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <tealet.h>

#define N 6
#define ROUNDS 50

static jmp_buf jb[N];

static __attribute__((noinline)) void jump_back(int k, int n) {
    char pad[64];
    memset(pad, n, sizeof pad);
    longjmp(jb[k], pad[3] + 1);
}

static __attribute__((noinline)) void through_longjmp(int k, int n) {
    if (setjmp(jb[k]) == 0) jump_back(k, n);
}

static tealet_t *run(tealet_t *self, void *arg, void **value) {
    int k = (int)(intptr_t)arg;
    for (int i = 0; i < ROUNDS; i++) {
        char buf[256 + 64 * k];
        memset(buf, i + k, sizeof buf);
        through_longjmp(k, i);
        void *v = (void *)(intptr_t)(buf[7] + buf[sizeof buf - 1]);
        tealet_switch(tealet_previous(), &v);
    }
    (void)self;
    *value = (void *)-1;
    return tealet_previous();
}

static int run_policy(int policy) {
    tealet_config_t cfg = {0, policy};
    tealet_t *t[N + 1];
    for (int k = 0; k <= N; k++)
        if (tealet_create(run, (void *)(intptr_t)k, &cfg, &t[k]) != TEALET_OK) return 1;
    for (int i = 0; i < ROUNDS; i++)
        for (int k = 0; k < N; k++) {
            void *v = NULL;
            if (tealet_switch(t[k], &v) != TEALET_OK || (intptr_t)v != 2 * (i + k)) {
                fprintf(stderr, "FAIL: tealet %d round %d got %ld\n", k, i, (long)(intptr_t)v);
                return 1;
            }
        }
    for (int k = 0; k < N; k++) {
        void *v = NULL;
        if (tealet_switch(t[k], &v) != TEALET_OK || (intptr_t)v != -1) return 1;
        if (tealet_free(t[k]) != TEALET_OK) return 1;
    }
    /* Abandon a suspended tealet, then reuse its stack. */
    void *v = NULL;
    if (tealet_switch(t[N], &v) != TEALET_OK || tealet_free(t[N]) != TEALET_OK) return 1;
    tealet_t *again;
    if (tealet_create(run, (void *)(intptr_t)0, &cfg, &again) != TEALET_OK) return 1;
    for (int i = 0;; i++) {
        v = NULL;
        if (tealet_switch(again, &v) != TEALET_OK) return 1;
        if ((intptr_t)v == -1) break;
        if ((intptr_t)v != 2 * i) return 1;
    }
    return tealet_free(again) != TEALET_OK;
}

int main(void) {
    if (run_policy(TEALET_STACK_DEDICATED) || run_policy(TEALET_STACK_SHARED)) return 1;
    printf("c program: tool hooks ok (both policies)\n");
    return 0;
}
