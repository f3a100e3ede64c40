"""Benchmark our stackless against peers, one kind per process (run by ci/bench-stackless.sh).

Usage: python bench.py KIND MEASURE
KIND: stackless (ours), pypy (PyPy's lib_pypy/stackless.py on CPython over our _continuation),
      greenlet (the same programs on a minimal scheduler and channel over C greenlet).
MEASURE: roundtrip (channel send+receive between two tasklets, seconds per round trip),
         schedule (schedule() among 1,000 tasklets, seconds per schedule()),
         both the best of several timed blocks (the machine is shared),
         memory N (N tasklets blocked on channels at once: RSS bytes per blocked tasklet),
         unstarted N (N tasklets created and inserted, never run: RSS bytes per tasklet;
         greenlet: a greenlet created with its arguments bound, queued, never switched into).
"""
import collections
import functools
import gc
import importlib.util
import sys
import time

PYPY_STACKLESS = "/usr/lib/pypy3.9/stackless.py"


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def greenlet_stackless(lazy=False):
    """A minimal stackless over greenlet: a run queue, schedule(), a channel
    that hands over to a blocked receiver at once (Stackless's default)."""
    from greenlet import getcurrent, greenlet
    queue = collections.deque()
    main = getcurrent()

    class tasklet:
        def __init__(self, func):
            self.func = func

        def __call__(self, *args):
            if lazy:
                g = greenlet(functools.partial(self.func, *args), parent=main)
                queue.append(g)
                return g
            # Started at once from main and parked: a greenlet inherits the
            # recursion depth of whoever starts it (as a continulet does).
            def start():
                main.switch()
                self.func(*args)
            g = greenlet(start, parent=main)
            g.switch()
            queue.append(g)
            return g

    def schedule():
        queue.append(getcurrent())
        queue.popleft().switch()

    def block():
        (queue.popleft() if queue else main).switch()

    class channel:
        def __init__(self):
            self.waiting = collections.deque()
            self.balance = 0

        def send(self, value):
            if self.balance < 0:
                self.balance += 1
                receiver = self.waiting.popleft()
                queue.append(getcurrent())
                receiver.switch(value)
            else:
                self.balance += 1
                self.waiting.append((getcurrent(), value))
                block()

        def receive(self):
            if self.balance > 0:
                self.balance -= 1
                sender, value = self.waiting.popleft()
                queue.append(sender)
                return value
            self.balance -= 1
            self.waiting.append(getcurrent())
            return block()

    def run():
        while queue:
            queue.append(main)
            queue.popleft().switch()
            if main in queue:
                queue.remove(main)

    return tasklet, channel, schedule, run


def load(kind, lazy=False):
    if kind == "greenlet":
        return greenlet_stackless(lazy)
    if kind == "pypy":
        spec = importlib.util.spec_from_file_location("pypy_stackless", PYPY_STACKLESS)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    else:
        import stackless as mod
    return mod.tasklet, mod.channel, mod.schedule, mod.run


def best(blocks):
    """The fastest of several timed blocks: the machine is shared, noise only adds time."""
    return min(blocks)


def roundtrip(tasklet, channel, schedule, run, n=20000, repeat=7):
    ping, pong = channel(), channel()

    def echo():
        for _ in range(n * repeat + 1):
            pong.send(ping.receive())

    def driver(out):
        ping.send(0)
        pong.receive()
        for _ in range(repeat):
            t = time.perf_counter()
            for i in range(n):
                ping.send(i)
                pong.receive()
            out.append((time.perf_counter() - t) / n)
    out = []
    tasklet(echo)()
    tasklet(driver)(out)
    run()
    return best(out)


def schedule_many(tasklet, channel, schedule, run, ntasks=1000, rounds=20, repeat=5):
    def body():
        for _ in range(rounds):
            schedule()
    out = []
    for _ in range(repeat):
        for _ in range(ntasks):
            tasklet(body)()
        t = time.perf_counter()
        run()
        out.append((time.perf_counter() - t) / (ntasks * rounds))
    return best(out)


def memory(tasklet, channel, schedule, run, n):
    chans = [channel() for _ in range(n)]
    gc.collect()
    before = rss()
    for c in chans:
        tasklet(c.receive)()
    run()
    gc.collect()
    per = (rss() - before) / n
    assert all(c.balance == -1 for c in chans)
    return per


def unstarted(tasklet, channel, schedule, run, n):
    chans = [channel() for _ in range(n)]
    gc.collect()
    before = rss()
    tasks = [tasklet(c.receive)() for c in chans]
    gc.collect()
    per = (rss() - before) / n
    assert len(tasks) == n and all(c.balance == 0 for c in chans)
    return per


def main():
    kind, measure = sys.argv[1], sys.argv[2]
    api = load(kind, lazy=measure == "unstarted")
    if measure == "roundtrip":
        print(roundtrip(*api))
    elif measure == "schedule":
        print(schedule_many(*api))
    elif measure == "memory":
        print(memory(*api, int(sys.argv[3])))
    elif measure == "unstarted":
        print(unstarted(*api, int(sys.argv[3])))
    else:
        raise SystemExit("unknown measure " + measure)


if __name__ == "__main__":
    main()
