import contextvars
import sys

import pytest
import stackless


def test_constructor_forms_and_call_is_setup():
    got = []

    def f(*a, **k):
        got.append((a, k))
    t = stackless.tasklet(f, (1,), {"x": 2})
    assert t.alive and t.paused                  # bound with arguments: paused
    t.insert()
    stackless.tasklet(f)(3, y=4)
    t2 = stackless.tasklet()
    t2.bind(f)
    assert not t2.alive
    t2.setup(5)
    assert t2.scheduled
    stackless.run()
    assert got == [((1,), {"x": 2}), ((3,), {"y": 4}), ((5,), {})]


def test_bind_unbind_rebind():
    t = stackless.tasklet(lambda: None)
    t.bind(None)
    assert t.func is None and not t.alive
    log = []
    t.bind(log.append, ("a",))
    t.insert()
    stackless.run()
    assert log == ["a"] and not t.alive
    t.bind(log.append, ("b",))                  # a finished tasklet can be rebound
    t.insert()
    stackless.run()
    assert log == ["a", "b"]
    with pytest.raises(TypeError):
        t.bind(42)
    with pytest.raises(RuntimeError):
        stackless.getcurrent().bind(log.append)


def test_bind_refuses_a_suspended_tasklet():
    t = stackless.tasklet(stackless.schedule_remove)()
    stackless.run()
    # Running tasklets pickle with their frames on CPython 3.11-3.13 (tests/pickling).
    assert t.paused and t.restorable == ((3, 11) <= sys.version_info[:2] <= (3, 13))
    with pytest.raises(RuntimeError, match="suspended mid-run"):
        t.bind(lambda: None)
    t.kill()
    assert not t.alive


def test_insert_remove_errors():
    dead = stackless.tasklet(lambda: None)
    with pytest.raises(RuntimeError, match="dead"):
        dead.insert()
    c = stackless.channel()
    b = stackless.tasklet(c.receive)()
    stackless.run()
    with pytest.raises(RuntimeError, match="blocked"):
        b.insert()
    with pytest.raises(RuntimeError, match="blocked"):
        b.remove()
    with pytest.raises(RuntimeError, match="current"):
        stackless.getcurrent().remove()
    b.kill()


def test_run_continues_the_chain_after_the_caller():
    log = []
    a = stackless.tasklet(lambda: log.append("a"))()
    b = stackless.tasklet(lambda: log.append("b"))()
    c = stackless.tasklet(lambda: log.append("c"))()
    b.run()
    assert log == ["b"]
    assert list(stackless.get_run_queue()) == [a, c]
    stackless.run()
    assert log == ["b", "a", "c"]


def test_switch_pauses_the_caller():
    log = []
    main = stackless.getmain()

    def f():
        log.append((main.paused, main.scheduled))
        stackless.schedule()
        log.append("back")
    t = stackless.tasklet(f)()
    t.switch()
    assert log == [(True, False), "back"] and not t.alive


def test_run_and_switch_refuse_blocked_and_dead():
    c = stackless.channel()
    b = stackless.tasklet(c.receive)()
    stackless.run()
    with pytest.raises(RuntimeError):
        b.run()
    with pytest.raises(RuntimeError):
        b.switch()
    b.kill()
    with pytest.raises(RuntimeError):
        b.run()
    stackless.getcurrent().run()       # the current tasklet: a no-op


def test_throw_variants():
    got = []

    def f():
        try:
            stackless.schedule_remove()
        except Exception as e:
            got.append((type(e), e.args))
    t = stackless.tasklet(f)()
    stackless.run()
    t.throw(KeyError, ("k",))
    assert got == [(KeyError, ("k",))]
    t = stackless.tasklet(f)()
    stackless.run()
    t.throw(ValueError("v"), pending=True)
    assert got[-1] == (KeyError, ("k",)) and t.scheduled
    stackless.run()
    assert got[-1] == (ValueError, ("v",))
    with pytest.raises(TypeError):
        t.throw(ValueError("v"), "extra")
    with pytest.raises(TypeError):
        stackless.tasklet(f)().throw(42)
    with pytest.raises(RuntimeError, match="dead"):
        t.throw(ValueError)


def test_throw_into_current_raises_here():
    with pytest.raises(KeyError):
        stackless.getcurrent().throw(KeyError("now"))


def test_throw_keeps_traceback():
    try:
        raise ValueError("tb")
    except ValueError:
        tb = sys.exc_info()[2]
    seen = []

    def f():
        try:
            stackless.schedule_remove()
        except ValueError as e:
            seen.append(e.__traceback__)
    t = stackless.tasklet(f)()
    stackless.run()
    t.throw(ValueError, None, tb)
    frames = []
    tb2 = seen[0]
    while tb2 is not None:
        frames.append(tb2.tb_frame)
        tb2 = tb2.tb_next
    assert tb.tb_frame in frames


def test_uncaught_throw_in_unstarted_tasklet_reaches_run():
    t = stackless.tasklet(lambda: None)()
    t.throw(KeyError("never ran"), pending=True)
    with pytest.raises(KeyError):
        stackless.run()
    assert not t.alive


def test_kill_current_and_catching_taskletexit():
    log = []

    def f():
        try:
            stackless.getcurrent().kill()
        except TaskletExit:          # noqa: F821 (builtins)
            log.append("caught")
            raise
        log.append("unreachable")
    stackless.tasklet(f)()
    stackless.run()
    assert log == ["caught"]


def test_kill_scheduled_tasklet_runs_its_finally_now():
    log = []

    def f():
        try:
            stackless.schedule()
            stackless.schedule()
        finally:
            log.append("finally")
    t = stackless.tasklet(f)()
    t.run()
    assert t.scheduled
    t.kill()
    assert log == ["finally"] and not t.alive and t not in stackless.get_run_queue()


def test_flags():
    t = stackless.tasklet(lambda: None)
    assert (t.atomic, t.ignore_nesting, t.block_trap) == (False, False, False)
    assert t.set_atomic(1) is False and t.atomic is True
    assert t.set_ignore_nesting(True) is False and t.set_ignore_nesting(0) is True
    t.block_trap = True
    assert t.block_trap


def test_identity_attributes():
    import threading
    m = stackless.getmain()
    assert m.is_main and m.is_current and m.thread_id == threading.get_ident()
    seen = []

    def f():
        cur = stackless.getcurrent()
        seen.append((cur.is_main, cur.is_current, m.is_current, cur.thread_id))
    t = stackless.tasklet(f)()
    stackless.run()
    assert seen == [(False, True, False, threading.get_ident())]
    assert not t.is_current


def test_next_prev_in_run_queue():
    m = stackless.getmain()
    a = stackless.tasklet(lambda: None)()
    b = stackless.tasklet(lambda: None)()
    assert m.next is a and a.next is b and b.next is m      # a cycle, like Stackless
    assert m.prev is b and a.prev is m
    assert stackless.tasklet(lambda: None).next is None
    stackless.run()


def test_tempval_carries_schedule_remove_result():
    waiting = []

    def wait_for_result():
        waiting.append(stackless.getcurrent())
        return stackless.schedule_remove()
    got = []
    stackless.tasklet(lambda: got.append(wait_for_result()))()
    stackless.run()
    t = waiting.pop()
    t.tempval = "result"
    t.insert()
    stackless.run()
    assert got == ["result"]


def test_frame_and_recursion_depth():
    def inner(n):
        if n:
            return inner(n - 1)
        stackless.schedule_remove()
    t = stackless.tasklet(inner)(3)
    assert t.frame is None
    stackless.run()
    f = t.frame
    assert f.f_code is inner.__code__ and f.f_locals["n"] == 0
    assert t.recursion_depth == 4
    assert stackless.getcurrent().frame is sys._getframe()
    seen = []

    def look():
        seen.append(stackless.getmain().frame)
    stackless.tasklet(look)()
    stackless.run()
    assert seen[0] is not None and seen[0].f_code is test_frame_and_recursion_depth.__code__
    t.kill()
    assert t.frame is None


def test_honest_internal_values():
    t = stackless.tasklet(lambda: None)
    assert t.nesting_level == 0 and t.cstate is None
    assert stackless.enable_softswitch(None) is False
    assert stackless.enable_softswitch(False) is False
    with pytest.raises(RuntimeError, match="soft switching"):
        stackless.enable_softswitch(True)


def test_trace_and_profile_function_per_tasklet():
    events = []

    def tracer(frame, event, arg):
        events.append((stackless.getcurrent(), frame.f_code.co_name, event))
        return None

    def traced():
        pass

    def untraced():
        pass
    a = stackless.tasklet(traced)()
    b = stackless.tasklet(untraced)()
    a.trace_function = tracer
    assert a.trace_function is tracer and b.trace_function is None
    try:
        stackless.run()
    finally:
        sys.settrace(None)
    assert (a, "traced", "call") in events
    assert not [e for e in events if e[0] is not a]
    assert sys.gettrace() is None
    prof = []
    c = stackless.tasklet(traced)()
    c.profile_function = lambda f, e, a: prof.append(e)
    stackless.run()
    assert "call" in prof and sys.getprofile() is None


def test_contextvars_per_tasklet():
    var = contextvars.ContextVar("var", default="unset")
    var.set("creator")
    seen = []

    def f(value):
        seen.append(var.get())
        var.set(value)
        stackless.schedule()
        seen.append(var.get())
    a = stackless.tasklet(f)("a")
    b = stackless.tasklet(f)("b")
    stackless.run()
    assert seen == ["creator", "creator", "a", "b"]
    assert var.get() == "creator"
    ctx = contextvars.Context()
    c = stackless.tasklet(lambda: seen.append(var.get())).set_context(ctx)
    c.setup()
    stackless.run()
    assert seen[-1] == "unset"
    assert c.context_run(var.get) == "unset"
    assert c.context_id == id(ctx)
    assert a.context_id != b.context_id
    with pytest.raises(TypeError):
        c.set_context({})


def test_garbage_unstarted_tasklet_is_collected():
    import gc
    import weakref
    t = stackless.tasklet(lambda: None)
    t.bind(lambda: None, ())
    r = weakref.ref(t)
    del t
    gc.collect()
    assert r() is None


def test_repr_says_state():
    t = stackless.tasklet(lambda: None)
    assert "dead" in repr(t)
    t.setup()
    assert "scheduled" in repr(t)
    assert "main" in repr(stackless.getmain())
    stackless.run()


@pytest.mark.parametrize("args", ["label", b"ab", 1])
def test_args_that_are_not_a_sequence_of_arguments_raise(args):
    # PyPy's tasklet(func, label): here the second argument is `args`, so a str must not
    # quietly become one argument per character.
    with pytest.raises(TypeError, match="tasklet args must be a tuple, not"):
        stackless.tasklet(lambda *a: None, args)
    with pytest.raises(TypeError, match="tasklet args must be a tuple, not"):
        stackless.tasklet(lambda *a: None).bind(None, args)


def test_kwargs_that_are_not_a_mapping_raise():
    with pytest.raises(TypeError, match="tasklet kwargs must be a dict, not str"):
        stackless.tasklet(lambda **k: None, (), "ab")


def test_args_may_be_any_sequence():
    log = []
    stackless.tasklet(lambda *a: log.append(a), [1, 2]).insert()
    stackless.run()
    assert log == [(1, 2)]


@pytest.mark.parametrize("exc", [1, ValueError("x")])
def test_raise_exception_needs_an_exception_class(exc):
    t = stackless.tasklet(lambda: None)()
    with pytest.raises(TypeError, match="tasklet.raise_exception needs an exception class as first parameter"):
        t.raise_exception(exc)
    assert t.alive and t.scheduled
    stackless.run()
