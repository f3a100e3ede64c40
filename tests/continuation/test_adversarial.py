"""Hostile callables, arguments, finalizers and class flags: each gets a clear exception or runs
correctly, never a crash, a leak or a wrong value (crashing shapes run in a subprocess under
PYTHONMALLOC=debug and -X dev)."""
import gc
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import IS_PYPY, tealet_only

pytestmark = tealet_only

if not IS_PYPY:
    from _continuation import continulet, error, permute


def run_py(code, timeout=120):
    env = dict(os.environ, PYTHONMALLOC="debug")
    return subprocess.run([sys.executable, "-X", "dev", "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout, env=env)


class Counted:
    """Counts its live instances."""
    alive = 0

    def __init__(self):
        Counted.alive += 1

    def __del__(self):
        Counted.alive -= 1


def test_flag_whose_truth_binds_the_continulet_leaves_one_binding():
    # The class flag's __bool__ binds the continulet being bound: the outer __init__ then finds
    # it bound and says so; nothing is leaked and the inner binding runs.
    outer = []
    class Flag:
        def __bool__(self):
            if not outer:
                outer.append(1)
                c.__init__(lambda c, a: "inner", Counted())
            return True
    class Sub(continulet):
        pass_continulet = Flag()
    base = Counted.alive
    c = Sub.__new__(Sub)
    with pytest.raises(error, match="continulet already __init__ialized"):
        c.__init__(lambda c, a: "outer", Counted())
    assert Counted.alive == base + 1     # the outer's argument is dropped, the inner's held
    assert c.switch() == "inner"
    del c
    gc.collect()
    assert Counted.alive == base


def test_finalizer_of_the_owner_switching_away_from_its_finished_tealet():
    # The callable returns while its continulet is referenced only by its own tealet: that
    # reference goes last, and the owner's __del__ switches. It used to run on the finished
    # tealet, which the switch's target then freed: the next switch into it crashed.
    r = run_py("""
        from _continuation import continulet, permute
        log = []
        class S(continulet):
            def __del__(self):
                log.append(("del", d.switch("from del")))
        def f(c):
            c.switch()
            del c
        c = S(f)
        c.switch()
        d = continulet(lambda d: log.append("lambda ran"))
        permute(c, d)          # c gets d's unstarted tealet, d gets f's continuation
        del c                  # f's tealet holds the only reference to c
        log.append(("main", d.switch()))
        log.append(("pending", d.is_pending()))
        log.append(("again", d.switch()))
        log.append(("pending", d.is_pending()))
        print(log)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str([("main", "from del"), ("pending", True), ("del", None),
                                    "lambda ran", ("again", None), ("pending", False)])


@pytest.mark.parametrize("owner_binds_again", [False, True])
def test_unstarted_continulet_dropped_in_another_thread_frees_its_call(owner_binds_again):
    # An unstarted continulet is freed by its refcount; in another thread than its own, which
    # still runs, its tealet cannot be freed there, but what its call holds must go at once
    # (it used to be leaked for good), and the tealet's record later: by the owner's next
    # __init__, or by any thread's once the owner exited.
    import threading
    box, made, go_on = [], threading.Event(), threading.Event()
    def owner():
        box.extend(continulet(lambda c, a: None, Counted()) for _ in range(200))
        made.set()
        go_on.wait()
        if owner_binds_again:
            assert continulet(lambda c: 5).switch() == 5
    base = Counted.alive
    t = threading.Thread(target=owner)
    t.start()
    made.wait()
    assert Counted.alive == base + 200
    box.clear()
    assert Counted.alive == base
    go_on.set()
    t.join()
    assert continulet(lambda c: 6).switch() == 6


@pytest.mark.parametrize("started_first", [False, True])
def test_garbage_cycle_of_a_suspended_and_an_unstarted_continulet(started_first):
    # a holds b's unstarted tealet, b holds a's suspended one: whichever the GC finalizes first,
    # a's finally runs and the collection ends quietly. Freeing b's tealet without running it
    # used to leave a finished while its callable was suspended in b: ContinuletExit then went
    # to the main continuation, out of gc.collect().
    log = []
    def fa(a):
        try:
            a.switch()
        finally:
            log.append("fa finally")
    def fb(b):
        log.append("fb ran")
    if started_first:
        a = continulet(fa)
        b = continulet(fb)
    else:
        b = continulet(fb)
        a = continulet(fa)
    a.switch()
    permute(a, b)
    del a, b
    gc.collect()
    assert log == ["fa finally"]


FUZZ = """
import contextvars, gc, os, random, sys
from _continuation import continulet, error, get_frame, permute, set_context

EXTENDED = os.environ.get("FUZZ_EXTENDED") == "1"

class Counted:
    alive = 0
    def __init__(self): Counted.alive += 1
    def __del__(self): Counted.alive -= 1

class NoSelf(continulet):
    pass_continulet = False

class Det(continulet):
    detach_frames = True

class WithDel(continulet):
    def __del__(self):
        super().__del__()

KINDS = [continulet, NoSelf, Det, WithDel]

def run(seed, budget):
    rng = random.Random(seed)
    pool, left, counts = [], [budget], [0, 0]
    def pick():
        return rng.choice(pool) if pool else None
    def op():
        left[0] -= 1
        k = rng.randrange(17 if EXTENDED else 12)
        try:
            if k < 3:
                t = pick()
                if t is not None:
                    return t.switch()
            elif k == 3:
                t, u = pick(), pick()
                if t is not None:
                    return t.switch(to=u)
            elif k == 4:
                t = pick()
                if t is not None:
                    return t.throw(ValueError("thrown"))
            elif k == 5:
                if pool:
                    permute(*rng.sample(pool, rng.randrange(1, min(4, len(pool)) + 1)))
            elif k in (6, 7):
                pool.append(rng.choice(KINDS)(body, Counted()))
            elif k == 8:
                if pool:
                    pool.pop(rng.randrange(len(pool)))
            elif k == 9:
                gc.collect()
            elif k == 10:
                t = pick()
                if t is not None:
                    t.__init__(body)
            elif k == 11:
                pool.append(continulet.__new__(rng.choice(KINDS)))
            elif k == 12:
                t = pick()
                f = get_frame(t) if t is not None else None
                while f is not None:
                    f.f_locals
                    f = f.f_back
            elif k == 13:
                (gc.disable if gc.isenabled() else gc.enable)()
            elif k == 14:
                t = pick()
                if t is not None and t.is_pending():
                    set_context(contextvars.Context(), t)
            elif k == 15:
                t = pick()
                if t is not None:
                    return t.throw(KeyError, to=pick())
            else:
                t = pick()
                if t is not None:
                    return t.switch(rng.randrange(3))
        except (error, ValueError, TypeError, KeyError):
            pass
    def body(*args):
        counts[0] += 1
        try:
            while left[0] > 0:
                op()
                if rng.random() < 0.15:
                    if rng.random() < 0.3:
                        raise ValueError("out")
                    return "done"
        finally:
            counts[1] += 1
    while left[0] > 0:
        op()
    pool.clear()
    gc.enable()
    gc.collect()
    gc.collect()
    return (Counted.alive, counts[0] - counts[1], len(gc.garbage))

for seed in map(int, sys.argv[1:]):
    print(seed, *run(seed, 400), flush=True)
"""


@pytest.mark.parametrize("seeds", [
    # Each crashed once: a collection running inside a continulet threw ContinuletExit into
    # garbage from its finalizers, and the switch copied out its C stack with the heads of the
    # collector's object lists (objects dying meanwhile relinked their neighbours there).
    [39, 99, 103, 132, 229],
    # And a spread of others: ContinuletExit used to reach the main continuation in 50 and 80.
    list(range(1, 80)),
])
@pytest.mark.parametrize("extended", [False, True])
def test_random_switching_permuting_and_collecting(seeds, extended):
    # Random switches, double switches, throws, permutations, re-inits, drops and collections,
    # inside continulets and out (extended: also frame walks, contexts set, the GC turned off
    # and on, throws with `to`, values sent): no crash, every callable that started ends (its
    # finally ran), nothing leaked, nothing uncollectable.
    r = subprocess.run([sys.executable, "-X", "dev", "-c", FUZZ, *map(str, seeds)],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONMALLOC="debug", FUZZ_EXTENDED=str(int(extended))))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Exception ignored" not in r.stderr, r.stderr[-3000:]
    assert r.stdout.split("\n")[:-1] == ["%d 0 0 0" % s for s in seeds]


class SwitchesOnDel:
    """Switches to the continuation `box[0]` holds when it is freed; logs what it is resumed with."""

    def __init__(self, box, log):
        self.box, self.log = box, log

    def __del__(self):
        self.log.append(("resumed", self.box[0].switch("from del")))


def test_argument_freed_after_the_callable_returned_switches_away():
    # The call's arguments go once the callable returned, on its own stack: a finalizer there
    # may switch away and be resumed before the continulet finishes.
    box, log = [None], []
    c = continulet(lambda c, a: "result", SwitchesOnDel(box, log))
    box[0] = c
    assert c.switch() == "from del"
    assert c.is_pending()
    assert c.switch("back") == "result"
    assert log == [("resumed", "back")] and not c.is_pending()


def test_argument_freed_by_a_throw_before_the_start_switches_away():
    # Thrown into before its start, the callable never runs; its arguments go on its stack.
    box, log = [None], []
    c = continulet(lambda c, a: "never", SwitchesOnDel(box, log))
    box[0] = c
    assert c.throw(ValueError("x")) == "from del"
    with pytest.raises(ValueError, match="x"):
        c.switch("back")
    assert log == [("resumed", "back")] and not c.is_pending()


def test_threads_making_switching_permuting_and_dropping_each_others_continulets():
    r = run_py("""
        import gc, random, threading
        from _continuation import continulet, error, permute
        class Counted:
            alive = 0
            lock = threading.Lock()
            def __init__(self):
                with Counted.lock: Counted.alive += 1
            def __del__(self):
                with Counted.lock: Counted.alive -= 1
        shared = []
        def body(c, a):
            for i in range(3):
                c.switch(i)
        def worker(seed):
            rng = random.Random(seed)
            mine = []
            for i in range(2000):
                k = rng.randrange(8)
                try:
                    if k < 2:
                        mine.append(continulet(body, Counted()))
                    elif k == 2 and mine:
                        rng.choice(mine).switch()
                    elif k == 3 and mine:
                        shared.append(mine.pop(rng.randrange(len(mine))))
                    elif k == 4 and shared:
                        shared.pop()
                    elif k == 5 and shared:
                        shared[-1].switch()
                    elif k == 6 and len(mine) > 1:
                        permute(*rng.sample(mine, 2))
                    elif k == 7 and i % 50 == 0:
                        gc.collect()
                except (IndexError, TypeError):
                    pass                    # a racing pop; a value sent to an unstarted one
                except error as e:
                    assert "thread" in str(e) or "finished" in str(e), e
        threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        shared.clear()
        gc.collect()
        gc.collect()
        print(Counted.alive, len(gc.garbage), continulet(lambda c: 1).switch())
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ["0", "0", "1"]


@pytest.mark.parametrize("held", ["globals", "cycles", "atexit", "exit_inside", "gc_off", "frozen"])
def test_interpreter_exits_with_unstarted_suspended_and_permuted_continulets(held):
    r = run_py("""
        import atexit, gc, sys
        from _continuation import continulet, permute
        held = %r
        def body(c, *a):
            c.switch()
        class WithDel(continulet):
            def __del__(self):
                super().__del__()
        G = [continulet(body), WithDel(body), continulet(body, object())]
        for k in (continulet, WithDel):
            c = k(body); c.switch(); G.append(c)
        a, b, c = continulet(body), WithDel(body), continulet(body)
        a.switch()
        permute(a, b, c)
        G += [a, b, c]
        if held != "globals":
            class Node: pass
            n = Node(); n.n = n; n.G = G
            del G, a, b, c, n
        if held == "atexit":
            d = continulet(body); d.switch()
            atexit.register(lambda d=d: print("atexit", d.is_pending()))
            e = continulet(body)
            atexit.register(e.switch)
        if held == "gc_off":
            gc.disable()
        if held == "frozen":
            gc.freeze()
        if held == "exit_inside":
            continulet(lambda c: sys.exit(3)).switch()
        print("exiting")
    """ % held)
    assert r.returncode == (3 if held == "exit_inside" else 0), r.stderr[-3000:]
    assert "Fatal" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-3000:]
    expected = {"exit_inside": [], "atexit": ["exiting", "atexit", "True"]}
    assert r.stdout.split() == expected.get(held, ["exiting"])


@pytest.mark.skipif(sys.version_info < (3, 11), reason="3.11+ gives each continuation a data stack")
def test_first_switch_needs_no_memory_for_the_data_stack():
    # The data stack's root chunk is taken by __init__, where running out of memory is a plain
    # MemoryError. The first switch used to take it on the new stack, where a failure left the
    # switcher's interpreter state installed while the call's arguments were dropped there (a
    # finalizer that switched ran on the wrong frames).
    pytest.importorskip("_testcapi")
    r = run_py("""
        import _testcapi
        from _continuation import continulet
        def body(c):
            c.switch()
        def ran(c):
            return "ran"
        held = []
        for _ in range(1100):                # empty the cache of freed root chunks
            c = continulet(body)
            c.switch()
            held.append(c)
        made = []
        for k in range(4):                   # fail each of __init__'s first allocations
            _testcapi.set_nomemory(k, k + 1)
            try:
                c = continulet(ran)
            except MemoryError:
                c = None
            finally:
                _testcapi.remove_mem_hooks()
            made.append(c is not None)
            if c is not None:
                _testcapi.set_nomemory(0, 1)
                try:
                    result = c.switch()
                except MemoryError:
                    result = "MemoryError"
                finally:
                    _testcapi.remove_mem_hooks()
                print(result)
        print(made)
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.split("\n")[:-1]
    made = eval(lines[-1])
    assert not all(made) and any(made)
    assert lines[:-1] == ["ran"] * sum(made)


def test_unbounded_nesting_of_starts_ends_in_memory_error():
    # Each continulet counts its own recursion, so a callable that starts another one from
    # inside itself nests until memory runs out: a MemoryError, never an abort (the binding's
    # own allocations, such as its pool of freed states, must not abort either).
    r = run_py("""
        import resource
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (3 << 29, hard))
        from _continuation import continulet
        def nest(c):
            return continulet(nest).switch()
        try:
            continulet(nest).switch()
        except MemoryError:
            # Before the traceback of every level goes: the main stack must be able to grow.
            resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
            print("MemoryError")
    """)
    assert (r.returncode, r.stdout) == (0, "MemoryError\n"), r.stderr[-3000:]


def test_finished_call_whose_result_is_the_finalizer_reports_no_released_inputs():
    # A call's result lands in the slot that held what it called; then the eval loop may run a
    # collection whose finalizer switches away (deferred to the collection's end: it runs on a
    # continulet's stack). When that result is the finalizer's function, the suspended frame must
    # not look as if it were still calling it: its released inputs (here `z`) were reported to
    # the GC as references it does not own (3.12, 3.13).
    r = run_py("""
        import gc
        from _continuation import continulet, call_when_switchable
        main, box, keep = [None], [], []
        class X:
            def __del__(self):
                call_when_switchable(main[0].switch, "suspended in __del__")
        class Z:
            pass
        def f(c):
            main[0] = c
            for _ in range(1000):
                gc.collect()
                x = X(); x.me = x
                del x
                z = Z(); keep.append(z); box.append(z); del z
                gc.set_threshold(1)    # the list below schedules a collection, run after getattr
                r = getattr(X, "__del__", (box.pop(), [[], [], []])[0])
                gc.set_threshold(700)
        c = continulet(f)
        print(c.switch())
        gc.set_threshold(700)
        print(any(r is c for r in gc.get_referrers(keep[-1])))
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split("\n")[:-1] == ["suspended in __del__", "False"]


def test_switch_from_a_weakref_callback_while_a_switch_call_releases_its_inputs():
    # f's `c.switch(obj)` returned; releasing its argument frees obj, whose weakref callback
    # switches away. f's frame still sits at that call, with the switch descriptor in its slot,
    # but the switch that suspended it came from C: the inputs of f's finished call (released,
    # obj freed) must not be reported to the GC, which used to read the freed obj and crash.
    r = run_py("""
        import gc, weakref
        from _continuation import continulet
        refs, box = [], [None]
        class Obj:
            pass
        def idle(o):
            o.switch()
            box[0].switch("from idle")
        other = continulet(idle)
        other.switch()
        def make():
            o = Obj()
            refs.append(weakref.ref(o, other.switch))
            return o
        def f(c):
            c.switch(make())
        c = continulet(f)
        box[0] = c
        got = c.switch()
        del got                  # f's argument slot holds the last reference
        print(c.switch())        # f resumes; the release runs the callback, which goes to idle
        print(sum(1 for x in gc.get_referents(other) if x is c))   # frame local, call, owner
        gc.collect()
        print("collected")
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split("\n")[:-1] == ["from idle", "3", "collected"]


# A finalizer run by a collection on a continulet's stack. The collector keeps the heads of its
# object lists on that stack; a switch could copy it out while objects die and relink the heads
# in the region, and they would come back stale (a crash later in the collection).
IDLE = """
    import gc, sys
    from _continuation import continulet, error, call_when_switchable
    def idle(c):
        while True:
            c.switch("idle ran")
    other = continulet(idle)
    other.switch()
"""
FINALIZER_SWITCH = IDLE + """
    seen = []
    class Switcher:
        def __del__(self):
            try:
                seen.append(other.switch())
            except error as e:
                seen.append(str(e))
    def garbage():
        s = Switcher()
        s.me = s
    def collect(c):
        garbage()
        gc.collect()
    gc.disable()
"""


def test_switch_from_a_finalizer_of_a_collection_on_a_continulet_stack_is_refused():
    r = run_py(FINALIZER_SWITCH + """
    continulet(collect).switch()
    print(seen)
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == ("[\"cannot switch while a garbage collection runs on a continulet's stack (from a "
                        "finalizer or weakref callback it runs); call_when_switchable() defers a call "
                        "until it is over\"]\n")


def test_switch_from_a_finalizer_of_a_collection_on_the_main_stack_runs():
    # The thread's own stack is never copied out: the switch goes ahead.
    r = run_py(FINALIZER_SWITCH + """
    garbage()
    gc.collect()
    print(seen)
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == "['idle ran']\n"


def test_without_the_gc_callback_every_switch_in_a_collection_is_refused():
    # A user removed the binding's gc.callbacks entry: where a collection runs is unknown.
    r = run_py(FINALIZER_SWITCH + """
    gc.callbacks.clear()
    garbage()
    gc.collect()
    print(seen[0][:50])
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == "cannot switch while a garbage collection runs on a\n"


def test_call_when_switchable_calls_at_once_outside_a_collection():
    from _continuation import call_when_switchable
    calls = []
    assert call_when_switchable(calls.append, 1) is None
    assert calls == [1]
    with pytest.raises(ZeroDivisionError):
        call_when_switchable(lambda a, b: a / b, 1, 0)
    with pytest.raises(TypeError, match="argument 1 must be callable, not int"):
        call_when_switchable(3)


def test_call_when_switchable_defers_a_finalizers_switch_to_the_collections_end():
    # Deferred calls run in order once the lists are gone, before gc.collect() returns; they may
    # switch, and their exceptions go to sys.unraisablehook with the function as object.
    r = run_py(IDLE + """
    log = []
    def fail(why):
        raise ValueError(why)
    sys.unraisablehook = lambda u: log.append((type(u.exc_value).__name__, str(u.exc_value),
                                               u.object is fail))
    class Switcher:
        def __del__(self):
            call_when_switchable(lambda: log.append(other.switch()))
            call_when_switchable(fail, "deferred")
            call_when_switchable(log.append, "third")
            log.append("finalized")
    def collect(c):
        s = Switcher()
        s.me = s
        del s
        gc.collect()
        log.append("collected")
    gc.disable()
    continulet(collect).switch()
    print(log)
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == ("['finalized', 'idle ran', ('ValueError', 'deferred', True), 'third', "
                        "'collected']\n")


def test_binding_error_during_interpreter_shutdown():
    # The first error the binding makes in the process, made while Py_FinalizeEx clears the
    # modules (CPython then says it is not initialized): pyo3's first-attach check aborted.
    r = run_py("""
        import _continuation
        class Late:
            def __del__(self):
                try:
                    _continuation.stack_saved(None)
                except TypeError as e:
                    print("TypeError:", e)
        late = Late()
    """)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == "TypeError: 'None' is not an instance of 'continulet'\n"
    assert r.stderr == ""
