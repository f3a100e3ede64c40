"""tealet extension: hidden_method / call_visible (skipped on PyPy's reference)."""
import gc
import subprocess
import sys
import textwrap
import weakref

import pytest
from conftest import IS_PYPY, tealet_only

pytestmark = tealet_only

if not IS_PYPY:
    from _continuation import call_visible, continulet, hidden_method


def callback(x):
    return x + 1


def _plain(self, *args, **kwargs):
    """Doc of plain."""
    helper = [a for a in args]  # a comprehension: a frame of its own before 3.12
    return ("plain", tuple(helper), kwargs, call_visible(callback, 1))


def _simple(self, *args):
    return ("simple", args)


def _raises(self):
    raise KeyError("from hidden")


class Holder:
    pass


# Slots are taken for the life of the process: every test shares these few.
if not IS_PYPY:
    Holder.plain = hidden_method(Holder, "plain", _plain)
    Holder.both = hidden_method(Holder, "both", _plain, _simple)
    Holder.raises = hidden_method(Holder, "raises", _raises)


def _switch_to(self, cont, value=None):
    return cont.switch(value)


def _switch_dropping(self, cont, value):
    del value  # from now on only the caller's stack holds it
    return cont.switch()


if not IS_PYPY:
    Holder.switch_to = hidden_method(Holder, "switch_to", _switch_to)
    Holder.switch_dropping = hidden_method(Holder, "switch_dropping", _switch_dropping)


def profile(fn, *args):
    events = []

    def prof(frame, event, arg):
        name = getattr(arg, "__name__", None) if event.startswith("c_") else None
        events.append((event, frame.f_code.co_name, name))

    sys.setprofile(prof)
    try:
        result = fn(*args)
    finally:
        sys.setprofile(None)
    return result, events[:-1]  # the last is setprofile's own c_call


def trace(fn, *args):
    events = []

    def tracer(frame, event, arg):
        events.append((event, frame.f_code.co_name))
        return tracer

    sys.settrace(tracer)
    try:
        result = fn(*args)
    finally:
        sys.settrace(None)
    return result, events


def test_is_a_method_descriptor_with_name_and_doc():
    assert type(Holder.__dict__["plain"]) is type(list.append)
    assert Holder.plain.__name__ == "plain"
    assert Holder.plain.__qualname__ == "Holder.plain"
    assert Holder.plain.__doc__ == "Doc of plain."
    assert hidden_method(Holder, "plain", _plain) is Holder.__dict__["plain"]


def test_calls_func_with_self_and_arguments():
    h = Holder()
    assert h.plain(1, 2, k=3) == ("plain", (1, 2), {"k": 3}, 2)
    assert Holder.plain(h, *range(20)) == ("plain", tuple(range(20)), {}, 2)
    assert h.both(1, 2) == ("simple", (1, 2))
    assert h.both() == ("simple", ())
    assert h.both(1, k=2) == ("plain", (1,), {"k": 2}, 2)
    bound = h.both
    assert bound(5) == ("simple", (5,))
    assert bound(*range(10), **{"a": 1, "b": 2}) == ("plain", tuple(range(10)), {"a": 1, "b": 2}, 2)


def test_profiler_sees_one_c_call_and_the_visible_callback():
    h = Holder()

    def direct():
        return h.plain(1)

    def bound():
        f = h.both
        return f(1, k=2)

    expected = [("call", "callback", None), ("return", "callback", None)]
    for fn, name in ((direct, "plain"), (bound, "both")):
        _, events = profile(fn)
        assert events == [("call", fn.__name__, None), ("c_call", fn.__name__, name)] + expected + [
            ("c_return", fn.__name__, name), ("return", fn.__name__, None)]


def test_profiler_sees_the_exception_leave_the_c_call():
    h = Holder()

    def caller():
        try:
            h.raises()
        except KeyError as e:
            return e.args

    result, events = profile(caller)
    assert result == ("from hidden",)
    assert events == [("call", "caller", None), ("c_call", "caller", "raises"),
                      ("c_exception", "caller", "raises"), ("return", "caller", None)]


def test_tracer_sees_nothing_inside_but_the_visible_callback():
    h = Holder()

    def caller():
        return h.plain(1)

    result, events = trace(caller)
    assert result[0] == "plain"
    names = [name for _, name in events]
    assert "_plain" not in names and "<listcomp>" not in names
    assert ("call", "callback") in events and ("return", "callback") in events


def test_visible_outside_hidden_code_is_a_plain_call():
    assert call_visible(callback, 1) == 2
    assert call_visible(dict, a=1) == {"a": 1}
    _, events = profile(call_visible, callback, 1)
    assert events == [("c_call", "profile", "call_visible"), ("call", "callback", None),
                      ("return", "callback", None), ("c_return", "profile", "call_visible")]


def test_tracing_level_belongs_to_each_continuation():
    """Switches made inside hidden code, in both directions, and a start: each continuation
    runs with its own level, so each side sees its own code and nothing of the hidden one."""
    h = Holder()

    def body(c, main_side):
        callback(0)                      # traced: a continuation starts with events on
        h.switch_to(c)                   # hidden switch back to main
        callback(0)
        return "done"

    def main():
        c = continulet(body, None)
        h.switch_to(c)                   # starts body from inside hidden code
        callback(0)                      # main resumed, left its hidden method: traced
        return h.switch_to(c)            # resumes body inside its hidden method

    result, events = profile(main)
    assert result == "done"
    cb = [("call", "callback", None), ("return", "callback", None)]
    assert events == ([("call", "main", None), ("c_call", "main", "switch_to"),
                       ("call", "body", None)] + cb + [("c_call", "body", "switch_to"),
                      ("c_return", "main", "switch_to")] + cb + [
                      ("c_call", "main", "switch_to"), ("c_return", "body", "switch_to")] + cb + [
                      ("return", "body", None), ("c_return", "main", "switch_to"),
                      ("return", "main", None)])


def test_switch_out_of_a_trace_function_keeps_levels_apart():
    """A continuation suspended inside a trace function (CPython's level 1) does not make the
    one it switches to untraced, and gets its own level back."""
    h = Holder()
    seen = []

    def body(c, _):
        while True:
            callback(0)
            h.switch_to(c)

    c = continulet(body, None)

    def tracer(frame, event, arg):
        if event == "call" and frame.f_code.co_name == "traced":
            c.switch()                   # into body from inside the trace function
        if frame.f_code.co_name == "callback":
            seen.append(event)
        return tracer

    def traced():
        return 1

    sys.settrace(tracer)
    try:
        traced()
    finally:
        sys.settrace(None)
    # body's callback ran with events on, and the trace function was not re-entered
    # while main was inside it (its level came back with it).
    assert seen[:1] == ["call"]


def test_bad_arguments_raise_type_error():
    with pytest.raises(TypeError):
        hidden_method(1, "m", _plain)
    with pytest.raises(TypeError):
        hidden_method(Holder, 1, _plain)
    with pytest.raises(TypeError, match="'func' must be callable, not int"):
        hidden_method(Holder, "m", 1)
    with pytest.raises(TypeError, match="'simple' must be callable, not str"):
        hidden_method(Holder, "m", _plain, "x")
    with pytest.raises(TypeError, match="NUL"):
        hidden_method(Holder, "m\0", _plain)
    with pytest.raises(TypeError):
        hidden_method(Holder, "m")
    with pytest.raises(TypeError):
        Holder.plain(1)                  # not a Holder: the descriptor's own check
    with pytest.raises(TypeError):
        Holder.plain()
    with pytest.raises(TypeError):
        call_visible()
    with pytest.raises(TypeError):
        call_visible(1)


def test_no_reference_leaks():
    h = Holder()
    arg, key = object(), "key_%d" % id(h)
    before = (sys.getrefcount(arg), sys.getrefcount(h), sys.getrefcount(_plain),
              sys.getrefcount(_simple), sys.getrefcount(callback))
    for _ in range(1000):
        h.plain(arg, **{key: arg})
        h.both(arg)
        h.both(*[arg] * 12)
        Holder.both(h, arg, k=arg)
        call_visible(callback, 1)
        with pytest.raises(KeyError):
            h.raises()
    after = (sys.getrefcount(arg), sys.getrefcount(h), sys.getrefcount(_plain),
             sys.getrefcount(_simple), sys.getrefcount(callback))
    assert after == before


def test_gc_sees_a_suspended_hidden_call_arguments():
    """A continulet suspended in a switch made by hidden code: an argument of the hidden call,
    held only by the calling frame's stack, is found by the GC (the cycle is freed)."""
    h = Holder()
    refs = []

    class Box:
        pass

    def make_box(c):
        box = Box()
        box.c = c
        refs.append(weakref.ref(box))
        return box

    def body(c, _):
        h.switch_dropping(c, make_box(c))

    c = continulet(body, None)
    c.switch()
    del c
    gc.collect()
    gc.collect()
    assert refs[0]() is None


def test_slots_run_out_with_a_clear_error():
    code = """
        from _continuation import hidden_method
        class C: pass
        made = []
        try:
            for i in range(100):
                setattr(C, "m%d" % i, hidden_method(C, "m%d" % i, lambda self: i))
                made.append(i)
        except RuntimeError as e:
            print(len(made), e)
        c = C()
        print(c.m0(), c.m1())
    """
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    count, message = first.split(" ", 1)
    assert 0 < int(count) < 100
    assert "hidden methods are taken" in message
    assert second == "%s %s" % (count, count)  # the lambdas share i, which stopped there
