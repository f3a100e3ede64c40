"""What a suspended frame holds comes back in a new process: locals of the usual types, cells
(shared with closures, and still empty ones), half-evaluated expressions on the value stack,
active for loops over built-in iterators, with blocks and nested exception handlers."""
from conftest import checkpoint_and_resume, needs_frames

pytestmark = needs_frames

HEADER = """
    import os, pickle, sys, stackless
    MODE = sys.argv[1]
    ch = stackless.channel()
"""

FOOTER = """
    if MODE == "dump":
        t = stackless.tasklet(main)()
        stackless.run()
        pickle.dump((t, ch), open("state.pickle", "wb"))
        print("--- checkpoint")
    else:
        t, ch = pickle.load(open("state.pickle", "rb"))
    old = []
    while ch.balance < 0:
        ch.send(len(SENT))
        SENT.append(1)
        old.append((t, ch))          # checkpoint again at every suspension, resume the copy
        t, ch = pickle.loads(pickle.dumps((t, ch)))
    stackless.run()
    print("alive", t.alive)
    sys.stdout.flush()
    os._exit(0)                      # the abandoned originals are never unwound
"""

LOCALS = HEADER + """
    import collections, datetime, decimal, fractions
    SENT = []

    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y
        def __repr__(self):
            return "Point(%r, %r)" % (self.x, self.y)

    def main():
        shared = [1, 2]
        values = dict(i=7, big=2 ** 100, f=-0.5, c=3 - 4j, b=True, n=None, s="é✓", by=b"\\x00\\xff",
                      ba=bytearray(b"ab"), t=(1, (2, [3])), l=[shared, shared], st={3, 1, 2},
                      fs=frozenset([3, 1]), d={"k": (1,), 2: "v"}, r=range(2, 9, 3), sl=slice(1, None, 2),
                      dec=decimal.Decimal("1.10"), fr=fractions.Fraction(2, 6), e=Ellipsis,
                      date=datetime.date(2012, 7, 4), od=collections.OrderedDict(a=1),
                      dq=collections.deque([1, 2], maxlen=3), p=Point(1, [2]), ty=Point, fn=len)
        before = repr(values)
        tup, alias = values["t"], [values, values["t"]]
        late = None
        counter = 0
        def bump():
            nonlocal counter
            counter += 1
            return counter
        def later():
            return late
        bump()
        got = ch.receive()
        values["l"][0].append(got)
        print("same values", repr(values).replace("[1, 2, 0]", "[1, 2]") == before)
        print("identities kept", values["l"][0] is values["l"][1], alias[0] is values, alias[1] is tup)
        print("counter", counter, bump(), counter)
        late = "set after resume"
        print("late", later())
        print(values["big"] + 1, values["fr"] * 3, values["dq"], values["p"], values["ty"].__name__)

    def empty_cell():
        def read():
            return value
        try:
            read()
        except NameError:
            print("empty before")
        ch.receive()
        value = 5
        print("filled", read())
""" + FOOTER.replace("t = stackless.tasklet(main)()",
                     "t = stackless.tasklet(main)(); stackless.tasklet(empty_cell)()")


def test_locals_of_the_usual_types_and_cells(tmp_path):
    reference, resumed = checkpoint_and_resume(tmp_path, LOCALS)
    assert resumed == reference
    assert resumed.splitlines() == [
        "same values True", "identities kept True True True", "counter 1 2 2", "late set after resume",
        "1267650600228229401496703205377 1 deque([1, 2], maxlen=3) Point(1, [2]) Point",
        "filled 5", "alive False",
    ]


STACK = HEADER + """
    SENT = []

    def fmt(*parts, **kw):
        return "|".join(map(str, parts)) + str(sorted(kw.items()))

    class Acc:
        def __init__(self):
            self.items = []
        def add(self, x, y=0):
            self.items.append(x + y)
            return self

    def main():
        acc, plain = Acc(), []
        acc.add(ch.receive(), y=ch.receive()).add(ch.receive())     # method calls, self on the stack
        plain.append(ch.receive() * 2)
        print(acc.items, plain)
        a, b = 10, "x"
        print(fmt(a, b * 2, [a, a + 1, ch.receive(), a + 2], {b: a, "r": ch.receive()},
                  f"{a}-{ch.receive()}-{b}", key=(a, ch.receive())))
        print(a < ch.receive() + 10 <= 18, 100 - (a * (a + ch.receive())), not ch.receive())
        print({k: v for k, v in zip("ab", (a, ch.receive()))}, [ch.receive() + i for i in range(2)])
""" + FOOTER


def test_half_evaluated_expressions(tmp_path):
    reference, resumed = checkpoint_and_resume(tmp_path, STACK)
    assert resumed == reference
    assert resumed.splitlines() == [
        "[1, 2] [6]",
        "10|xx|[10, 11, 4, 12]|{'x': 10, 'r': 5}|10-6-x[('key', (10, 7))]",
        "True -90 False",
        "{'a': 10, 'b': 11} [12, 14]",
        "alive False",
    ]


LOOPS = HEADER + """
    import itertools
    SENT = []

    def double(x):
        return 2 * x

    def odd(x):
        return x % 2

    def main():
        d = {"a": 1, "b": 2, "c": 3}
        out = []
        for name, it in [
                ("list", [1, 2, 3]), ("tuple", (1, 2, 3)), ("str", "abc"), ("bytes", b"ab"),
                ("range", range(5, 8)), ("dict", d), ("items", iter(d.items())), ("values", iter(d.values())),
                ("enumerate", enumerate("xyz", 1)), ("zip", zip("ab", [1, 2], range(9))),
                ("reversed", reversed([1, 2, 3])), ("map", map(double, [1, 2, 3])),
                ("filter", filter(odd, range(7))), ("set", {7}), ("count", itertools.islice(itertools.count(3, 2), 3)),
                ("chain", itertools.chain([1], "b")), ("product", itertools.product("ab", repeat=2))]:
            got = []
            for x in it:
                got.append((x, ch.receive()))
            out.append(name)
            print(name, got)
        print(len(out))
""" + FOOTER


def test_for_loops_over_builtin_iterators(tmp_path):
    reference, resumed = checkpoint_and_resume(tmp_path, LOOPS)
    assert resumed == reference
    # the checkpoint is taken in the first receive of the first loop
    assert resumed.splitlines() == [
        "list [(1, 0), (2, 1), (3, 2)]", "tuple [(1, 3), (2, 4), (3, 5)]",
        "str [('a', 6), ('b', 7), ('c', 8)]", "bytes [(97, 9), (98, 10)]",
        "range [(5, 11), (6, 12), (7, 13)]", "dict [('a', 14), ('b', 15), ('c', 16)]",
        "items [(('a', 1), 17), (('b', 2), 18), (('c', 3), 19)]", "values [(1, 20), (2, 21), (3, 22)]",
        "enumerate [((1, 'x'), 23), ((2, 'y'), 24), ((3, 'z'), 25)]",
        "zip [(('a', 1, 0), 26), (('b', 2, 1), 27)]", "reversed [(3, 28), (2, 29), (1, 30)]",
        "map [(2, 31), (4, 32), (6, 33)]", "filter [(1, 34), (3, 35), (5, 36)]", "set [(7, 37)]",
        "count [(3, 38), (5, 39), (7, 40)]", "chain [(1, 41), ('b', 42)]",
        "product [(('a', 'a'), 43), (('a', 'b'), 44), (('b', 'a'), 45), (('b', 'b'), 46)]",
        "17", "alive False",
    ]


RESUMED_LOOPS = HEADER + """
    import itertools
    SENT = []

    def main():
        d = {"a": 1, "b": 2, "c": 3}
        its = [iter([1, 2, 3]), iter(range(3)), iter(d.items()), enumerate("xyz"), zip("abc", [1, 2, 3]),
               reversed("abc"), map(str.upper, "abc"), itertools.count(5)]
        for name, it in zip("lrdezvmc", its):
            for x in it:
                print(name, x, ch.receive())
                if name == "c" and x == 7:
                    break
        print("done")

    if MODE == "dump":
        t = stackless.tasklet(main)()
        stackless.run()
        for i in range(2):           # each loop is pickled with its iterator partly consumed
            ch.send(-1)
        pickle.dump((t, ch), open("state.pickle", "wb"))
        print("--- checkpoint")
    else:
        t, ch = pickle.load(open("state.pickle", "rb"))
    n = 0
    while t.alive:
        n += 1
        ch.send(n)
        if n % 2 and t.alive:        # checkpoint again in the middle of every loop
            t, ch = pickle.loads(pickle.dumps((t, ch)))
    print("alive", t.alive)
"""


def test_loops_pickled_repeatedly_mid_iteration(tmp_path):
    reference, resumed = checkpoint_and_resume(tmp_path, RESUMED_LOOPS)
    assert resumed == reference
    assert resumed.splitlines() == [
        "l 3 1", "r 0 2", "r 1 3", "r 2 4", "d ('a', 1) 5", "d ('b', 2) 6", "d ('c', 3) 7",
        "e (0, 'x') 8", "e (1, 'y') 9", "e (2, 'z') 10", "z ('a', 1) 11", "z ('b', 2) 12",
        "z ('c', 3) 13", "v c 14", "v b 15", "v a 16", "m A 17", "m B 18", "m C 19",
        "c 5 20", "c 6 21", "c 7 22", "done", "alive False",
    ]


HANDLERS = HEADER + """
    SENT = []

    class CM:
        def __init__(self, name):
            self.name = name
        def __enter__(self):
            return self
        def __exit__(self, typ, val, tb):
            print("exit", self.name, typ and typ.__name__, val)
            return self.name == "swallow"

    def main():
        try:
            raise KeyError("outer")
        except KeyError:
            try:
                raise ValueError("inner")
            except ValueError:
                ch.receive()                         # suspended inside two handlers
                print("handling", repr(sys.exc_info()[1]))
                try:
                    raise                            # the inner one
                except ValueError as e:
                    print("re-raised", repr(e), "context", repr(e.__context__))
            print("back in outer", repr(sys.exc_info()[1]))
            try:
                raise
            except KeyError as e:
                print("re-raised", repr(e))
        finally:
            print("finally", sys.exc_info()[1])
        with CM("swallow"):
            with CM("pass"):
                ch.receive()
                raise OSError("in with")
        print("after with", sys.exc_info())
        try:
            with CM("pass"):
                ch.receive()
                1 / 0
        except ZeroDivisionError as e:
            print("caught", repr(e))
""" + FOOTER


def test_nested_handlers_bare_raise_and_with_blocks(tmp_path):
    reference, resumed = checkpoint_and_resume(tmp_path, HANDLERS)
    assert resumed == reference
    assert resumed.splitlines() == [
        "handling ValueError('inner')",
        "re-raised ValueError('inner') context KeyError('outer')",
        "back in outer KeyError('outer')",
        "re-raised KeyError('outer')",
        "finally None",
        "exit pass OSError in with",
        "exit swallow OSError in with",
        "after with (None, None, None)",
        "exit pass ZeroDivisionError division by zero",
        "caught ZeroDivisionError('division by zero')",
        "alive False",
    ]
