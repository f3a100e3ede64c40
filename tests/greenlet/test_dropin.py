"""API-surface details where greenlet-py must behave like C greenlet 3.5.6 (found by running
the same calls under both): argument forms, exception types and the messages code may match."""
import contextvars
import copy
import gc
import sys
import pickle
import threading
import time

import pytest

import greenlet
from greenlet import GreenletExit, getcurrent


def suspended():
    g = greenlet.greenlet(lambda: getcurrent().parent.switch())
    g.switch()
    return g


def test_exception_classes_live_in_the_greenlet_module():
    # Their repr, tracebacks and pickles name `greenlet.GreenletExit`, `greenlet.error`.
    for cls in (GreenletExit, greenlet.error):
        assert cls.__module__ == "greenlet"
        assert repr(cls) == "<class 'greenlet.%s'>" % cls.__name__
        e = pickle.loads(pickle.dumps(cls("x")))
        assert type(e) is cls and e.args == ("x",)


@pytest.mark.parametrize("kwargs", [
    {"typ": ValueError}, {"val": 1}, {"tb": None}, {"type": ValueError}, {"self": 1},
])
def test_throw_takes_no_keyword_arguments(kwargs):
    g = suspended()
    with pytest.raises(TypeError):
        g.throw(**kwargs)
    # Nothing was thrown in: the greenlet is still suspended and resumes normally.
    assert g and not g.dead
    assert g.switch(5) == 5
    assert g.dead


def test_throw_takes_at_most_three_arguments():
    g = suspended()
    with pytest.raises(TypeError):
        g.throw(ValueError, 1, None, 4)
    assert g and g.switch() == ()


@pytest.mark.parametrize("call", [
    lambda: greenlet.settrace(callback=None),
    lambda: greenlet.enable_optional_cleanup(enabled=True),
    lambda: greenlet._greenlet.set_thread_local(key="k", value=1),
    lambda: greenlet.greenlet(self=1),
])
def test_module_functions_take_no_keyword_arguments(call):
    with pytest.raises(TypeError):
        call()
    assert greenlet.gettrace() is None


def test_main_greenlet_has_no_run_attribute():
    main = getcurrent()
    msg = "Main greenlets do not have a run attribute."
    with pytest.raises(AttributeError, match=msg):
        main.run
    with pytest.raises(AttributeError, match=msg):
        main.run = lambda: None
    with pytest.raises(AttributeError, match=msg):
        del main.run
    with pytest.raises(AttributeError, match=msg):
        main.__init__(lambda: None)
    assert not hasattr(main, "run")


@pytest.mark.parametrize("value", [None, 1])
def test_main_greenlet_parent_is_not_settable_whatever_the_value(value):
    main = getcurrent()
    with pytest.raises(AttributeError, match="cannot set the parent of a main greenlet"):
        main.parent = value
    assert main.parent is None


def test_dict_must_be_set_to_a_dictionary():
    g = greenlet.greenlet()
    for bad in (1, None, [("a", 1)]):
        with pytest.raises(TypeError, match="^__dict__ must be a dictionary$"):
            g.__dict__ = bad
    g.__dict__ = {"a": 1}
    assert g.a == 1
    with pytest.raises(TypeError, match="__dict__ may not be deleted"):
        del g.__dict__


def test_context_of_a_greenlet_running_in_another_thread_names_get_or_set():
    box = {}
    ready, done = threading.Event(), threading.Event()

    def thread():
        box["main"] = getcurrent()
        ready.set()
        done.wait()

    t = threading.Thread(target=thread)
    t.start()
    ready.wait()
    try:
        with pytest.raises(ValueError, match="^cannot get context of a greenlet that is running"
                                             " in a different thread$"):
            box["main"].gr_context
        with pytest.raises(ValueError, match="^cannot set context of a greenlet that is running"
                                             " in a different thread$"):
            box["main"].gr_context = contextvars.Context()
    finally:
        done.set()
        t.join()


def test_repr_names_the_type_like_greenlet():
    # C greenlet prints tp_name: "greenlet.greenlet" for itself, the bare class name for a
    # Python subclass.
    class Sub(greenlet.greenlet):
        pass

    assert repr(greenlet.greenlet()).startswith("<greenlet.greenlet object at 0x")
    assert repr(getcurrent()).startswith("<greenlet.greenlet object at 0x")
    assert repr(Sub()).startswith("<Sub object at 0x")


def test_subclass_new_calling_super_without_init():
    # The subclass's own __new__ gets greenlet's state from super().__new__, as with greenlet's
    # tp_new, though its __init__ never calls greenlet's.
    class Sub(greenlet.greenlet):
        def __new__(cls, *args, **kwargs):
            return super().__new__(cls)

        def __init__(self, n):
            self.n = n

        def run(self):
            return ("ran", self.n, getcurrent() is self)

    g = Sub(4)
    assert repr(g).startswith("<Sub object at 0x") and repr(g).endswith(" pending>")
    assert not g and not g.dead and g.parent is getcurrent()
    assert g.switch() == ("ran", 4, True)
    assert g.dead

    class SubSub(Sub):
        def __new__(cls, *args):
            return super().__new__(cls)

    assert SubSub(5).switch() == ("ran", 5, True)


@pytest.mark.parametrize("args, kwargs", [((1, 2, 3), {}), ((), {"x": 1}), ((None,), {"run": None})])
def test_bad_constructor_arguments_raise_type_error_and_nothing_else(args, kwargs):
    unraisable = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with pytest.raises(TypeError):
            greenlet.greenlet(*args, **kwargs)
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert [u.exc_value for u in unraisable] == []


def test_repr_otid_and_thread_exited_like_greenlet():
    # otid is "0x(nil)" before the start and once its thread has exited; every greenlet that
    # started in an exited thread reads "(thread exited) dead".
    assert "(otid=0x(nil)) pending>" in repr(greenlet.greenlet())
    box = {}

    def thread():
        box["main"] = getcurrent()
        box["suspended"] = suspended()
        box["finished"] = greenlet.greenlet(lambda: None)
        box["finished"].switch()
        box["unstarted"] = greenlet.greenlet()

    t = threading.Thread(target=thread)
    t.start()
    t.join()
    # C greenlet notices the exited thread on a later greenlet call of another thread.
    for _ in range(100):
        greenlet.greenlet(lambda: None).switch()
        if box["main"].dead:
            break
        time.sleep(0.01)
    for name in ("main", "suspended", "finished"):
        assert repr(box[name]).endswith(" (otid=0x(nil)) (thread exited) dead>"), name
    assert repr(box["unstarted"]).endswith(" (otid=0x(nil)) pending>")
    g = suspended()
    assert "(otid=0x(nil))" not in repr(g) and repr(g).endswith(" suspended active started>")


def test_copy_and_pickle_messages_name_the_type_like_greenlet():
    class Sub(greenlet.greenlet):
        pass

    for g, name in ((greenlet.greenlet(), "greenlet.greenlet"), (Sub(), "Sub"), (suspended(), "greenlet.greenlet")):
        for attempt in (lambda: copy.copy(g), lambda: copy.deepcopy(g), lambda: pickle.dumps(g),
                        lambda: pickle.dumps(g, 2), g.__getstate__, lambda: g.__reduce_ex__(4)):
            with pytest.raises(TypeError, match="^cannot serialize '%s' object$" % name):
                attempt()
        for protocol in (0, 1):
            with pytest.raises(TypeError):
                pickle.dumps(g, protocol)


def test_feature_constants_are_ints():
    names = ["GREENLET_USE_GC", "GREENLET_USE_TRACING", "GREENLET_USE_CONTEXT_VARS"]
    values = [getattr(greenlet, n) for n in names]
    values.append(greenlet._greenlet.GREENLET_USE_STANDARD_THREADING)
    assert [(type(v), v) for v in values] == [(int, 1)] * 4
    assert repr(values) == "[1, 1, 1, 1]"
