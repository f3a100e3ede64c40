"""Channels pickled with their blocked tasklets (a pipeline checkpointed as a whole); restored
tasklets pickled again; restored tasklets resumed with an exception (kill, raise_exception)."""
from conftest import checkpoint_and_resume, needs_frames, run_py

pytestmark = needs_frames

PIPELINE = """
    import pickle, sys, stackless
    MODE = sys.argv[1]

    def source(out, n):
        for i in range(n):
            out.send(i)
        out.send(None)

    def square(inp, out):
        while True:
            x = inp.receive()
            if x is None:
                out.send(None)
                return
            out.send(x * x)

    def sink(inp, results):
        while True:
            x = inp.receive()
            if x is None:
                break
            results.append(x)
        print("sum", sum(results), "count", len(results))

    if MODE == "dump":
        a, b = stackless.channel(), stackless.channel()
        results = []
        tasks = [stackless.tasklet(source)(a, 10), stackless.tasklet(square)(a, b),
                 stackless.tasklet(sink)(b, results)]
        for _ in range(7):
            stackless.schedule()
        for t in tasks:
            if t.scheduled and not t.blocked:
                t.remove()
        print("blocked", [t.blocked for t in tasks], "partial", results)
        with open("state.pickle", "wb") as f:
            pickle.dump(tasks, f)
        print("--- checkpoint")
    else:
        with open("state.pickle", "rb") as f:
            tasks = pickle.load(f)
    print("blocked", [t.blocked for t in tasks])
    for t in tasks:
        if not t.blocked and t.alive:
            t.insert()
    stackless.run()
    print("alive", [t.alive for t in tasks])
"""


def test_pipeline_checkpointed_as_a_group(tmp_path):
    reference, resumed = checkpoint_and_resume(tmp_path, PIPELINE)
    assert resumed == reference
    lines = resumed.splitlines()
    assert "sum 285 count 10" in lines
    assert lines[-1] == "alive [False, False, False]"


REPICKLE = """
    import pickle, sys, stackless
    MODE = sys.argv[1]
    ch = stackless.channel()

    def deep(n, acc):
        if n:
            return deep(n - 1, acc + [n])
        first = ch.receive()
        print("first", first, acc)
        second = ch.receive()
        print("second", second)
        return first + second

    def main():
        try:
            print("total", deep(4, []))
        finally:
            print("main finally")

    if MODE == "dump":
        t = stackless.tasklet(main)()
        stackless.run()
        pickle.dump((t, ch), open("p1", "wb"))
        print("--- checkpoint")
        ch.send(1)
        ch.send(2)
    elif MODE == "again":
        t, ch = pickle.load(open("p1", "rb"))
        print("restorable", t.restorable)
        pickle.dump((t, ch), open("p2", "wb"))
        sys.exit()
    elif MODE == "middle":
        t, ch = pickle.load(open("p1", "rb"))
        ch.send(1)
        pickle.dump((t, ch), open("p2", "wb"))
        t.kill()
    else:
        t, ch = pickle.load(open("p2", "rb"))
        ch.send(2)
    stackless.run()
"""


def test_restored_tasklet_pickled_again(tmp_path):
    reference = run_py(tmp_path, REPICKLE, "dump").stdout.split("--- checkpoint\n")[1]
    middle = run_py(tmp_path, REPICKLE, "middle").stdout
    final = run_py(tmp_path, REPICKLE, "load").stdout
    assert middle == "first 1 [4, 3, 2, 1]\nmain finally\n"   # then killed in that process
    assert final == "second 2\ntotal 3\nmain finally\n"
    assert middle.splitlines()[0] + "\n" + final == reference


def test_restored_tasklet_pickled_again_before_it_ran(tmp_path):
    reference = run_py(tmp_path, REPICKLE, "dump").stdout.split("--- checkpoint\n")[1]
    assert run_py(tmp_path, REPICKLE, "again").stdout == "restorable True\n"
    middle = run_py(tmp_path, REPICKLE, "middle").stdout   # loads p2, the re-pickled copy
    final = run_py(tmp_path, REPICKLE, "load").stdout
    assert middle.splitlines()[0] + "\n" + final == reference


EXCEPTIONS = """
    import pickle, sys, stackless
    MODE = sys.argv[1]
    ch = stackless.channel()

    def victim(name):
        try:
            try:
                ch.receive()
            except ValueError as e:
                print(name, "caught", repr(e))
                ch.receive()
        except TaskletExit:
            print(name, "exit")
            raise
        finally:
            print(name, "finally")

    if MODE == "dump":
        ts = [stackless.tasklet(victim)(n) for n in "ab"]
        stackless.run()
        pickle.dump(ts, open("state.pickle", "wb"))
        print("--- checkpoint")
    else:
        ts = pickle.load(open("state.pickle", "rb"))
    a, b = ts
    a.raise_exception(ValueError, "boom")
    print("a blocked again", a.blocked)
    a.kill()
    b.kill()
    print("alive", a.alive, b.alive)
"""


def test_restored_tasklets_resumed_with_exceptions(tmp_path):
    reference, resumed = checkpoint_and_resume(tmp_path, EXCEPTIONS)
    assert resumed == reference
    assert resumed.splitlines() == [
        "a caught ValueError('boom')", "a blocked again -1", "a exit", "a finally",
        "b exit", "b finally", "alive False False",
    ]
