"""Garbage collection of suspended continulets: what their frames hold is seen, collected with
ContinuletExit, and nothing still in use is ever freed (stress runs under PYTHONMALLOC=debug)."""
import gc
import os
import subprocess
import sys
import textwrap
import weakref

import pytest
from conftest import IS_PYPY, tealet_only

pytestmark = tealet_only

if not IS_PYPY:
    from _continuation import ContinuletExit, continulet


class Obj:
    pass


def collected_with_exit(make):
    """Runs make(log) -> (continulet, obj referenced only from its suspended frames), drops both,
    and reports whether one gc.collect() freed obj and ran the frames' finally blocks."""
    log = []
    c, o = make(log)
    ref = weakref.ref(o)
    del c, o
    gc.collect()
    return ref() is None, log


@pytest.mark.parametrize("subclass", [False, True])
def test_cycle_held_by_a_lower_frame(subclass):
    # <=3.10: every frame is inside a call into C; the caller's stack holds the callee and `c`.
    # A subclass gets a `switch` descriptor of its own type; the GC must recognise it too.
    cls = type("Sub", (continulet,), {}) if subclass else continulet
    def inner(c, o):
        c.switch()
    def outer(c, o, log):
        try:
            inner(c, o)
        finally:
            log.append("outer")
    def make(log):
        o = Obj()
        c = cls(outer, o, log)
        c.switch()
        o.c = c
        return c, o
    freed, log = collected_with_exit(make)
    assert freed and log == ["outer"]


class Holder:
    def wait(self, c, *, o):
        try:
            c.switch()
        finally:
            self.log.append("wait")


def cycle_through_holder(run):
    def make(log):
        o, h = Obj(), Holder()
        h.log = log
        c = continulet(run, o, holder=h)
        c.switch()
        o.c = c
        return c, o
    return collected_with_exit(make)


def test_cycle_through_keyword_arguments_and_methods():
    def run(c, o, holder):
        Holder.wait(holder, c, o=o)
    freed, log = cycle_through_holder(run)
    assert freed and log == ["wait"]


def test_cycle_through_method_call_without_keywords():
    class H(Holder):
        def wait2(self, c, o):
            return Holder.wait(self, c, o=o)
    def run(c, o, holder):
        holder.__class__ = H
        holder.wait2(c, o)
    freed, log = cycle_through_holder(run)
    assert freed and log == ["wait"]


@pytest.mark.xfail(sys.version_info < (3, 11), strict=True,
                   reason="<=3.10 calls a bound method by lending its caller's stack slot to self for "
                          "the duration of the call; that frame then reports only the entries below "
                          "the call's inputs, so what the inputs hold stays uncollectable")
def test_cycle_through_bound_method_called_with_keywords():
    def run(c, o, holder):
        holder.wait(c, o=o)
    freed, log = cycle_through_holder(run)
    assert freed and log == ["wait"]


@pytest.mark.xfail(sys.version_info < (3, 12), strict=True,
                   reason="<=3.11 CALL_FUNCTION_EX keeps a call's inputs in C locals of the eval loop "
                          "(possibly as converted copies), which no frame reports to the GC")
def test_cycle_through_star_args_call_inputs():
    def wait(c, o, log):
        del o  # from here on only the caller's call inputs hold it
        try:
            c.switch()
        finally:
            log.append("wait")
    def make(log):
        o = Obj()
        box = [o]
        def run(c):
            wait(*[c, box.pop(), log])
        c = continulet(run)
        c.switch()
        o.c = c
        return c, o
    freed, log = collected_with_exit(make)
    assert freed and log == ["wait"]


def test_cycle_through_switch_with_to():
    def f(c, o):
        c.switch(to=c)  # switching to itself: a no-op, then suspend normally
        c.switch()
    def make(log):
        o = Obj()
        c = continulet(f, o)
        c.switch()
        o.c = c
        return c, o
    freed, _ = collected_with_exit(make)
    assert freed


def test_cycle_through_unbound_switch_called_plainly():
    # `continulet.switch(c)` as a plain call (how greenlet-py switches): 3.13 keeps the callable
    # below a NULL self entry, <=3.12 above a NULL entry; both must be recognised.
    switch = continulet.switch
    def inner(c, o):
        switch(c, None)
    def outer(c, o, log):
        try:
            inner(c, o)
        finally:
            log.append("outer")
    def make(log):
        o = Obj()
        c = continulet(outer, o, log)
        switch(c)
        o.c = c
        return c, o
    freed, log = collected_with_exit(make)
    assert freed and log == ["outer"]


def test_deep_chain_collected():
    def rec(c, n, o):
        if n:
            return rec(c, n - 1, o) + 1
        return c.switch()
    def make(log):
        o = Obj()
        c = continulet(rec, 50, o)
        c.switch()
        o.c = c
        return c, o
    freed, _ = collected_with_exit(make)
    assert freed


def test_finally_sees_intact_objects():
    # tp_finalize runs before the GC clears anything: the unwinding frames see their objects whole
    seen = []
    def f(c, o):
        try:
            c.switch()
        finally:
            seen.append(sorted(vars(o)))
    o = Obj()
    o.data = [1, 2]
    c = continulet(f, o)
    c.switch()
    o.c = c
    del c, o
    gc.collect()
    assert seen == [["c", "data"]]


def test_exit_that_is_caught_and_ignored_leaks_instead_of_clearing(monkeypatch):
    class Precious:
        pass
    state, unraisable = [], []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(str(u.exc_value)))
    def stubborn(c, o):
        while True:
            try:
                c.switch()
            except ContinuletExit:
                state.append(o.data)  # o must still be intact
    o = Precious()
    o.data = "intact"
    c = continulet(stubborn, o)
    c.switch()
    o.c = c
    del c, o
    gc.collect()
    gc.collect()
    assert state == ["intact"]
    assert unraisable == ["ContinuletExit did not finish the continulet; it is leaked"]
    # weakrefs to it were cleared, but the object itself is kept whole
    assert [p.data for p in gc.get_objects() if type(p) is Precious] == ["intact"]


def run_debug_malloc(code):
    env = dict(os.environ, PYTHONMALLOC="debug")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, env=env)


def test_gc_while_frames_are_mid_cleanup_frees_nothing_in_use():
    # A __del__ that switches (stackless' tasklet kill does this) runs while its frame is
    # cleaning up after a call or storing a variable, with some inputs already released. A GC
    # in the continuation switched to then traverses that frame: it must not report them.
    r = run_debug_malloc("""
        import gc
        from _continuation import continulet

        class Switcher:
            def __init__(self, target):
                self.target = target
            def __del__(self):
                self.target.switch()

        def collector(c):
            while True:
                gc.collect()
                c.switch()

        def consume(*args, **kw):
            return len(args) + len(kw)

        def body(c, g):
            total = 0
            for i in range(200):
                total += consume([object(), [i]], Switcher(g), [i] * 3, k=[i])
                x = Switcher(g)
                x = [i]                               # STORE_FAST releases the Switcher
                Switcher(g)                           # POP_TOP releases it
                total += sum([len([i]), Switcher(g) is None, len({i: [i]})])
            return total

        g = continulet(collector)
        keep = []
        for _ in range(20):
            c = continulet(body, g)
            keep.append(c)
            print(c.switch(), end=" ")
        print()
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == [str(200 * 6)] * 20


def test_many_suspended_with_gc_churn_under_debug_malloc():
    r = run_debug_malloc("""
        import gc, random
        from _continuation import continulet
        random.seed(5)

        class Node:
            pass

        def worker(c, depth, node):
            def down(n, acc):
                if n == 0:
                    while True:
                        acc = c.switch([acc, node]) or acc
                return down(n - 1, acc + [n]) + 1
            return down(depth, [])

        live = []
        for step in range(3000):
            op = random.random()
            if op < 0.4 or not live:
                n = Node()
                c = continulet(worker, random.randrange(6), n)
                n.c = c
                c.switch()
                live.append(c)
            elif op < 0.8:
                random.choice(live).switch(random.randrange(3))
            else:
                live.pop(random.randrange(len(live)))
            if step % 97 == 0:
                gc.collect()
        del live, c, n
        gc.collect()
        print(sum(1 for o in gc.get_objects() if type(o) is continulet))
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ["0"]


def test_linked_frames_under_random_switching_with_debug_malloc():
    # Continuations switch among themselves (plain and double switches), raise, finish and become
    # garbage at random while their frames and tracebacks are walked and the GC runs: the running
    # chain goes on through the continuation its continulet holds, suspended chains end in None.
    r = run_debug_malloc("""
        import gc, random, sys, traceback
        from _continuation import continulet
        random.seed(11)
        live, kept = [], []

        def walk(frame):
            n = 0
            while frame is not None:
                frame.f_locals
                frame, n = frame.f_back, n + 1
                assert n < 100000, "f_back chain does not end"
            return n

        def step():
            walk(sys._getframe())
            traceback.extract_stack()
            for k in kept:
                walk(k.tb_frame if hasattr(k, "tb_frame") else k)
            op = random.random()
            if op < 0.1:
                try:
                    raise KeyError(op)
                except KeyError as e:
                    kept.append(e.__traceback__)
            elif op < 0.15:
                kept.append(sys._getframe())
            elif op < 0.2 and live:
                live.pop(random.randrange(len(live)))
            elif op < 0.25:
                gc.collect()
            elif op < 0.35:
                live.append(continulet(worker, random.randrange(4)))
            del kept[:-20]
            pending = [c for c in live if c.is_pending()]
            if pending:
                to = random.choice(pending + [None, None])
                try:
                    random.choice(pending).switch(to=to)
                except ValueError:     # a worker raised out into us
                    pass

        def worker(c, depth):
            if depth:
                return worker(c, depth - 1)
            for _ in range(random.randrange(1, 20)):
                step()
            if random.random() < 0.3:
                raise ValueError("out")

        for n in range(300):
            if len(live) < 20:
                live.append(continulet(worker, random.randrange(4)))
            step()
            if n % 50 == 0:
                gc.collect()
        del live[:], kept[:]
        for _ in range(5):    # unwinding killed continuations makes more garbage
            gc.collect()
        print(sum(1 for o in gc.get_objects() if type(o) is continulet))
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ["0"]


def unstarted_kinds():
    """continulet and subclasses with each binding path: plain, `pass_continulet = False`, and a
    Python `__del__`."""
    class Bare(continulet):
        pass_continulet = False

    class Finalized(continulet):
        def __del__(self):
            super().__del__()
    return {"continulet": continulet, "Sub": type("Sub", (continulet,), {}), "Bare": Bare,
            "Finalized": Finalized}


@pytest.mark.parametrize("kind", ["continulet", "Sub", "Bare", "Finalized"])
def test_unstarted_continulet_is_freed_by_its_refcount(kind):
    # Its never-started callable's references to it (the first argument, where its result goes)
    # make no cycle: it goes when the last reference does, also with the GC off.
    cls = unstarted_kinds()[kind]
    def f(*args):
        return args
    arg = Obj()
    gc.disable()
    try:
        c = cls(f, arg, k=arg)
        ref, arg_ref = weakref.ref(c), weakref.ref(arg)
        del c, arg
        assert ref() is None and arg_ref() is None
        c = cls(f)
        assert c.switch() == (() if kind == "Bare" else (c,))
        ref = weakref.ref(c)
        del c
        assert ref() is None
    finally:
        gc.enable()


def test_unstarted_continulet_moved_away_keeps_its_owner():
    # permute moves a's never-started continuation into b: it still calls f(a) and returns to
    # a's holder, so it keeps a alive; throwing it away (unstarted) releases a.
    from _continuation import permute
    seen = []
    a = continulet(lambda c: seen.append(c))
    b = continulet(lambda c: None)
    permute(a, b)
    ref = weakref.ref(a)
    del a
    gc.collect()
    assert ref() is not None
    with pytest.raises(ValueError):
        b.throw(ValueError)
    assert seen == [] and ref() is None


def test_unstarted_continulets_exchanged_by_double_switch_are_freed():
    # a.switch(to=b), both never started: the current continuation goes into a, a's unstarted
    # one into b, and b's callable runs; its result goes to what b holds then, a's unstarted
    # continuation, which refuses a value (as on PyPy). Nothing is left holding a or b.
    seen = []
    a = continulet(lambda c: seen.append("a ran"))
    b = continulet(lambda c: seen.append("b ran") or "b's result")
    gc.disable()
    try:
        with pytest.raises(TypeError, match="just-started continulet"):
            a.switch(to=b)
        assert seen == ["b ran"] and not a.is_pending() and not b.is_pending()
        refs = weakref.ref(a), weakref.ref(b)
        del a, b
        assert [r() for r in refs] == [None, None]
    finally:
        gc.enable()


def test_cycle_through_unstarted_callable_arguments_is_collected():
    # What the callable and its arguments hold is still shown to the GC.
    holder = Obj()
    c = continulet(lambda c, h: None, holder)
    holder.c = c
    ref = weakref.ref(c)
    del c, holder
    gc.collect()
    assert ref() is None
