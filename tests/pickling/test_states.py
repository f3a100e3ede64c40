"""Tasklets suspended in send/receive/schedule/paused, with locals, cells, half-evaluated
expressions, loops over built-in iterators, with blocks and try/except/finally: the resumed
run in a new process prints exactly what the original process printed after the checkpoint."""
import pickle

from conftest import checkpoint_and_resume, needs_frames

pytestmark = needs_frames

HEADER = """
    import pickle, sys, stackless
    MODE = sys.argv[1]
    ch = stackless.channel()
"""

NESTED = HEADER + """
    class CM:
        def __init__(self, name):
            self.name = name
        def __enter__(self):
            print("enter", self.name)
            return self
        def __exit__(self, typ, val, tb):
            print("exit", self.name, typ and typ.__name__)
            return False

    def leaf(i):
        return ch.receive() * i

    def middle(n):
        total = 0
        counter = 0
        names = {"x": 1.5, "y": [1, 2], "z": (None, b"b", "s")}
        def bump():
            nonlocal counter
            counter += 1
            return counter
        with CM("m"):
            for i in range(n):
                for word in ["a", "b"]:
                    total += 1000 + leaf(i) * 2
                    bump()
                    print("step", i, word, total, counter)
        return total, counter, bump(), names

    def outer():
        try:
            raise KeyError("k")
        except KeyError:
            r = middle(2)
            print("handled", repr(sys.exc_info()[1]))
            try:
                raise
            except KeyError as e:
                print("re-raised", repr(e))
        finally:
            print("finally outer")
        print("result", r)

    if MODE == "dump":
        t = stackless.tasklet(outer)()
        stackless.run()
        with open("state.pickle", "wb") as f:
            pickle.dump((t, ch), f)
        print("--- checkpoint")
    else:
        with open("state.pickle", "rb") as f:
            t, ch = pickle.load(f)
    for v in (1, 2, 3, 4):
        ch.send(v)
    stackless.run()
    print("alive", t.alive)
"""


def test_receive_with_nested_state(tmp_path):
    reference, resumed = checkpoint_and_resume(tmp_path, NESTED)
    assert resumed == reference
    lines = resumed.splitlines()
    assert lines[:4] == ["step 0 a 1000 1", "step 0 b 2000 2", "step 1 a 3006 3", "step 1 b 4014 4"]
    assert lines[4:] == [
        "exit m None",
        "handled KeyError('k')",
        "re-raised KeyError('k')",
        "finally outer",
        "result (4014, 4, 5, {'x': 1.5, 'y': [1, 2], 'z': (None, b'b', 's')})",
        "alive False",
    ]


SENDER = HEADER + """
    def producer(items):
        sent = []
        for x in iter(items):
            ch.send(x * 10)
            sent.append(x)
            print("sent", x)
        print("producer done", sent)

    if MODE == "dump":
        t = stackless.tasklet(producer)([1, 2, 3])
        stackless.run()
        print("balance", ch.balance, t.blocked)
        with open("state.pickle", "wb") as f:
            pickle.dump((t, ch), f)
        print("--- checkpoint")
    else:
        with open("state.pickle", "rb") as f:
            t, ch = pickle.load(f)
    print("balance", ch.balance, t.blocked)
    for _ in range(3):
        print("got", ch.receive())
    stackless.run()
"""


def test_blocked_sender(tmp_path):
    reference, resumed = checkpoint_and_resume(tmp_path, SENDER)
    assert resumed == reference
    assert resumed.splitlines() == [
        "balance 1 1", "got 10", "sent 1", "got 20", "sent 2", "got 30", "sent 3",
        "producer done [1, 2, 3]",
    ]


SCHEDULED = HEADER + """
    def worker(name, n):
        acc = []
        for i in range(n):
            acc.append((name, i))
            print(name, i, stackless.schedule(i * 100))
        print(name, "done", acc)

    def pausing():
        print("pausing got", stackless.schedule_remove("p"))
        print("pausing done")

    if MODE == "dump":
        a = stackless.tasklet(worker)("a", 3)
        p = stackless.tasklet(pausing)()
        stackless.schedule()
        print("paused", p.paused, "scheduled", a.scheduled)
        a.remove()
        with open("state.pickle", "wb") as f:
            pickle.dump((a, p), f)
        print("--- checkpoint")
    else:
        with open("state.pickle", "rb") as f:
            a, p = pickle.load(f)
    print("paused", p.paused, "scheduled", a.scheduled)
    a.insert()
    p.insert()
    stackless.run()
"""


def test_scheduled_and_paused(tmp_path):
    reference, resumed = checkpoint_and_resume(tmp_path, SCHEDULED)
    assert resumed == reference
    assert resumed.splitlines() == [
        "paused True scheduled False",
        "a 0 0", "pausing got p", "pausing done", "a 1 100", "a 2 200",
        "a done [('a', 0), ('a', 1), ('a', 2)]",
    ]


STAR_CALLS = HEADER + """
    class Box:
        def __init__(self, n):
            self.n = n
        def get(self, *extra, scale=1):
            return (ch.receive() + self.n + sum(extra)) * scale

    def via(f, *args, **kwargs):
        return 1000 + f(*args, **kwargs)      # CPython 3.11 runs this call through C

    def main():
        print("result", via(Box(5).get, 1, 2, scale=10))

    if MODE == "dump":
        t = stackless.tasklet(main)()
        stackless.run()
        print("restorable", t.restorable)
        pickle.dump((t, ch), open("state.pickle", "wb"))
        print("--- checkpoint")
    else:
        t, ch = pickle.load(open("state.pickle", "rb"))
    ch.send(7)
"""


def test_star_args_calls(tmp_path):
    reference, resumed = checkpoint_and_resume(tmp_path, STAR_CALLS)
    assert resumed == reference == "result 1150\n"


PROTOCOLS = HEADER + """
    def deep(n):
        if n:
            return deep(n - 1) + 1
        return ch.receive()

    def main(n):
        print("result", deep(n))

    if MODE == "dump":
        for proto in range(pickle.HIGHEST_PROTOCOL + 1):
            t = stackless.tasklet(main)(900)       # close to the default recursion limit
            stackless.run()
            pickle.dump((t, ch), open("state%d.pickle" % proto, "wb"), proto)
            ch.send(-1)
        print("--- checkpoint")
    else:
        for proto in range(pickle.HIGHEST_PROTOCOL + 1):
            t, ch = pickle.load(open("state%d.pickle" % proto, "rb"))
            ch.send(-1)
"""


def test_every_protocol_and_a_deep_stack(tmp_path):
    reference, resumed = checkpoint_and_resume(tmp_path, PROTOCOLS)
    assert reference == ""
    assert resumed == "result 899\n" * (pickle.HIGHEST_PROTOCOL + 1)
