"""What can be pickled and how it is checked: `restorable`, refusal of stacks crossing C code
(naming the call in the way), the bytecode-magic and code checks, lambdas and closures by value."""
import importlib.util
import pickle
import sys

from conftest import checkpoint_and_resume, needs_frames, run_py

pytestmark = needs_frames

C_STACKS = """
    import pickle, stackless
    ch = stackless.channel()

    def wait(*args):
        ch.receive()
        return 1

    class Eq:
        def __eq__(self, other):
            return wait()

    class Init:
        def __init__(self):
            wait()

    def via_map():
        for x in map(wait, [1]):
            pass

    def via_sorted():
        return sorted([3, 1], key=wait)

    def via_dunder():
        return Eq() == Eq()

    def via_init():
        return Init()

    def gen():
        yield wait()

    def via_generator():
        return list(gen())

    def plain():
        return wait()

    for f in (via_map, via_sorted, via_dunder, via_init, via_generator, plain):
        t = stackless.tasklet(f)()
        stackless.run()
        try:
            pickle.dumps(t)
            print(f.__name__, t.restorable, "pickled")
        except pickle.PicklingError as e:
            print(f.__name__, t.restorable, e)
        t.kill()
"""


def test_stacks_crossing_c_code_are_refused_naming_the_call(tmp_path):
    out = dict(line.split(" ", 1) for line in run_py(tmp_path, C_STACKS).stdout.splitlines())
    assert out["plain"] == "True pickled"
    for name in ("via_map", "via_sorted", "via_dunder", "via_init", "via_generator"):
        assert out[name].startswith("False cannot pickle <"), out[name]
        assert " tasklet " in out[name] and " blocked " in out[name], out[name]
        assert "frame %s (" % name.replace("via_generator", "gen") in out[name], out[name]
        assert "a tasklet can only be resumed from a pickle when its stack holds Python frames only" in out[name]
    assert "map(wait, [1])" in out["via_map"]
    assert "the C function sorted (called as `sorted([3, 1], key=wait)`" in out["via_sorted"]
    assert "the C slot tp_richcompare behind `Eq() == Eq()` (COMPARE_OP), on the way to Eq.__eq__;" \
        in out["via_dunder"]
    assert "the C function type.__call__ (called as `Init()`, CALL), on the way to Init.__init__;" \
        in out["via_init"]
    assert "its frame gen (" in out["via_generator"]
    assert "is a generator or coroutine frame (those are not pickled), on the way to wait;" in out["via_generator"]


VERSIONED = """
    import pickle, sys, stackless
    MODE = sys.argv[1]
    ch = stackless.channel()

    def f():
        return ch.receive() + VALUE

    def main():
        print("got", f())

    VALUE = 1
    if MODE == "dump":
        t = stackless.tasklet(main)()
        stackless.run()
        pickle.dump((t, ch), open("state.pickle", "wb"))
        print("--- checkpoint")
    else:
        t, ch = pickle.load(open("state.pickle", "rb"))
    ch.send(41)
"""


def test_pickle_refuses_another_bytecode_magic(tmp_path):
    run_py(tmp_path, VERSIONED, "dump")
    data = (tmp_path / "state.pickle").read_bytes()
    magic, tag = importlib.util.MAGIC_NUMBER, sys.implementation.cache_tag
    other_magic, other_tag = b"o\r\r\n", "cpython-310"
    assert data.count(b"C\x04" + magic) == 1
    data = data.replace(b"C\x04" + magic, b"C\x04" + other_magic)
    data = data.replace(bytes([0x8c, len(tag)]) + tag.encode(), bytes([0x8c, len(other_tag)]) + other_tag.encode())
    (tmp_path / "state.pickle").write_bytes(data)
    r = run_py(tmp_path, VERSIONED, "load", check=False)
    assert r.returncode == 1
    assert ("_pickle.UnpicklingError: this tasklet was pickled by cpython-310 (bytecode magic %s) and cannot be "
            "resumed by %s (bytecode magic %s)" % (other_magic.hex(), tag, magic.hex())) in r.stderr, r.stderr


def test_pickle_refuses_changed_code(tmp_path):
    run_py(tmp_path, VERSIONED, "dump")
    r = run_py(tmp_path, VERSIONED.replace("ch.receive() + VALUE", "ch.receive() - VALUE"), "load", check=False)
    assert r.returncode == 1
    assert "the code of __main__.f changed since the tasklet was pickled" in r.stderr, r.stderr
    unchanged = run_py(tmp_path, VERSIONED, "load")
    assert unchanged.stdout == "got 42\n"


BY_VALUE = """
    import pickle, sys, stackless
    MODE = sys.argv[1]
    ch = stackless.channel()

    def make(base):
        seen = []
        def worker(k):
            scale = lambda x: ch.receive() * x + base
            seen.append(k)
            r = scale(k)
            seen.append(r)
            print("worker", r, seen, scale.__name__)
        return worker

    if MODE == "dump":
        t = stackless.tasklet(make(100))(3)
        stackless.run()
        pickle.dump((t, ch), open("state.pickle", "wb"))
        print("--- checkpoint")
    else:
        t, ch = pickle.load(open("state.pickle", "rb"))
        print("func", t.func.__qualname__, t.func.__closure__[0].cell_contents)
    ch.send(5)
"""


def test_lambdas_and_closures_by_value(tmp_path):
    reference, resumed = checkpoint_and_resume(tmp_path, BY_VALUE)
    assert resumed == "func make.<locals>.worker 100\n" + reference
    assert reference == "worker 115 [3, 115] <lambda>\n"


INLINED_INIT = """
    import pickle, sys, stackless
    MODE = sys.argv[1]
    ch = stackless.channel()
    WAIT = []

    class Point:
        def __init__(self, x):
            self.x = x
            if WAIT:
                try:
                    self.y = ch.receive()
                finally:
                    print("init finally", hasattr(self, "y"))

    def make(x):
        return Point(x)

    def main():
        for i in range(100):         # warm-up: 3.13 specialises the call and inlines __init__
            make(i)
        WAIT.append(1)
        p = make(5)
        print("made", type(p).__name__, p.x, p.y)

    if MODE == "dump":
        t = stackless.tasklet(main)()
        stackless.run()
        print("restorable", t.restorable)
        try:
            pickle.dump((t, ch), open("state.pickle", "wb"))
        except pickle.PicklingError as e:
            print(e)
        print("--- checkpoint")
    else:
        t, ch = pickle.load(open("state.pickle", "rb"))
        killed, _ = pickle.load(open("state.pickle", "rb"))
        killed.kill()                  # TaskletExit passes through the __init__ frame
        print("killed", killed.alive)
    ch.send(7)
"""


def test_init_inlined_by_cpython_resumes_else_refused(tmp_path):
    if sys.version_info >= (3, 13):
        reference, resumed = checkpoint_and_resume(tmp_path, INLINED_INIT)
        assert reference == "init finally True\nmade Point 5 7\n"
        assert resumed == "init finally False\nkilled False\n" + reference
    else:
        out = run_py(tmp_path, INLINED_INIT, "dump").stdout.splitlines()
        assert out[0] == "restorable False"
        assert "its frame make (" in out[1] and "the C function type.__call__ (called as `Point(x)`" in out[1]


OTHER_THREAD = """
    import pickle, threading, stackless
    ch = stackless.channel()
    blocked, done = [], threading.Event()

    def worker():
        t = stackless.tasklet(ch.receive)()
        stackless.run()
        blocked.append(t)
        done.wait()
        print("in its thread", t.blocked, t.restorable, len(pickle.dumps(t)) > 0)
        ch.send(1)

    th = threading.Thread(target=worker)
    th.start()
    while not blocked:
        pass
    print("restorable", blocked[0].restorable)
    try:
        pickle.dumps(blocked[0])
    except pickle.PicklingError as e:
        print(e)
    done.set()
    th.join()
"""


def test_tasklet_of_another_thread_is_refused(tmp_path):
    out = run_py(tmp_path, OTHER_THREAD).stdout.splitlines()
    assert out[0] == "restorable False"
    assert out[1].startswith("cannot pickle <stackless._tasklet.tasklet blocked at ")
    assert out[1].endswith(" from another thread: its frames are only readable in the thread it runs in")
    assert out[2] == "in its thread -1 True True"
