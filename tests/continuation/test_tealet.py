"""tealet extensions and CPython lifetime/GC/thread guarantees (skipped on PyPy's reference)."""
import contextvars
import gc
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import traceback
import weakref

import pytest
from conftest import IS_PYPY, tealet_only

pytestmark = tealet_only

if not IS_PYPY:
    from _continuation import (ContinuletExit, continulet, error, get_context, get_frame,
                               get_tstate_trash_delete_nesting, set_context, stack_saved,
                               stack_used)


def run_py(code, timeout=120):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)


def test_get_frame_of_suspended():
    def inner(c):
        c.switch()
    def f(c):
        inner(c)
    c = continulet(f)
    assert get_frame(c) is None  # not started: no suspended frame
    c.switch()
    fr = get_frame(c)
    assert fr.f_code.co_name == "inner"
    names = []
    while fr is not None:
        names.append(fr.f_code.co_name)
        fr = fr.f_back
    assert names[:2] == ["inner", "f"]
    c.switch()
    assert get_frame(c) is None


def test_get_frame_walk_after_other_switches():
    # Another continulet overwrites the shared stack region; walking must stay safe.
    def deep(c, n):
        if n:
            return deep(c, n - 1)
        c.switch()
    a = continulet(lambda c: deep(c, 50))
    a.switch()
    b = continulet(lambda c: deep(c, 200))
    b.switch()
    for cont in (a, b):
        fr, n = get_frame(cont), 0
        while fr is not None:
            fr.f_locals
            fr, n = fr.f_back, n + 1
        assert n >= 50
    a.switch(); b.switch()


def test_detach_frames_opts_out_of_the_link():
    class Detached(continulet):
        detach_frames = True
    seen = []
    def f(c):
        seen.append(sys._getframe().f_back)
        c.switch()
        seen.append(sys._getframe().f_back)
    def switcher(c):
        c.switch()
    for cls in (Detached, continulet):
        c = cls(f)
        switcher(c)
        switcher(c)
    assert seen[:2] == [None, None]
    assert [fr.f_code.co_name for fr in seen[2:]] == ["switcher", "switcher"]
    assert continulet.detach_frames is False


def test_detach_frames_is_read_at_each_init():
    # Changing the class attribute (on the class or a base) after continulets were made takes
    # effect for the next one.
    class Base(continulet):
        detach_frames = False
    class Sub(Base):
        pass
    def f(c):
        return sys._getframe().f_back
    def linked():
        return [Sub(f).switch() is not None for _ in range(2)]
    assert linked() == [True, True]
    Sub.detach_frames = True
    assert linked() == [False, False]
    del Sub.detach_frames
    assert linked() == [True, True]
    Base.detach_frames = True
    assert linked() == [False, False]
    del Base.detach_frames
    assert linked() == [True, True]


def test_throw_takes_value_as_well_as_pypys_val():
    # PyPy's keyword is `val`; `value` (as the API is often written) works too, not both.
    c = continulet(lambda c: c.switch())
    c.switch()
    with pytest.raises(TypeError, match="got both 'val' and 'value'"):
        c.throw(KeyError, "a", value="b")
    assert c.is_pending()
    with pytest.raises(KeyError) as info:  # uncaught there: it comes back here
        c.throw(KeyError, value="v")
    assert info.value.args == ("v",) and not c.is_pending()


def test_pass_continulet_false_calls_the_callable_without_it():
    class Bare(continulet):
        pass_continulet = False
    seen = []
    def f(*args, **kwds):
        seen.append((args, kwds))
        return bare.switch("suspended") + 1
    bare = Bare(f, 1, 2, x=3)
    assert bare.switch() == "suspended"
    assert bare.is_pending()
    assert bare.switch(41) == 42
    assert not bare.is_pending()
    bare = Bare(f)
    assert bare.switch() == "suspended"
    assert seen == [((1, 2), {"x": 3}), ((), {})]
    assert continulet.pass_continulet is True
    assert continulet(lambda *a: a, 1).switch()[1:] == (1,)


def test_pass_continulet_holds_no_reference_to_the_continulet():
    class Bare(continulet):
        pass_continulet = False
    def f():
        return "done"
    bare = Bare(f)
    assert bare.switch() == "done"
    ref = weakref.ref(bare)
    del bare
    assert ref() is None


def test_class_flags_are_read_independently_at_each_init():
    # Each flag is cached on its own: changing one between continulets of one class leaves the
    # other as set.
    class Both(continulet):
        detach_frames = True
        pass_continulet = False
    def f(*args):
        return args, sys._getframe().f_back
    def made():
        args, back = Both(f).switch()
        return (len(args), back is None)
    assert made() == (0, True)
    Both.pass_continulet = True
    assert made() == (1, True)
    Both.detach_frames = False
    assert made() == (1, False)
    Both.pass_continulet = 0  # any false value
    assert made() == (0, False)


def test_class_flag_whose_truth_fails_leaves_the_continulet_unbound():
    class Bad:
        def __bool__(self):
            raise ZeroDivisionError("no truth")
    class Sub(continulet):
        pass_continulet = Bad()
    c = Sub.__new__(Sub)
    with pytest.raises(ZeroDivisionError, match="no truth"):
        c.__init__(lambda: None)
    assert not c.is_pending()
    Sub.pass_continulet = False
    c.__init__(lambda: "bound now")  # not "already __init__ialized"
    assert c.switch() == "bound now"


def test_suspended_chain_ends_at_callable_after_switcher_finished():
    held = []
    def f(c):
        held.append(sys._getframe())
        c.switch()
    def starter(c):
        c.switch()
    c = continulet(f)
    starter(c)
    assert held[0].f_back is None          # starter's frame is gone; the link went with it
    assert get_frame(c) is held[0]
    def resumer():
        c.switch()
    resumer()
    assert not c.is_pending()


def test_context_per_continulet():
    var = contextvars.ContextVar("var", default="unset")
    def f(c):
        assert var.get() == "unset"  # fresh empty context by default
        var.set("inner")
        c.switch()
        return var.get()
    var.set("outer")
    c = continulet(f)
    c.switch()
    assert var.get() == "outer"
    assert c.switch() == "inner"


def test_set_context_before_start_and_get():
    var = contextvars.ContextVar("var2", default="unset")
    ctx = contextvars.Context()
    ctx.run(var.set, "given")
    c = continulet(lambda c: var.get())
    set_context(ctx, c)
    assert get_context(c) is ctx
    assert c.switch() == "given"


def test_context_of_unbound_and_finished_is_none():
    unbound = continulet.__new__(continulet)
    assert get_context(unbound) is None
    c = continulet(lambda c: 1)
    c.switch()
    assert get_context(c) is None
    with pytest.raises(error):
        set_context(contextvars.Context(), c)


def test_get_context_arguments():
    c = continulet(lambda c: None)
    ctx = contextvars.copy_context()
    set_context(ctx, c)
    assert get_context(c) is ctx and get_context(cont=c) is ctx
    assert get_context(None) is get_context()
    with pytest.raises(TypeError, match="'int' object is not an instance of 'continulet'"):
        get_context(1)
    with pytest.raises(TypeError, match="from 0 to 1 positional arguments but 2 were given"):
        get_context(c, c)
    with pytest.raises(TypeError, match="multiple values for argument 'cont'"):
        get_context(c, cont=c)
    with pytest.raises(TypeError, match="unexpected keyword argument 'x'"):
        get_context(x=c)


def test_get_set_context_current():
    var = contextvars.ContextVar("var3", default="unset")
    contextvars.copy_context()  # makes the thread's context if it has none
    assert get_context() is not None
    ctx = contextvars.Context()
    ctx.run(var.set, "swapped")
    old = get_context()
    set_context(ctx)
    try:
        assert var.get() == "swapped"
    finally:
        set_context(old)
    assert var.get() == "unset"


def test_stack_saved_is_int():
    c = continulet(lambda c: c.switch())
    assert stack_saved(c) == 0
    c.switch()
    assert isinstance(stack_saved(c), int) and stack_saved(c) >= 0
    c.switch()


def test_stack_used_while_suspended():
    seen = []
    def f(c):
        seen.append(stack_used(c))  # c holds the suspended main continuation here
        c.switch()
    c = continulet(f)
    assert stack_used(c) == 0  # unbound: nothing to resume yet
    c.switch()
    assert seen[0] > 0
    assert stack_used(c) > 0 and stack_used(c) >= stack_saved(c)
    c.switch()
    assert not c.is_pending() and stack_used(c) == 0
    assert stack_used(continulet.__new__(continulet)) == 0


def test_stack_used_grows_with_depth():
    def f(c, n):  # through map: each level nests the C stack (3.11+ inline plain Python calls)
        return list(map(lambda _: f(c, n - 1), [0])) if n else c.switch()
    shallow, deep = continulet(f, 0), continulet(f, 50)
    shallow.switch()
    deep.switch()
    assert stack_used(deep) > stack_used(shallow) > 0
    shallow.switch()
    deep.switch()


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.13 has no trash delete nesting")
def test_trash_delete_nesting_reads_the_thread_state():
    seen = []
    class Probe:
        def __del__(self):
            seen.append(get_tstate_trash_delete_nesting())
    assert get_tstate_trash_delete_nesting() == 0
    # Deallocating nested lists nests in the trash can, one level per list.
    x = [Probe()]
    for _ in range(9):
        x = [x]
    del x
    assert seen and seen[0] >= 10
    assert get_tstate_trash_delete_nesting() == 0


@pytest.mark.skipif(sys.version_info < (3, 13), reason="3.9-3.12 have the counter")
def test_trash_delete_nesting_absent_on_313():
    with pytest.raises(NotImplementedError, match="3.13"):
        get_tstate_trash_delete_nesting()


def test_pickle_raises_typeerror():
    c = continulet(lambda c: None)
    with pytest.raises(TypeError, match="cannot pickle continulet.*capture_frames"):
        pickle.dumps(c)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="only 3.12+ saves allocate (links past C-stack entry frames)")
@pytest.mark.parametrize("how", ["switch", "switch_to", "throw"])
def test_switch_that_cannot_save_changes_nothing(how):
    # The save fails for want of memory: the switcher goes on with MemoryError, and every
    # continulet still holds what it held before.
    testcapi = pytest.importorskip("_testcapi")
    other = continulet(lambda c: c.switch("other"))
    def attempt(c):
        testcapi.set_nomemory(0, 1)  # fails the next allocation: the save's link record
        try:
            if how == "throw":
                c.throw(KeyError)
            elif how == "switch_to":
                c.switch("out", to=other)
            else:
                c.switch("out")
        except MemoryError:
            return "failed"
        finally:
            testcapi.remove_mem_hooks()
        return "left"
    def f(c):
        # map calls attempt from C, through an entry frame on the C stack: saving relinks past it.
        outcome = list(map(attempt, [c]))
        return c.switch(outcome), "done"
    c = continulet(f)
    assert c.switch() == ["failed"]
    assert c.is_pending() and other.is_pending()
    assert c.switch("back") == ("back", "done")
    assert not c.is_pending()
    assert other.switch() == "other"


def test_recursion_error_inside():
    def rec(n):
        return rec(n + 1)
    def f(c):
        try:
            rec(0)
        except RecursionError:
            return "recursion"
    assert continulet(f).switch() == "recursion"


def test_recursion_limit_applies_per_continulet():
    depth = []
    def rec(n):
        try:
            return rec(n + 1)
        except RecursionError:
            return n
    def f(c):
        return rec(0)
    inside = continulet(f).switch()
    outside = rec(0)
    assert abs(inside - outside) < 50


def test_deep_c_recursion_inside():
    # C-mediated recursion (repr of nested lists) needs real C stack.
    def f(c):
        x = []
        for _ in range(100000):
            x = [x]
        try:
            repr(x)
        except RecursionError:
            return "recursion"
        return "ok"
    assert continulet(f).switch() in ("ok", "recursion")


def test_exit_on_garbage_runs_finally():
    log = []
    def f(c):
        try:
            c.switch()
        except ContinuletExit:
            log.append("exit")
            raise
        finally:
            log.append("finally")
    c = continulet(f)
    c.switch()
    del c
    gc.collect()
    assert log == ["exit", "finally"]
    assert issubclass(ContinuletExit, BaseException)


def test_cycle_through_suspended_is_collected():
    class Obj:
        pass
    def f(c, obj):
        c.switch()
    o = Obj()
    c = continulet(f, o)
    c.switch()
    o.c = c  # cycle: c -> suspended frame locals -> o -> c
    ref = weakref.ref(o)
    del o, c
    gc.collect()
    assert ref() is None


def test_gc_referents_include_frame_locals():
    marker = object()
    def f(c, m):
        c.switch()
    c = continulet(f, marker)
    c.switch()
    assert any(marker in (gc.get_referents(r) if not isinstance(r, type) else ())
               for r in [c] + gc.get_referents(c)) or marker in gc.get_referents(c)
    c.switch()


def test_del_subclass_can_call_super():
    log = []
    class C(continulet):
        def __del__(self):
            log.append("del")
            super().__del__()
    c = C(lambda c: c.switch())
    c.switch()
    del c
    gc.collect()
    assert log == ["del"]


def test_is_pending_as_del_then_an_assigned_del_runs():
    # A subclass whose __del__ is is_pending (greenlet-py's continulets) gets no finalizer call
    # at all; a __del__ assigned to it later runs again.
    log = []
    class C(continulet):
        __del__ = continulet.is_pending
    c = C(lambda c: 1)
    assert c.switch() == 1
    del c
    C.__del__ = lambda self: log.append(self.is_pending())
    c = C(lambda c: 2)
    assert c.switch() == 2
    del c
    assert log == [False]


def test_many_created_switched_dropped_flat():
    r = run_py("""
        import gc, resource
        from _continuation import continulet
        def f(c):
            c.switch(1)
        def batch(n):
            for _ in range(n):
                c = continulet(f)
                c.switch()
        batch(10000)
        gc.collect()
        objs = len(gc.get_objects())
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        batch(100000)
        gc.collect()
        objs2 = len(gc.get_objects())
        rss2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(objs2 - objs, rss2 - rss)
    """)
    assert r.returncode == 0, r.stderr
    dobjs, drss_kib = map(int, r.stdout.split())
    assert dobjs < 100
    assert drss_kib < 10 * 1024


def test_shutdown_with_suspended_continulets():
    # Suspended continuations are left as they are at shutdown, garbage or not: nothing is thrown
    # into them while the modules their code would use are torn down.
    r = run_py("""
        from _continuation import continulet
        def f(c):
            try:
                c.switch()
            finally:
                print("finally ran")
        keep = []
        for i in range(100):
            c = continulet(f)
            c.switch()
            keep.append(c)
        garbage = continulet(f)
        garbage.switch()
        del garbage  # its own continuation holds it: left for the GC, which runs at shutdown
        c2 = continulet(lambda c: None)  # bound, never started
        print("ok")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"
    assert r.stderr == ""


def test_deep_c_recursion_hits_guard_page():
    # Nested map iterators recurse in C with no recursion check on every version (3.12+ counts
    # C recursion only where CPython calls Py_EnterRecursiveCall): this runs into the guard page
    # of the continulet's stack, where the core reports the overflow and aborts.
    r = run_py("""
        from _continuation import continulet
        def f(c):
            it = iter([1])
            for _ in range(1000000):
                it = map(abs, it)
            return next(it)
        continulet(f).switch()
    """)
    assert r.returncode == -signal.SIGABRT, (r.returncode, r.stderr)
    assert re.search(r"tealet: stack overflow in tealet \d+ \(stack size \d+\)", r.stderr), r.stderr


def test_chains_of_copied_out_continulets_never_reach_their_c_stack():
    # Each chain passes C calls (map, next into a generator, sorted's key) between Python frames:
    # 3.12+ links an entry frame on the C stack there. Dense stacks get copied out and overwritten by the others, so
    # f_back, tracebacks and the GC must only ever see the heap frames.
    class Marker:
        pass
    n = 300
    def inner(c, k, caught):
        marker = Marker()
        try:
            raise ValueError(k)
        except ValueError as e:
            caught.append((e, marker))
        c.switch()
        return k
    def middle(c, k, caught):
        return sorted([k], key=lambda _: inner(c, k, caught))[0]
    def gen(c, k, caught):
        yield middle(c, k, caught)
    def outer(c, k, caught):
        return list(map(lambda _: next(gen(c, k, caught)), [0]))[0]
    conts, caught = [], []
    for k in range(n):
        c = continulet(outer, k, caught)
        c.switch()
        conts.append(c)
    # Scribble over every shared region with a deep C stack that then finishes.
    def scribble(c):
        x = []
        for _ in range(300):
            x = [x]
        return len(repr(x))
    for _ in range(8):
        continulet(scribble).switch()
    assert sum(stack_saved(c) > 0 for c in conts) > n // 2
    want = ["inner", "<lambda>", "middle", "gen", "<lambda>", "outer"]
    for k, c in enumerate(conts):
        names, fr = [], get_frame(c)
        while fr is not None:
            names.append(fr.f_code.co_name)
            assert fr.f_locals["k"] == k
            fr = fr.f_back
        assert names == want
        exc, marker = caught[k]
        names, fr = [], exc.__traceback__.tb_frame
        while fr is not None:
            names.append(fr.f_code.co_name)
            fr = fr.f_back
        assert names == want
        assert [f.name for f in traceback.extract_stack(exc.__traceback__.tb_frame)] == want[::-1]
        reached = set(map(id, gc.get_referents(c)))
        assert id(marker) in reached or any(
            marker in gc.get_referents(r) for r in gc.get_referents(c))
    gc.collect()
    for k, c in enumerate(conts):
        assert c.switch() == k
        assert not c.is_pending()


def test_foreign_thread_finalizer_runs_in_owner_thread():
    import threading
    log = []
    def f(c):
        try:
            c.switch()
        finally:
            log.append(threading.current_thread().name)
    c = continulet(f)
    c.switch()
    holder = [c]
    del c
    t = threading.Thread(target=holder.clear, name="other")
    t.start(); t.join()
    gc.collect()
    # The finalizer cannot run on the foreign thread: it is deferred to the owner.
    continulet(lambda c: None).switch()
    gc.collect()
    assert log == [threading.current_thread().name]


def test_unstarted_and_finished_continulets_are_freed():
    gc.collect()
    before = len(gc.get_objects())
    for _ in range(10000):
        continulet(lambda c: None)  # bound, never started: collected as a cycle
    for _ in range(10000):
        c = continulet(lambda c: 1)
        c.switch()
    del c
    gc.collect()
    assert len(gc.get_objects()) - before < 50
