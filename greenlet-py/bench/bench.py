"""greenlet benchmark, one measure per process (run by ci/bench-greenlet.sh with greenlet-py's
venv and with a C greenlet venv: the same code against either module).

Usage: python bench.py roundtrip|lifecycle|memory
Prints one number: seconds per operation (best of 5 runs), or bytes of RSS per suspended greenlet.
Time is the process's CPU time (time.process_time): the machine is shared, and CPU time leaves out
the time other processes hold the CPU, which wall time counts at random on either side.

python bench.py count roundtrip|lifecycle N: runs N operations and prints nothing, for counting
instructions under callgrind (the difference of two counts: independent of the machine's load).
"""
import gc
import os
import sys
import time

from greenlet import getcurrent, greenlet


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def best(measure, repeat=5):
    return min(measure() for _ in range(repeat))


def roundtrip(n=200000, clock=time.process_time):
    """main -> g -> main, g already running."""
    main = getcurrent()

    def loop():
        while True:
            main.switch(1)

    g = greenlet(loop)
    g.switch()
    t = clock()
    for _ in range(n):
        g.switch()
    return (clock() - t) / n


def lifecycle(n=100000, clock=time.process_time):
    """Create a greenlet, switch into it, it returns."""
    def body():
        return 1

    t = clock()
    for _ in range(n):
        greenlet(body).switch()
    return (clock() - t) / n


def memory(n=100000):
    """RSS growth per greenlet suspended three Python frames deep."""
    main = getcurrent()

    def level3():
        main.switch(1)

    def level2():
        level3()

    def level1():
        level2()

    keep = []
    gc.collect()
    before = rss()
    for _ in range(n):
        g = greenlet(level1)
        g.switch()
        keep.append(g)
    gc.collect()
    return (rss() - before) / n


def main():
    what = sys.argv[1]
    if what == "count":  # clock=int: int() is 0, no clock read in the counted loop
        {"roundtrip": roundtrip, "lifecycle": lifecycle}[sys.argv[2]](int(sys.argv[3]), int)
    elif what == "memory":
        print(memory())
    else:
        print(best({"roundtrip": roundtrip, "lifecycle": lifecycle}[what]))
    sys.stdout.flush()
    # Leave the suspended greenlets to process exit, as real programs do.
    os._exit(0)


if __name__ == "__main__":
    main()
