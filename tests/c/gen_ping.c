/* Generator and ping-pong through the C ABI; exit status 0 on success. */
#include <stdio.h>
#include <stdint.h>
#include <tealet.h>

#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); return 1; } } while (0)

static tealet_t *gen_run(tealet_t *self, void *arg, void **value) {
    intptr_t n = (intptr_t)arg;
    for (intptr_t i = 0; i < n; i++) {
        void *v = (void *)(i * i);
        tealet_switch(tealet_previous(), &v);
    }
    *value = (void *)-1;
    (void)self;
    return tealet_previous();
}

static tealet_t *pong_run(tealet_t *self, void *arg, void **value) {
    tealet_t *peer = arg;
    void *v = *value;
    while ((intptr_t)v >= 0) {
        v = (void *)((intptr_t)v + 1);
        tealet_switch(peer, &v);
    }
    (void)self;
    *value = v;
    return peer;
}

static int run_policy(int policy) {
    tealet_config_t cfg = {0, policy};
    tealet_t *gen;
    CHECK(tealet_create(gen_run, (void *)10, &cfg, &gen) == TEALET_OK);
    for (intptr_t i = 0;; i++) {
        void *v = NULL;
        CHECK(tealet_switch(gen, &v) == TEALET_OK);
        if ((intptr_t)v == -1) { CHECK(i == 10); break; }
        CHECK((intptr_t)v == i * i);
    }
    CHECK(tealet_status(gen) == TEALET_STATUS_FINISHED);
    void *v = NULL;
    CHECK(tealet_switch(gen, &v) == TEALET_ERR_FINISHED);
    CHECK(tealet_free(gen) == TEALET_OK);

    tealet_t *pong;
    CHECK(tealet_create(pong_run, tealet_main(), &cfg, &pong) == TEALET_OK);
    v = (void *)0;
    for (int i = 0; i < 100000; i++) {
        CHECK(tealet_switch(pong, &v) == TEALET_OK);
        CHECK((intptr_t)v == 2 * i + 1);
        v = (void *)((intptr_t)v + 1);
    }
    v = (void *)-5;
    CHECK(tealet_switch(pong, &v) == TEALET_OK);
    CHECK((intptr_t)v == -5);
    CHECK(tealet_status(pong) == TEALET_STATUS_FINISHED);
    CHECK(tealet_free(pong) == TEALET_OK);
    CHECK(tealet_free(tealet_main()) == TEALET_ERR_INVALID);
    return 0;
}

int main(void) {
    if (run_policy(TEALET_STACK_DEDICATED) || run_policy(TEALET_STACK_SHARED)) return 1;
    printf("c program: generator and ping-pong ok (both policies)\n");
    return 0;
}
