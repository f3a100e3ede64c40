"""What sys.setprofile and sys.settrace see of greenlets: as with greenlet's C extension, a switch
or throw is one C call (c_call ... c_return / c_exception) with only the code it switches to
inside it, and none of greenlet-py's own frames anywhere."""
import sys

import pytest

import greenlet
from greenlet import getcurrent

OURS = sys.modules["greenlet._greenlet"].__file__  # greenlet-py's code; C greenlet has none


def callback():
    return 42


def profile(fn):
    events = []

    def prof(frame, event, arg):
        name = getattr(arg, "__name__", None) if event.startswith("c_") else None
        events.append((event, frame.f_code.co_name, name))

    sys.setprofile(prof)
    try:
        result = fn()
    finally:
        sys.setprofile(None)
    assert events[-1] == ("c_call", "profile", "setprofile")
    return result, events[:-1]


CB = [("call", "callback", None), ("return", "callback", None)]


def test_start_and_finish_are_inside_one_c_call():
    def run(x):
        callback()
        return x * 2

    g = greenlet.greenlet(run)

    def caller():
        return g.switch(21)

    result, events = profile(caller)
    assert result == 42
    assert events == [("call", "caller", None), ("c_call", "caller", "switch"),
                      ("call", "run", None)] + CB + [
                      ("return", "run", None), ("c_return", "caller", "switch"),
                      ("return", "caller", None)]


def test_switches_both_ways():
    main = getcurrent()

    def run():
        callback()
        main.switch()
        callback()

    g = greenlet.greenlet(run)

    def caller():
        g.switch()
        callback()
        return g.switch()

    result, events = profile(caller)
    assert result is None
    assert events == [("call", "caller", None), ("c_call", "caller", "switch"),
                      ("call", "run", None)] + CB + [
                      ("c_call", "run", "switch"), ("c_return", "caller", "switch")] + CB + [
                      ("c_call", "caller", "switch"), ("c_return", "run", "switch")] + CB + [
                      ("return", "run", None), ("c_return", "caller", "switch"),
                      ("return", "caller", None)]


def test_throw_caught_and_uncaught():
    main = getcurrent()

    def run():
        try:
            main.switch()
        except KeyError:
            callback()
        main.switch()

    g = greenlet.greenlet(run)

    def caller():
        g.switch()
        g.throw(KeyError)
        try:
            g.throw(ValueError)
        except ValueError:
            return "propagated"

    result, events = profile(caller)
    assert result == "propagated"
    assert events == [("call", "caller", None), ("c_call", "caller", "switch"),
                      ("call", "run", None), ("c_call", "run", "switch"),
                      ("c_return", "caller", "switch"),
                      ("c_call", "caller", "throw"), ("c_exception", "run", "switch")] + CB + [
                      ("c_call", "run", "switch"), ("c_return", "caller", "throw"),
                      ("c_call", "caller", "throw"), ("c_exception", "run", "switch"),
                      ("return", "run", None), ("c_exception", "caller", "throw"),
                      ("return", "caller", None)]


def test_profiler_set_inside_a_greenlet_reaches_its_parent():
    def run():
        sys.setprofile(prof)
        callback()

    events = []

    def prof(frame, event, arg):
        events.append((event, frame.f_code.co_name))

    def stop():
        sys.setprofile(None)

    g = greenlet.greenlet(run)
    g.switch()
    callback()
    stop()
    # No c_return for setprofile or for the switch: profiling was off when they were called.
    # (A new frame is what shows events on 3.12+, whose instrumentation reaches a code object
    # suspended in another greenlet when it is entered, so stop() is called, not setprofile.)
    assert events == [("call", "callback"), ("return", "callback"), ("return", "run"),
                      ("call", "callback"), ("return", "callback"),
                      ("call", "stop"), ("c_call", "stop")]


def test_greenlet_trace_function_is_user_code():
    """greenlet.settrace's function is called from inside the switch, visibly."""
    seen = []

    def tracer(event, args):
        seen.append(event)

    def run():
        return 1

    g = greenlet.greenlet(run)

    def caller():
        return g.switch()

    old = greenlet.settrace(tracer)
    try:
        result, events = profile(caller)
    finally:
        greenlet.settrace(old)
    assert result == 1
    assert seen == ["switch", "switch"]
    t = [("call", "tracer", None), ("c_call", "tracer", "append"),
         ("c_return", "tracer", "append"), ("return", "tracer", None)]
    assert events == [("call", "caller", None), ("c_call", "caller", "switch")] + t + [
                      ("call", "run", None), ("return", "run", None)] + t + [
                      ("c_return", "caller", "switch"), ("return", "caller", None)]


def test_settrace_sees_the_user_code_and_nothing_of_ours():
    main = getcurrent()

    def run(x):
        y = x + 1
        try:
            main.switch(y)
        except KeyError:
            y += 1
        return y

    events = []

    def tracer(frame, event, arg):
        events.append((event, frame.f_code.co_name, frame.f_code.co_filename))
        return tracer

    g = greenlet.greenlet(run)
    sys.settrace(tracer)
    try:
        a = g.switch(1)
        b = g.throw(KeyError)
    finally:
        sys.settrace(None)
    assert (a, b) == (2, 3)
    assert not [e for e in events if e[2] == OURS]
    names = [(event, name) for event, name, _ in events]
    assert names[0] == ("call", "run")
    assert names.count(("call", "run")) == 1
    assert ("line", "run") in names and ("exception", "run") in names
    assert names[-1] == ("return", "run")


@pytest.mark.parametrize("tracing", ["settrace", "setprofile"])
def test_a_garbage_greenlets_kill_shows_its_own_code_and_nothing_of_ours(tracing):
    """greenlet kills in its C deallocator: tracers and profilers see the killed greenlet's own
    code only (the same events as C greenlet 3.5.6)."""
    main = getcurrent()

    def run():
        try:
            main.switch()
        finally:
            callback()

    g = greenlet.greenlet(run)
    g.switch()
    events = []

    def tracer(frame, event, arg):
        events.append((event, frame.f_code.co_name))
        return tracer

    def drop():
        nonlocal g
        g = None

    set_tracing = getattr(sys, tracing)
    set_tracing(tracer)
    try:
        drop()
    finally:
        set_tracing(None)
    if tracing == "settrace":
        # run's frame started before tracing, so it has no local trace function.
        assert events == [("call", "drop"), ("line", "drop"), ("call", "callback"),
                          ("line", "callback"), ("return", "callback"), ("return", "drop")]
    else:
        assert events[:-1] == [("call", "drop"), ("call", "callback"), ("return", "callback"),
                               ("return", "run"), ("return", "drop")]


@pytest.mark.parametrize("tracing", ["settrace", "setprofile"])
def test_a_greenlet_started_while_tracing_is_traced_after_its_parent_stops(tracing):
    """The tracing level belongs to each greenlet: tracing turned off and on again in another
    greenlet applies to a suspended one when it resumes."""
    main = getcurrent()
    names = []

    def hook(frame, event, arg=None):
        names.append((frame.f_code.co_name, frame.f_code.co_filename))
        return hook if tracing == "settrace" else None

    def run():
        main.switch()
        callback()

    g = greenlet.greenlet(run)
    g.switch()
    setter = getattr(sys, tracing)
    setter(hook)
    try:
        g.switch()
    finally:
        setter(None)
    assert ("callback", __file__) in names
    assert not [n for n in names if n[1] == OURS]
