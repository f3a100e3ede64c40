"""Benchmark _continuation against C greenlet, one kind per process (run by ci/bench-bindings.sh).

Usage: python bench.py continulet|greenlet roundtrip|lifecycle|memory|million
Prints one number: seconds per operation, or bytes of RSS per suspended continuation, or
"ok <rss bytes>" for a million suspended continuations.
"""
import gc
import sys
import time


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def make_api(kind):
    if kind == "continulet":
        from _continuation import continulet

        def spawn(fn):
            return continulet(lambda c: fn(c.switch))

        def resume(c):
            return c.switch()
    else:
        from greenlet import greenlet, getcurrent

        def spawn(fn):
            main = getcurrent()
            return greenlet(lambda: fn(main.switch))

        def resume(g):
            return g.switch()
    return spawn, resume


# Timings are the best of REPEATS runs: the machine is shared, and the fastest run is the one
# least disturbed by other processes (as timeit recommends).
REPEATS = 5


def roundtrip(spawn, resume, n=100000):
    def loop(back):
        while True:
            back(1)
    c = spawn(loop)
    resume(c)
    best = float("inf")
    for _ in range(REPEATS):
        t = time.perf_counter()
        for _ in range(n):
            resume(c)
        best = min(best, (time.perf_counter() - t) / n)
    return best


def lifecycle(spawn, resume, n=20000):
    def body(back):
        return 1
    best = float("inf")
    for _ in range(REPEATS):
        t = time.perf_counter()
        for _ in range(n):
            resume(spawn(body))
        best = min(best, (time.perf_counter() - t) / n)
    return best


def suspended(spawn, resume, n):
    def level3(back):
        back(1)
    def level2(back):
        level3(back)
    def level1(back):
        level2(back)
    keep = []
    gc.collect()
    before = rss()
    for _ in range(n):
        c = spawn(level1)
        resume(c)
        keep.append(c)
    gc.collect()
    return keep, rss() - before


def main():
    kind, what = sys.argv[1], sys.argv[2]
    spawn, resume = make_api(kind)
    if what == "roundtrip":
        print(roundtrip(spawn, resume))
    elif what == "lifecycle":
        print(lifecycle(spawn, resume))
    elif what == "memory":
        n = 100000
        keep, grown = suspended(spawn, resume, n)
        print(grown / n)
    elif what == "million":
        keep, grown = suspended(spawn, resume, 1000000)
        print("ok", grown)
    sys.stdout.flush()
    # Leave suspended continuations to process exit, as real programs do.
    import os
    os._exit(0)


if __name__ == "__main__":
    main()
