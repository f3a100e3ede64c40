"""PyPy continulet semantics. Runs unchanged against PyPy's own _continuation (the reference)."""
import platform
import random
import sys
import threading

import pytest
from _continuation import continulet, error, permute

IS_PYPY = platform.python_implementation() == "PyPy"


def test_new_empty():
    c = continulet.__new__(continulet)
    assert not c.is_pending()
    assert c.switch(42) == 42  # unbound, no to=: returns the value


def test_call_empty():
    def empty(c):
        return 5
    c = continulet(empty)
    assert c.is_pending()
    assert c.switch() == 5
    assert not c.is_pending()


def test_nothing_runs_before_first_switch():
    seen = []
    c = continulet(lambda c: seen.append(1))
    assert seen == []
    c.switch()
    assert seen == [1]


def test_no_double_init():
    c = continulet(lambda c: None)
    with pytest.raises(error, match="continulet already __init__ialized"):
        c.__init__(lambda c: None)


def test_init_forms():
    # continulet(...) and explicit __init__ calls, with and without keywords, all bind the same
    # way; a second binding fails whichever path it takes.
    def f(c, *args, **kwds):
        return args, kwds
    assert continulet(f).switch() == ((), {})
    assert continulet(f, 1).switch() == ((1,), {})
    assert continulet(callable=f).switch() == ((), {})
    c = continulet.__new__(continulet)
    continulet.__init__(c, f, 2, y=4)
    assert c.switch() == ((2,), {"y": 4})
    class Sub(continulet):
        def __init__(self, *a, **k):
            continulet.__init__(self, *a, **k)
    assert Sub(f, 5).switch() == ((5,), {})
    assert Sub(f, z=6).switch() == ((), {"z": 6})
    # With a positional callable every keyword goes to it, `callable=` too (PyPy's parsing).
    assert continulet(f, callable=1).switch() == ((), {"callable": 1})
    assert Sub(f, 7, callable=8).switch() == ((7,), {"callable": 8})
    assert continulet(callable=f, x=3).switch() == ((), {"x": 3})
    with pytest.raises(TypeError):
        continulet()
    c = continulet(f)
    for again in (lambda: continulet.__init__(c, f), lambda: continulet.__init__(c, f, k=1)):
        with pytest.raises(error, match="continulet already __init__ialized"):
            again()


def test_no_init_after_started():
    def f(c):
        with pytest.raises(error, match="already __init__ialized"):
            c.__init__(lambda c: None)
        return 42
    assert continulet(f).switch() == 42


def test_no_init_after_finished():
    c = continulet(lambda c: 42)
    c.switch()
    with pytest.raises(error, match="already __init__ialized"):
        c.__init__(lambda c: None)


def test_propagate_exception():
    def f(c):
        raise ValueError("boom")
    c = continulet(f)
    with pytest.raises(ValueError, match="boom"):
        c.switch()
    assert not c.is_pending()


def test_callback_with_arguments():
    def f(c, *args, **kwds):
        return (c, args, kwds)
    c = continulet(f, 1, 2, x=3)
    res = c.switch()
    assert res == (c, (1, 2), {"x": 3})


def test_switch():
    def f(c):
        assert c.switch(1) == 2
        assert c.switch(3) == 4
        return 5
    c = continulet(f)
    assert c.switch() == 1
    assert c.switch(2) == 3
    assert c.switch(4) == 5
    assert not c.is_pending()


def test_initial_switch_must_give_None():
    c = continulet(lambda c: 42)
    with pytest.raises(TypeError):
        c.switch("non-None")
    assert not c.is_pending()


def test_continuation_error_finished():
    c = continulet(lambda c: 42)
    c.switch()
    with pytest.raises(error, match="continulet already finished"):
        c.switch()
    with pytest.raises(error, match="continulet already finished"):
        c.throw(ValueError)
    assert issubclass(error, Exception)


def test_go_depth2():
    def f2(c2):
        return c2.switch(40) + 1
    def f1(c1):
        c2 = continulet(f2)
        x = c2.switch()
        assert x == 40
        return c2.switch(x + 1)
    c1 = continulet(f1)
    assert c1.switch() == 42


def test_exception_depth2():
    def f2(c2):
        raise ValueError
    def f1(c1):
        c2 = continulet(f2)
        try:
            c2.switch()
        except ValueError:
            return 42
        return 0
    assert continulet(f1).switch() == 42


def test_exception_with_switch():
    def f(c):
        c.switch()
        raise ValueError
    c = continulet(f)
    c.switch()
    with pytest.raises(ValueError):
        c.switch()


def test_is_pending():
    def f(c):
        assert c.is_pending()
        c.switch()
    c = continulet(f)
    assert c.is_pending()
    c.switch()
    assert c.is_pending()
    c.switch()
    assert not c.is_pending()


def test_switch_alternate():
    def f1(c):
        for i in range(5):
            c.switch(("a", i))
        return "end"
    c1 = continulet(f1)
    c2 = continulet(f1)
    out = [c1.switch(), c2.switch()]
    for _ in range(5):
        out.append(c1.switch())
        out.append(c2.switch())
    assert out[:2] == [("a", 0), ("a", 0)]
    assert out[-2:] == ["end", "end"]


def test_exception_with_switch_depth2():
    def f2(c2, c1):
        c1.switch(42)  # switches out of c1's callable: c1 is the holder
        raise ValueError
    def f1(c1):
        c2 = continulet(f2, c1)
        c2.switch()
        return 0
    c1 = continulet(f1)
    # c1.switch() inside c2 switches back to the main continuation
    assert c1.switch() == 42


def test_random_switching():
    rng = random.Random(42)
    conts = []
    log = []

    def f(c, n):
        value = None
        for step in range(20):
            log.append((n, step, value))
            value = c.switch(n)
        return ("done", n)

    conts = [continulet(f, i) for i in range(10)]
    live = list(conts)
    while live:
        c = rng.choice(live)
        r = c.switch(rng.randrange(100) if c.is_pending() and log and any(e[0] == conts.index(c) for e in log) else None)
        if not c.is_pending():
            assert r == ("done", conts.index(c))
            live.remove(c)
        else:
            assert r == conts.index(c)
    assert len(log) == 200


def test_f_back_traceback_is_complete():
    def f(c):
        raise ValueError
    def caller():
        c = continulet(f)
        c.switch()
    with pytest.raises(ValueError) as exc:
        caller()
    names = [entry.name for entry in exc.traceback]
    assert "caller" in names and "f" in names
    assert names.index("caller") < names.index("f")


def stack_names(frame):
    """Code names from `frame` down its f_back chain (PyPy's hidden bottom frames left out)."""
    names = []
    while frame is not None:
        if not (IS_PYPY and frame.f_code.co_filename.startswith("<builtin>")):
            names.append(frame.f_code.co_name)
        frame = frame.f_back
        assert len(names) < 1000, "f_back chain does not end"
    return names


def test_f_back_of_callable_frame_is_switcher():
    seen = []
    def f(c):
        seen.append(stack_names(sys._getframe()))
        c.switch()
        seen.append(stack_names(sys._getframe()))
    def first_switcher(c):
        c.switch()
    def second_switcher(c):
        c.switch()
    c = continulet(f)
    first_switcher(c)
    second_switcher(c)
    here = stack_names(sys._getframe())
    assert seen == [["f", "first_switcher"] + here, ["f", "second_switcher"] + here]


def test_f_back_of_nested_start():
    seen = []
    def inner(c):
        seen.append(stack_names(sys._getframe()))
    def outer(c):
        continulet(inner).switch()
    continulet(outer).switch()
    assert seen[0][:2] == ["inner", "outer"]


def test_f_back_after_double_switch_is_the_held_continuation():
    # PyPy: the bottom frame's f_back is the top of what the continulet holds, where the
    # callable's result goes; after a double switch that is not the frame that switched.
    seen = []
    def f1(c1):
        seen.append(stack_names(sys._getframe())[:2])
        return "f1"
    def f2(c2):
        return c2.switch("started")
    c1, c2 = continulet(f1), continulet(f2)
    def switcher():
        return c2.switch(to=c1)  # resumes c1's (unstarted) callable; c1 then holds f2's
    assert c2.switch() == "started"
    assert switcher() == "f1"    # f1's result resumes f2, which returns it to us
    assert seen == [["f1", "f2"]]


def test_f_back_after_throw_is_the_thrower():
    def f(c):
        try:
            c.switch()
        except KeyError:
            return stack_names(sys._getframe())
    def thrower(c):
        return c.throw(KeyError)
    c = continulet(f)
    c.switch()
    assert thrower(c)[:2] == ["f", "thrower"]


def test_exception_out_of_callable_after_relink():
    def f(c):
        c.switch()
        raise ValueError("out")
    def resumer(c):
        c.switch()
    c = continulet(f)
    c.switch()
    with pytest.raises(ValueError) as info:
        resumer(c)
    names = [e.name for e in info.traceback]
    assert names.index("resumer") < names.index("f")
    assert not c.is_pending()
    tb = info.value.__traceback__
    while tb.tb_frame.f_code.co_name != "f":
        tb = tb.tb_next
    walked = stack_names(tb.tb_frame)
    if not IS_PYPY:  # CPython keeps a dead frame's f_back: the frame it returned to
        assert walked[:2] == ["f", "resumer"]


def test_profile_set_inside_continulet_sees_events_after_switch_back():
    for finish in (True, False):
        events = []
        def prof(frame, event, arg):
            events.append((event, frame.f_code.co_name))
        def f(c):
            sys.setprofile(prof)
            if not finish:
                c.switch()
        def after():
            pass
        c = continulet(f)
        try:
            c.switch()
            after()
        finally:
            sys.setprofile(None)
        assert ("call", "after") in events, finish


def test_trace_set_inside_continulet_sees_events_after_switch_back():
    for finish in (True, False):
        events = []
        def tracer(frame, event, arg):
            events.append((event, frame.f_code.co_name))
            return tracer
        def f(c):
            sys.settrace(tracer)
            if not finish:
                c.switch()
        def after():
            x = 1
            return x
        c = continulet(f)
        try:
            c.switch()
            after()
        finally:
            sys.settrace(None)
        assert ("call", "after") in events and ("line", "after") in events, finish


def test_switch2_simple():
    def f1(c1):
        return "m"
    def f2(c2):
        res = c2.switch("z")
        return res
    c1 = continulet(f1)
    c2 = continulet(f2)
    assert c2.switch() == "z"
    # Double switch: current goes into c1, c1's old continuation (start of f1) into c2, c2's old
    # one resumes; f2 returns into the start of f1, and f1 returns into us (held by c1).
    res = c1.switch(to=c2)
    assert res == "m"
    assert not c1.is_pending() and not c2.is_pending()


def test_switch2_value_reaches_start_of_other():
    c1 = continulet(lambda c1: "m")
    c2 = continulet(lambda c2: c2.switch("z"))
    assert c2.switch() == "z"
    # f2 resumes with "a" and returns it into the start of f1: non-None into a just-started one.
    with pytest.raises(TypeError):
        c1.switch("a", to=c2)


def test_switch2_pingpong():
    def f1(c1):
        res = c1.switch("z")
        assert res == "a"
        return "b"
    def f2(c2):
        res = c2.switch("z")
        assert res == "b"
        return "c"
    c1 = continulet(f1)
    c2 = continulet(f2)
    assert c1.switch() == "z"
    assert c2.switch() == "z"
    assert c1.switch("a") == "b"
    assert c2.switch("b") == "c"


def test_switch2_no_op():
    def f1(c1):
        res = c1.switch("z", to=c1)
        assert res == "z"
        return 42
    c1 = continulet(f1)
    assert c1.switch(to=c1) is None  # same continulet: nothing happens
    assert c1.switch() == 42


def test_switch2_immediately_away():
    def f1(c1):
        return "m"
    def f2(c2):
        assert c2.switch("z") is None
    c1 = continulet(f1)
    c2 = continulet(f2)
    assert c2.switch() == "z"
    res = c1.switch(to=c2)
    assert res == "m"


def test_switch2_not_initialized():
    c0 = continulet.__new__(continulet)
    c0bis = continulet.__new__(continulet)
    res = c0.switch(123, to=c0bis)
    assert res == 123
    res = c0.switch(123, to=c0)
    assert res == 123
    def f1(c1):
        c1.switch("a")
        return "b"
    c1 = continulet(f1)
    # cont unbound, to given: plain to.switch(v)
    assert c0.switch(to=c1) == "a"
    assert c0.switch(to=c1) == "b"
    # to unbound: ignored
    c2 = continulet(f1)
    assert c2.switch(to=c0) == "a"
    assert c2.switch(to=c0) == "b"


def test_switch2_already_finished():
    def f1(c1):
        not_reachable
    def empty(c):
        return 42
    c1 = continulet(f1)
    c2 = continulet(empty)
    assert c2.switch() == 42
    with pytest.raises(error, match="continulet already finished"):
        c1.switch(to=c2)
    with pytest.raises(error, match="continulet already finished"):
        c2.switch(to=c1)


def test_throw():
    def f1(c1):
        try:
            c1.switch()
        except IndexError as e:
            return "caught %s" % (e,)
        return "not caught"
    c1 = continulet(f1)
    c1.switch()
    assert c1.throw(IndexError, IndexError("x")) == "caught x"


def test_throw_instance_and_class():
    def f(c):
        got = None
        while True:
            try:
                c.switch(got)
            except KeyError as e:
                got = e.args if e.args else type(e)
    c = continulet(f)
    c.switch()
    assert c.throw(KeyError) is KeyError
    assert c.throw(KeyError("k")) == ("k",)
    assert c.throw(KeyError, "v") == ("v",)


def test_throw_value_keyword_is_val():
    def f(c):
        try:
            c.switch()
        except KeyError as e:
            return e.args
    c = continulet(f)
    c.switch()
    assert c.throw(type=KeyError, val="v") == ("v",)


def test_throw_argument_errors():
    c = continulet(lambda c: c.switch())
    c.switch()
    with pytest.raises(TypeError, match="^exceptions must derive from BaseException, not int$"):
        c.throw(5)
    with pytest.raises(TypeError, match="^exceptions must derive from BaseException, not type$"):
        c.throw(int)
    with pytest.raises(TypeError, match="^throw\\(\\) third argument must be a traceback object$"):
        c.throw(KeyError, None, 5)
    with pytest.raises(TypeError, match="^'_continuation.continulet' object expected, got 'int' instead$"):
        c.throw(KeyError, to=5)
    assert c.is_pending()
    try:
        raise KeyError("tb")
    except KeyError as e:
        tb = e.__traceback__
    with pytest.raises(KeyError) as info:
        c.throw(KeyError, "x", tb)
    assert info.value.__traceback__ is not None
    assert not c.is_pending()


def test_switch_to_not_a_continulet():
    c = continulet(lambda c: c.switch())
    c.switch()
    for call in (lambda: c.switch(to=5), lambda: c.switch(None, 5)):
        with pytest.raises(TypeError, match="^'_continuation.continulet' object expected, got 'int' instead$"):
            call()
    assert c.is_pending()
    assert c.switch() is None


def test_finished_switch_to_itself():
    c = continulet(lambda c: 1)
    c.switch()
    with pytest.raises(error, match="continulet already finished"):
        c.switch(to=c)
    with pytest.raises(error, match="continulet already finished"):
        c.throw(KeyError, to=c)


def test_throw_propagates_back():
    def f(c):
        c.switch()
    c = continulet(f)
    c.switch()
    with pytest.raises(ZeroDivisionError):
        c.throw(ZeroDivisionError)
    assert not c.is_pending()


def test_throw_to_starting():
    ran = []
    c = continulet(lambda c: ran.append(1))
    with pytest.raises(IndexError):
        c.throw(IndexError)
    assert ran == []
    assert not c.is_pending()


def test_throw_unbound_raises_in_caller():
    c = continulet.__new__(continulet)
    with pytest.raises(IndexError):
        c.throw(IndexError)


def test_throw2_simple():
    def f1(c1):
        not_reachable
    def f2(c2):
        try:
            c2.switch("ready")
        except IndexError:
            raise ValueError
    c1 = continulet(f1)
    c2 = continulet(f2)
    assert c2.switch() == "ready"
    # c1's start goes into c2, c2 resumes with IndexError, raises ValueError, which goes to the
    # continuation c2 now holds: c1's unstarted start... PyPy: that start then raises ValueError in it.
    with pytest.raises(ValueError):
        c1.throw(IndexError, to=c2)


def test_throw2_no_op():
    def f1(c1):
        with pytest.raises(ValueError):
            c1.throw(ValueError, to=c1)
        return "ok"
    c1 = continulet(f1)
    with pytest.raises(ValueError):
        c1.throw(ValueError, to=c1)
    assert c1.switch() == "ok"


def test_permute():
    def f1(c1):
        res = c1.switch()
        assert res == "ok"
        return "done"
    def f2(c2):
        permute(c1, c2)
        return "ok"
    c1 = continulet(f1)
    c2 = continulet(f2)
    c1.switch()
    res = c2.switch()
    assert res == "done"


def test_permute_noninitialized():
    c0 = continulet.__new__(continulet)
    permute(c0)
    permute(c0, c0)
    c1 = continulet(lambda c: 42)
    permute(c0, c1)
    assert c1.switch() == 42


def test_permute_errors():
    c = continulet(lambda c: 42)
    c.switch()
    with pytest.raises(error, match="got an already-finished continulet"):
        permute(c)
    with pytest.raises(TypeError, match="^'_continuation.continulet' object expected, got 'int' instead$"):
        permute(42)
    with pytest.raises(TypeError, match="got 'NoneType' instead"):
        permute(continulet(lambda c: 42), None)


def test_bug_finish_with_already_finished_stacklet():
    # make an already-finished continulet
    c1 = continulet(lambda x: x)
    c1.switch()
    # make another continulet
    c2 = continulet(lambda x: x)
    # this switch is forbidden, because it causes a crash when c2 finishes
    with pytest.raises(error):
        c1.switch(to=c2)


@pytest.mark.parametrize("depth", [0, 10, 100, 300])
def test_various_depths(depth):
    def recurse(c, n):
        if n == 0:
            return c.switch(n)
        return recurse(c, n - 1) + 1
    def f(c):
        return recurse(c, depth)
    c = continulet(f)
    assert c.switch() == 0
    assert c.switch(5) == 5 + depth


def test_exc_info_doesnt_follow_continuations():
    def f1(c1):
        return sys.exc_info()
    c1 = continulet(f1)
    try:
        1 // 0
    except ZeroDivisionError:
        got = c1.switch()
    assert got == (None, None, None)


def test_exc_info_save_restore():
    def f(c):
        try:
            raise ValueError("inner")
        except ValueError:
            c.switch()
            assert sys.exc_info()[0] is ValueError
        return sys.exc_info()[0]
    c = continulet(f)
    try:
        raise KeyError("outer")
    except KeyError:
        c.switch()
        assert sys.exc_info()[0] is KeyError
        assert c.switch() is None
        assert sys.exc_info()[0] is KeyError


def test_subclass_with_dict():
    class C(continulet):
        pass
    c = C(lambda c: c.attr)
    c.attr = 7
    assert c.switch() == 7


def test_instance_attributes_only_on_subclasses():
    # As PyPy: a plain continulet takes no attributes; a subclass's instances have a __dict__
    # (made on first use on every version).
    c = continulet(lambda c: None)
    with pytest.raises(AttributeError):
        c.x = 1
    assert not hasattr(c, "__dict__")
    class Sub(continulet):
        def __init__(self, *a):
            super().__init__(*a)
            self.z = 3
    s = Sub(lambda c: c.z + 1)
    assert s.z == 3 and vars(s) == {"z": 3}
    assert s.switch() == 4
    t = Sub(lambda c: None)
    t.y = 2
    assert t.__dict__ == {"z": 3, "y": 2}


@pytest.mark.skipif(not IS_PYPY and sys.version_info < (3, 10),
                    reason="3.9 has no immutable heap types")
def test_the_type_is_immutable_its_subclasses_are_not():
    with pytest.raises(TypeError):
        continulet.switch = lambda self: None
    with pytest.raises(TypeError):
        continulet.extra = 1
    with pytest.raises(TypeError):
        del continulet.is_pending
    assert continulet(lambda c: 5).switch() == 5

    class Sub(continulet):
        pass
    Sub.extra = 1
    Sub.switch = lambda self, value=None, to=None: "overridden"
    assert Sub(lambda c: None).switch() == "overridden"


def test_subclass_switch_and_overrides():
    class A(continulet):
        pass
    class B(A):
        pass
    class O(continulet):
        def switch(self, value=None, to=None):
            return ("O", continulet.switch(self, value, to))
    class P(O):
        pass
    b = B(lambda c: c.switch(1) + 1)
    assert b.switch() == 1 and b.switch(10) == 11
    a = A(lambda c: 2)
    assert continulet.switch(a) == 2  # the base's unbound switch takes subclass instances
    assert P(lambda c: 3).switch() == ("O", 3)
    x, y = A(lambda c: c.switch("x")), B(lambda c: "y")
    assert x.switch() == "x"
    assert x.switch(to=y) == "y"  # to= a continulet of another subclass
    with pytest.raises(TypeError):
        A(lambda c: None).switch(to=1)


def test_subclass_init_override():
    class C(continulet):
        def __init__(self, x):
            continulet.__init__(self, C.run)
            self.x = x
        def run(self):
            return self.x * 2
    assert C(21).switch() == 42


def test_many_continulets_suspended():
    conts = []
    for i in range(1000):
        c = continulet(lambda c, i=i: c.switch(i) * 2)
        assert c.switch() == i
        conts.append(c)
    for i, c in enumerate(conts):
        assert c.switch(i) == 2 * i


def _in_thread(fn):
    box = {}
    def run():
        try:
            box["result"] = fn()
        except BaseException as e:
            box["exc"] = e
    t = threading.Thread(target=run)
    t.start()
    t.join()
    return box


def test_thread_switch_to_sub_live_thread():
    c = continulet(lambda c: 42)
    ev_started, ev_done = threading.Event(), threading.Event()
    box = {}
    def other():
        try:
            c.switch()
        except BaseException as e:
            box["exc"] = e
    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert isinstance(box.get("exc"), error)
    assert c.switch() == 42


def test_thread_switch_to_sub_after_thread_died():
    box = _in_thread(lambda: continulet(lambda c: c.switch(1)))
    c = box["result"]
    with pytest.raises(error, match="cannot switch to a different thread"):
        c.switch()


def test_thread_switch_started_after_thread_died():
    def make():
        c = continulet(lambda c: c.switch(1) + 1)
        assert c.switch() == 1
        return c
    box = _in_thread(make)
    c = box["result"]
    with pytest.raises(error, match="cannot switch to a different thread"):
        c.switch(5)


def test_thread_double_switch_and_permute():
    box = _in_thread(lambda: continulet(lambda c: None))
    foreign = box["result"]
    mine = continulet(lambda c: c.switch(1))
    assert mine.switch() == 1
    with pytest.raises(error, match="cross-thread double switch"):
        mine.switch(to=foreign)
    with pytest.raises(error, match="inter-thread support is missing"):
        permute(mine, foreign)
    # A `to` of another thread is reported before a finished `to` or a foreign `cont`.
    with pytest.raises(error, match="cross-thread double switch"):
        foreign.switch(to=mine)
    finished = continulet(lambda c: None)
    finished.switch()
    with pytest.raises(error, match="cross-thread double switch"):
        foreign.throw(KeyError, to=finished)
    mine.switch()


def test_threads_run_independently():
    results = []
    def work(n):
        def f(c):
            total = 0
            for i in range(100):
                total += c.switch(i)
            return total
        c = continulet(f)
        v = c.switch()
        while c.is_pending():
            v = c.switch(v)
        results.append(v)
    ts = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert results == [sum(range(100))] * 4
