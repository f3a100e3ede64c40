"""tealet extension: pending_finalizer (skipped on PyPy's reference)."""
import subprocess
import sys
import textwrap

import pytest
from conftest import IS_PYPY, tealet_only

pytestmark = tealet_only

if not IS_PYPY:
    from _continuation import continulet, pending_finalizer


class Owner:
    __slots__ = ("c", "other", "__weakref__")


class Sub(Owner):
    pass


finalized = []


def _owner_del(self):
    finalized.append(self.c)


# Finalizers are taken for the life of the process: the tests share this one.
if not IS_PYPY:
    Owner.__del__ = pending_finalizer(Owner, Owner.c, _owner_del)


def suspended():
    c = continulet(lambda c: c.switch())
    c.switch()
    return c


def finished():
    c = continulet(lambda c: None)
    c.switch()
    return c


def test_is_a_slot_wrapper_that_subclasses_inherit():
    d = Owner.__dict__["__del__"]
    assert type(d) is type(object.__init__)
    assert d.__name__ == "__del__"
    assert pending_finalizer(Owner, Owner.c, _owner_del) is d
    assert Sub.__del__ is d


@pytest.mark.parametrize("cls", [Owner, Sub])
def test_calls_func_only_while_the_slot_holds_a_pending_continulet(cls):
    finalized.clear()
    for value in (None, 5, continulet.__new__(continulet), finished()):
        o = cls()
        if value is not None:
            o.c = value
        o.other = suspended()  # another slot's continulet does not count
        del o
    assert finalized == []
    for c in (continulet(lambda c: None), suspended()):  # bound and not started; suspended
        o = cls()
        o.c = c
        del o
        assert finalized == [c]
        finalized.clear()


def test_an_explicit_call_checks_the_same():
    o = Owner()
    assert o.__del__() is None
    o.c = c = suspended()
    finalized.clear()
    assert o.__del__() is None
    assert finalized == [c]


def test_func_is_hidden_from_tracing():
    events = []

    def tracer(frame, event, arg):
        events.append((event, frame.f_code.co_name))
        return tracer

    def drop():
        o = Owner()
        o.c = suspended()
        del o

    finalized.clear()
    sys.settrace(tracer)
    try:
        drop()
    finally:
        sys.settrace(None)
    assert len(finalized) == 1
    assert "_owner_del" not in {name for _, name in events}


def test_error_goes_to_unraisablehook_and_the_raised_exception_stays():
    code = """
        import sys
        from _continuation import continulet, pending_finalizer

        class O:
            __slots__ = ("c",)

        def fails(self):
            raise KeyError("in finalizer")

        O.__del__ = pending_finalizer(O, O.c, fails)
        seen = []
        sys.unraisablehook = lambda u: seen.append((type(u.exc_value).__name__, u.object))
        c = continulet(lambda c: c.switch())
        c.switch()
        try:
            o = O()
            o.c = c
            raise ValueError("outer")
        except ValueError as e:
            del o
            print(repr(e), sys.exc_info()[0].__name__)
        print(seen == [("KeyError", fails)])
    """
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["ValueError('outer') ValueError", "True"]


def test_bad_arguments_raise_type_error():
    class Plain:
        pass

    with pytest.raises(TypeError, match="'slot' must be a slot of Owner, not 5"):
        pending_finalizer(Owner, 5, _owner_del)
    with pytest.raises(TypeError, match="'slot' must be a slot of Plain"):
        pending_finalizer(Plain, Owner.c, _owner_del)
    with pytest.raises(TypeError, match="'slot' must be a slot of Owner"):
        pending_finalizer(Owner, Owner.__weakref__, _owner_del)
    with pytest.raises(TypeError, match="'func' must be callable, not int"):
        pending_finalizer(Owner, Owner.c, 1)
    with pytest.raises(TypeError):
        pending_finalizer(1, Owner.c, _owner_del)


def test_finalizers_run_out_with_a_clear_error():
    code = """
        from _continuation import pending_finalizer
        made = []
        try:
            for i in range(10):
                C = type("C%d" % i, (), {"__slots__": ("c",)})
                C.__del__ = pending_finalizer(C, C.c, print)
                made.append(C)
        except RuntimeError as e:
            print(len(made), e)
    """
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "4 pending_finalizer(): all 4 finalizers are taken"
