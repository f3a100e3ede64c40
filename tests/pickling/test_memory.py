"""10,000 pickle -> load -> resume cycles in one process leave memory flat: the RSS, and the
number of live Python allocations (a leak of even one small object per cycle would show)."""
from conftest import needs_frames, run_py

pytestmark = needs_frames

CYCLES = """
    import gc, pickle, stackless, sys

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    ch = stackless.channel()

    def work(n, acc):
        if n:
            return work(n - 1, acc + [n])
        try:
            got = ch.receive()
        finally:
            acc.append("f")
        return sum(acc[:-1]) + got

    def main():
        r = work(5, [])
        BOX.append(r)       # (BOX.append(work(...)) would pickle BOX, on the value stack)

    BOX = []
    results = set()
    for i in range(10_000):
        t = stackless.tasklet(main)()
        stackless.run()
        data = pickle.dumps((t, ch))
        ch.send(0)                       # the original finishes
        t2, ch2 = pickle.loads(data)
        ch2.send(i)                      # the copy resumes from the pickle and finishes
        t3, _ = pickle.loads(data)
        t3.kill()                        # another copy unwinds with an exception
        pickle.loads(data)               # and one is dropped before it ever ran
        results.add(BOX.pop() - BOX.pop() - i)
        if i % 1000 == 0:
            gc.collect()
        if i == 1000:
            before, blocks = rss(), sys.getallocatedblocks()
    gc.collect()
    after = rss()
    print(sorted(results), len(BOX), after - before, sys.getallocatedblocks() - blocks)
"""


def test_ten_thousand_cycles_leave_memory_flat(tmp_path):
    out = run_py(tmp_path, CYCLES).stdout.split()
    # every copy resumed with its own value (15 + i) after the original finished (15 + 0)
    assert out[:2] == ["[0]", "0"]
    growth = int(out[2])
    assert growth < 2 * 1024 * 1024, "RSS grew by %d bytes over 9,000 cycles" % growth
    blocks = int(out[3])
    assert blocks < 1000, "%d more allocated blocks after 9,000 cycles" % blocks
