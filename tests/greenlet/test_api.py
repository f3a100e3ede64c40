"""greenlet-py against issue 4: the greenlet 3.x API, its semantics, and the library patterns."""
import asyncio
import contextvars
import contextlib
import copy
import gc
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import weakref

import pytest

import greenlet
from greenlet import GreenletExit, getcurrent

VAR = contextvars.ContextVar("VAR", default="unset")


def test_is_our_pure_python_module():
    import _continuation
    g = greenlet.greenlet(lambda: getcurrent().parent.switch())
    g.switch()
    assert isinstance(g._gr_c, _continuation.continulet)
    g.switch()
    assert greenlet.__version__ == "3.5.6"


# -- construction, attributes -------------------------------------------------------------

def test_subclass_with_dict_weakref_hash():
    class G(greenlet.greenlet):
        tag = "class attribute"

    g = G(lambda: None)
    g.extra = 1
    assert g.__dict__["extra"] == 1
    assert weakref.ref(g)() is g
    d = weakref.WeakKeyDictionary({g: 1})
    assert d[g] == 1
    assert {g: 2}[g] == 2 and hash(g) == hash(g)
    assert G.tag == "class attribute"


def test_positional_parent_and_init_from_subclass():
    hub = greenlet.greenlet(lambda: None)

    class Thread(greenlet.greenlet):
        def __init__(self, fn, parent):
            greenlet.greenlet.__init__(self, fn, parent)

    t = Thread(lambda: None, hub)
    assert t.parent is hub
    assert t.run is not None


def test_subclass_init_and_new_variants():
    # greenlet itself has no Python __new__: every way of constructing must still give the
    # parent that was current at creation and a working greenlet.
    main = getcurrent()

    class NoSuperInit(greenlet.greenlet):
        def __init__(self):
            self.x = 5

        def run(self):
            return self.x

    class OwnNew(greenlet.greenlet):
        def __new__(cls, *args, **kwargs):
            self = super().__new__(cls)
            self.tag = "own"
            return self

        def __init__(self, x):
            super().__init__(self.go)
            self.x = x

        def go(self):
            return (self.tag, self.x)

    class Child(OwnNew):
        pass

    g = NoSuperInit()
    assert g.parent is main and g.switch() == 5
    assert Child(3).switch() == ("own", 3)
    g = greenlet.greenlet(lambda: 1)
    g.__init__(lambda: 2, main)  # a second __init__ only sets run and parent
    assert g.parent is main and g.switch() == 2
    started = greenlet.greenlet(lambda: main.switch("in"))
    assert started.switch() == "in"
    started.__init__(parent=main)
    assert not started.dead and started.switch() == () and started.dead


def test_run_method_of_subclass():
    class G(greenlet.greenlet):
        def run(self, a, b):
            return (self, a + b)

    g = G()
    assert g.switch(1, 2) == (g, 3)


def test_switch_packing():
    def echo():
        v = getcurrent().parent.switch()
        while True:
            v = getcurrent().parent.switch(v)

    main = getcurrent()
    seen = []

    def collector():
        for _ in range(5):
            seen.append(main.switch())

    g = greenlet.greenlet(collector)
    g.switch()
    g.switch()
    g.switch(1)
    g.switch(1, 2)
    g.switch(a=1)
    g.switch(1, a=2)
    assert seen == [(), 1, (1, 2), {"a": 1}, ((1,), {"a": 2})]
    del echo


def test_switch_passes_any_keyword_names():
    # Names our own signatures use (`self`, the continulet's `callable`, `to`, `value`) are
    # the caller's keywords like any other, as with greenlet's C switch.
    names = {"self": 1, "callable": 2, "to": 3, "value": 4, "args": 5, "kwargs": 6}

    def run(*args, **kwargs):
        assert (args, kwargs) == ((), names)
        return getcurrent().parent.switch()

    g = greenlet.greenlet(run)
    g.switch(**names)
    assert g.switch(**names) == names
    assert g.switch(0, **names) == ((0,), names)


def test_run_gone_once_started_and_assignable_before():
    g = greenlet.greenlet()
    with pytest.raises(AttributeError, match="run"):
        g.run
    g.run = lambda: getcurrent().parent.switch("in")
    assert g.switch() == "in"
    with pytest.raises(AttributeError, match="run"):
        g.run
    with pytest.raises(AttributeError, match="after the start"):
        g.run = len
    g.switch()
    assert g.dead


def test_kill_by_assigning_run_before_start():
    # eventlet's greenthread.kill: replace run of an unstarted greenlet.
    def just_raise():
        raise ValueError("killed before start")

    g = greenlet.greenlet(lambda: "never")
    g.run = just_raise
    with pytest.raises(ValueError, match="killed before start"):
        g.switch()
    assert g.dead


def test_bool_dead_and_states():
    g = greenlet.greenlet(lambda: getcurrent().parent.switch())
    assert not g and not g.dead
    g.switch()
    assert g and not g.dead
    g.switch()
    assert not g and g.dead
    assert getcurrent() and not getcurrent().dead


def test_bool_is_used_by_libraries():
    # greenletio: `getcurrent().parent or start()`
    assert (getcurrent().parent or "no parent") == "no parent"


def test_gr_frame():
    def f():
        frame = sys._getframe()
        assert frame.f_back is None  # run is called from C, as in greenlet
        assert g.gr_frame is None  # running
        getcurrent().parent.switch(frame)
        return 1

    g = greenlet.greenlet(f)
    assert g.gr_frame is None  # unstarted
    frame = g.switch()
    assert g.gr_frame is frame
    assert g.gr_frame.f_code.co_name == "f"
    g.switch()
    assert g.gr_frame is None  # dead
    assert getcurrent().gr_frame is None


def test_gr_frame_of_suspended_main():
    main = getcurrent()

    def look():
        frame = main.gr_frame
        return frame.f_code.co_name

    assert greenlet.greenlet(look).switch() == "test_gr_frame_of_suspended_main"


def test_stack_saved():
    # greenlet: bytes of a suspended greenlet's stack saved to the heap. tealet keeps a suspended
    # stack in place, so _stack_saved reports the stack its resumption needs: nonzero exactly
    # while suspended.
    import _continuation
    main = getcurrent()
    def f():
        main.switch(main._stack_saved)
    g = greenlet.greenlet(f)
    assert g._stack_saved == 0 and main._stack_saved == 0
    assert g.switch() > 0  # main, suspended in its switch to g
    assert g._stack_saved > 0
    assert g._stack_saved == _continuation.stack_used(g._gr_c)
    assert main._stack_saved == 0
    g.switch()
    assert g.dead and g._stack_saved == 0


# -- parent ---------------------------------------------------------------------------------

def test_parent_rules():
    g1, g2, g3 = (greenlet.greenlet(lambda: None) for _ in range(3))
    g1.parent = g2
    g2.parent = g3
    with pytest.raises(ValueError, match="cyclic parent chain"):
        g3.parent = g1
    with pytest.raises(ValueError, match="cyclic parent chain"):
        g1.parent = g1
    for bad in (None, 1, "x"):
        with pytest.raises(TypeError, match="Expected any type of greenlet, not"):
            g1.parent = bad
    with pytest.raises(AttributeError, match="can't delete attribute"):
        del g1.parent
    with pytest.raises(AttributeError, match="cannot set the parent of a main greenlet"):
        getcurrent().parent = g1
    assert getcurrent().parent is None


def test_parent_in_other_thread_refused_for_started_greenlet():
    other = []

    def thread():
        other.append(getcurrent())

    t = threading.Thread(target=thread)
    t.start()
    t.join()
    g = greenlet.greenlet(lambda: getcurrent().parent.switch())
    g.switch()
    with pytest.raises(ValueError, match="different thread"):
        g.parent = other[0]
    g.switch()


def test_reparent_to_hub_ignoring_cycles():
    # eventlet's hub: every greenlet that waits is reparented to the hub, cycles are ignored.
    log = []

    def hub_run():
        log.append("hub")
        return ("hub done", waiter.switch("from hub"))

    hub = greenlet.greenlet(hub_run)

    def waiter_run():
        cur = getcurrent()
        cur.parent = hub
        try:
            hub.parent = cur
        except ValueError:
            log.append("cycle refused")
        return hub.switch()

    waiter = greenlet.greenlet(waiter_run)
    # waiter's result goes to its new parent, the hub, whose result goes to main.
    assert waiter.switch() == ("hub done", "from hub")
    assert log == ["cycle refused", "hub"]


# -- semantics --------------------------------------------------------------------------

def test_result_and_exception_go_to_parent():
    log = []
    parent = greenlet.greenlet(lambda v: log.append(("parent got", v)) or "parent done")
    child = greenlet.greenlet(lambda: "child result", parent)
    assert child.switch() == "parent done"
    assert log == [("parent got", "child result")]
    assert child.dead and parent.dead

    def boom():
        raise KeyError("boom")

    def catcher():
        try:
            greenlet.greenlet(boom).switch()
        except KeyError as e:
            return "caught %s" % e

    assert greenlet.greenlet(catcher).switch() == "caught 'boom'"


def test_switch_to_dead_goes_to_parent_starting_unstarted_parent():
    def parent_run(*args):
        return ("parent started with", args)

    parent = greenlet.greenlet(parent_run)
    child = greenlet.greenlet(lambda: None, parent)
    parent2 = greenlet.greenlet(lambda: None)
    parent2.switch()
    assert parent2.dead
    dead = greenlet.greenlet(lambda: "x", parent2)
    dead.switch()
    assert dead.switch(5) == 5  # dead -> dead parent2 -> main, switch() returns args
    assert child.switch() == ("parent started with", (None,))


def test_greenlet_exit_becomes_return_value():
    def run():
        getcurrent().parent.switch()

    g = greenlet.greenlet(run)
    g.switch()
    result = g.throw()
    assert isinstance(result, GreenletExit)
    assert g.dead
    e = GreenletExit("bye")
    assert greenlet.greenlet(lambda: None).throw(e) is e  # unstarted: run never called


def test_throw_variants():
    def run():
        try:
            getcurrent().parent.switch()
        except Exception as e:
            return e

    for args in [(ValueError,), (ValueError, "v"), (ValueError("i"),)]:
        g = greenlet.greenlet(run)
        g.switch()
        assert isinstance(g.throw(*args), ValueError)
    g = greenlet.greenlet(run)
    g.switch()
    try:
        raise IndexError("from exc_info")
    except IndexError:
        result = g.throw(*sys.exc_info())
    assert isinstance(result, IndexError) and result.__traceback__ is not None
    with pytest.raises(TypeError, match="traceback object"):
        greenlet.greenlet(run).throw(ValueError, None, 1)
    with pytest.raises(TypeError, match="may not have a separate value"):
        greenlet.greenlet(run).throw(ValueError("a"), "b")
    with pytest.raises(TypeError, match="exceptions must be classes, or instances"):
        greenlet.greenlet(run).throw(1)


def test_throw_into_unstarted_never_runs_it():
    ran = []
    g = greenlet.greenlet(lambda: ran.append(1))
    with pytest.raises(KeyError):
        g.throw(KeyError)
    assert not ran and g.dead


def test_greenlet_killed_before_its_start_can_be_a_parent():
    killed = greenlet.greenlet(lambda: None)
    killed.throw()
    assert killed.dead and "otid=0x(nil)" not in repr(killed)
    started = greenlet.greenlet(lambda: getcurrent().parent.switch())
    started.switch()
    started.parent = killed  # same thread: accepted
    assert greenlet.greenlet(lambda: "ran", parent=killed).switch() == "ran"


def test_exception_from_a_greenlet_keeps_its_own_context():
    def fails():
        try:
            raise OSError("inner")
        except OSError:
            raise ValueError("outer")

    try:
        raise KeyError("handled by the caller")
    except KeyError:
        # The first switch of a thread, keywords and tracing take the general path.
        for switch in (lambda g: g.switch(), lambda g: g.switch(x=1)):
            with pytest.raises(ValueError) as info:
                switch(greenlet.greenlet(lambda **kw: fails()))
            assert type(info.value.__context__) is OSError
            with pytest.raises(ZeroDivisionError) as info:
                switch(greenlet.greenlet(lambda **kw: 1 / 0))
            assert info.value.__context__ is None


def test_each_thread_has_its_own_main():
    result = {}

    def thread():
        main = getcurrent()
        result["main"] = main
        result["parent"] = main.parent
        result["g"] = greenlet.greenlet(lambda: getcurrent().parent.switch()).switch() or main

    t = threading.Thread(target=thread)
    t.start()
    t.join()
    assert result["main"] is not getcurrent()
    assert result["parent"] is None
    assert result["main"].dead  # its thread exited
    assert "(thread exited)" in repr(result["main"])


def test_cross_thread_switch_raises_error():
    g = greenlet.greenlet(lambda: getcurrent().parent.switch())
    g.switch()
    errors = []

    def thread():
        for target in (g, greenlet.greenlet(lambda: None, g)):
            try:
                target.switch()
            except greenlet.error as e:
                errors.append(str(e))

    t = threading.Thread(target=thread)
    t.start()
    t.join()
    assert len(errors) == 2
    assert all("Cannot switch to a different thread" in e and "Expected" in e for e in errors)
    g.switch()
    assert g.dead


def test_new_greenlet_starts_with_empty_context_unless_set():
    VAR.set("main value")
    assert greenlet.greenlet(VAR.get).switch() == "unset"
    g = greenlet.greenlet(VAR.get)
    g.gr_context = contextvars.copy_context()
    assert g.switch() == "main value"
    with pytest.raises(TypeError, match="contextvars.Context or None"):
        greenlet.greenlet().gr_context = 1
    with pytest.raises(AttributeError):
        del greenlet.greenlet().gr_context


def test_context_is_per_greenlet_and_shareable():
    ctx = contextvars.Context()
    ctx.run(VAR.set, "shared")

    def run():
        assert VAR.get() == "shared"
        VAR.set("changed inside")
        getcurrent().parent.switch()

    g = greenlet.greenlet(run)
    g.gr_context = ctx
    g.switch()
    assert g.gr_context is ctx and ctx[VAR] == "changed inside"
    assert VAR.get() != "changed inside"
    g.switch()


def test_context_assigned_while_suspended_and_after_death():
    ctx = contextvars.Context()

    def run():
        getcurrent().parent.switch()
        return VAR.get()

    g = greenlet.greenlet(run)
    g.switch()
    g.gr_context = ctx  # suspended: it resumes in ctx
    ctx.run(VAR.set, "in ctx")
    assert g.switch() == "in ctx" and g.dead
    assert g.gr_context is ctx  # the last context it had
    other = contextvars.Context()
    g.gr_context = other  # a dead greenlet's context stays assignable, as in greenlet
    assert g.gr_context is other


def test_dead_greenlet_keeps_the_context_it_finished_in():
    def set_and_return():
        VAR.set("set inside")

    def set_switch_and_return():
        VAR.set("set inside")
        getcurrent().parent.switch()

    # Finished on the start path, and after a switch: greenlet keeps the context either way.
    for run in (set_and_return, set_switch_and_return):
        g = greenlet.greenlet(run)
        while not g.dead:
            g.switch()
        assert g.gr_context is not None and g.gr_context[VAR] == "set inside", run.__name__


def test_context_of_a_greenlet_suspended_in_another_thread_is_read_and_replaced():
    var = contextvars.ContextVar("other_thread", default="unset")
    holder, seen = [], []
    go = threading.Event()

    def run():
        var.set("theirs")
        getcurrent().parent.switch()
        seen.append(var.get())

    def thread():
        g = greenlet.greenlet(run)
        g.switch()
        holder.append(g)
        go.wait(10)
        g.switch()

    t = threading.Thread(target=thread)
    t.start()
    while not holder:
        pass
    try:
        assert holder[0].gr_context[var] == "theirs"
        other = contextvars.Context()
        other.run(var.set, "replaced")
        holder[0].gr_context = other
        assert holder[0].gr_context is other
    finally:
        go.set()
        t.join(10)
    assert seen == ["replaced"]


def test_copy_and_pickle_raise_type_error():
    g = greenlet.greenlet(lambda: None)
    for op in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError):
            op(g)
    with pytest.raises(TypeError):
        copy.copy(getcurrent())


def test_settrace_per_thread_events():
    events = []

    def trace(event, args):
        events.append((event, args))

    assert greenlet.settrace(trace) is None
    try:
        assert greenlet.gettrace() is trace
        main = getcurrent()

        def run():
            try:
                main.switch()
            except KeyError:
                pass

        g = greenlet.greenlet(run)
        g.switch()
        g.throw(KeyError)
        other = []
        t = threading.Thread(target=lambda: other.append(greenlet.gettrace()))
        t.start()
        t.join()
        assert other == [None]
    finally:
        assert greenlet.settrace(None) is trace
    assert events == [
        ("switch", (main, g)),
        ("switch", (g, main)),
        ("throw", (main, g)),
        ("switch", (g, main)),
    ]


def test_settrace_sees_switches_to_itself_and_throws_into_unstarted_greenlets():
    events = []
    main = getcurrent()
    parent = greenlet.greenlet(lambda: main.switch())
    parent.switch()
    dead = greenlet.greenlet(lambda: None)
    dead.switch()
    unstarted = [greenlet.greenlet(lambda: None, parent=p) for p in (main, main, parent)]
    greenlet.settrace(lambda event, args: events.append((event, args)))
    try:
        main.switch()
        dead.switch()  # goes to its parent: this greenlet
        with pytest.raises(KeyError):
            unstarted[0].throw(KeyError)
        assert isinstance(unstarted[1].throw(), GreenletExit)
        with pytest.raises(KeyError):
            unstarted[2].throw(KeyError)  # dies, its parent gets the KeyError, which reaches us
    finally:
        greenlet.settrace(None)
    u0, u1, u2 = unstarted
    assert events == [
        ("switch", (main, main)),
        ("switch", (main, main)),
        ("throw", (main, u0)), ("throw", (u0, main)),
        ("throw", (main, u1)), ("switch", (u1, main)),
        ("throw", (main, u2)), ("throw", (u2, parent)), ("throw", (parent, main)),
    ]


def test_failing_trace_is_removed_and_raises_in_target():
    def trace(event, args):
        raise RuntimeError("trace failed")

    greenlet.settrace(trace)
    g = greenlet.greenlet(lambda: "never")
    with pytest.raises(RuntimeError, match="trace failed"):
        g.switch()
    assert greenlet.gettrace() is None


def test_class_attributes_and_module_names():
    G = greenlet.greenlet
    assert G.getcurrent is greenlet.getcurrent or G.getcurrent() is getcurrent()
    assert G.error is greenlet.error and G.GreenletExit is GreenletExit
    assert G.settrace is greenlet.settrace and G.gettrace is greenlet.gettrace
    assert issubclass(GreenletExit, BaseException) and not issubclass(GreenletExit, Exception)
    assert greenlet.GREENLET_USE_GC and greenlet.GREENLET_USE_TRACING
    assert greenlet.GREENLET_USE_CONTEXT_VARS
    from greenlet._greenlet import get_pending_cleanup_count, get_total_main_greenlets
    assert get_pending_cleanup_count() == 0
    assert get_total_main_greenlets() >= 1
    assert repr(getcurrent()).endswith(" current active started main>")
    assert repr(G()).endswith(" pending>")


# -- library patterns -----------------------------------------------------------------------

def test_sqlalchemy_style_asyncio_bridge():
    # greenlet_spawn/await_: a greenlet shares the asyncio task's context; the sync code
    # hands awaitables to the driver through parent.switch and gets results or exceptions back.
    class AsyncIoGreenlet(greenlet.greenlet):
        dead = property(lambda self: greenlet.greenlet.dead.__get__(self))

        def __init__(self, fn, driver):
            greenlet.greenlet.__init__(self, fn, driver)
            self.driver = driver
            self.gr_context = driver.gr_context

    def await_(awaitable):
        return getcurrent().parent.switch(awaitable)

    async def spawn(fn):
        context = AsyncIoGreenlet(fn, getcurrent())
        result = context.switch()
        while not context.dead:
            try:
                value = await result
            except BaseException:
                result = context.throw(*sys.exc_info())
            else:
                result = context.switch(value)
        return result

    async def fails():
        raise LookupError("async failure")

    def sync_code():
        VAR.set("set in greenlet")
        total = await_(asyncio.sleep(0, 20)) + 1
        try:
            await_(fails())
        except LookupError as e:
            return total, str(e), VAR.get()

    async def main():
        assert hasattr(getcurrent(), "gr_context")
        result = await spawn(sync_code)
        return result, VAR.get()

    assert asyncio.run(main()) == ((21, "async failure", "set in greenlet"), "set in greenlet")


def test_switch_out_of_asyncio_callback():
    # playwright: a future's done-callback switches into sync code and back.
    log = []
    main = getcurrent()

    async def driver():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        fut.add_done_callback(lambda f: log.append(main.switch(f.result())))
        loop.call_soon(fut.set_result, "from loop")
        await asyncio.sleep(0.01)
        return "loop done"

    dispatcher = greenlet.greenlet(lambda: asyncio.run(driver()))
    assert dispatcher.switch() == "from loop"
    assert dispatcher.switch("back in callback") == "loop done"
    assert log == ["back in callback"]


def test_generator_frames_inside_greenlet():
    def gen():
        yield getcurrent().parent.switch("suspended in generator")
        yield "second"

    def run():
        return list(gen())

    g = greenlet.greenlet(run)
    assert g.switch() == "suspended in generator"
    assert g.switch("first") == ["first", "second"]


# -- garbage and shutdown -----------------------------------------------------------------

def test_garbage_greenlet_gets_greenlet_exit():
    log = []

    def run():
        try:
            getcurrent().parent.switch()
        except GreenletExit:
            log.append("GreenletExit")
        finally:
            log.append("finally")

    g = greenlet.greenlet(run)
    g.switch()
    del g
    gc.collect()
    assert log == ["GreenletExit", "finally"]


def test_garbage_greenlet_is_killed_by_greenlets_own_throw():
    log = []

    class Task(greenlet.greenlet):
        def throw(self, *args):
            log.append("override")
            return greenlet.greenlet.throw(self, *args)

        dead = "a subclass's own attribute"

    def run():
        try:
            getcurrent().parent.switch()
        finally:
            log.append("finally")

    assert repr(Task(run)).endswith(" pending>")
    t = Task(run)
    t.switch()
    del t
    assert log == ["finally"]


def test_garbage_greenlet_dropped_in_other_thread_dies_in_its_own_thread():
    # Whichever thread's collection finds it, GreenletExit is thrown in by its own thread:
    # directly, or from the queue the next time that thread calls into greenlet.
    log = []
    holder = []
    release = threading.Event()
    done = threading.Event()

    def run():
        try:
            getcurrent().parent.switch()
        finally:
            log.append(threading.current_thread().name)

    def owner():
        g = greenlet.greenlet(run)
        g.switch()
        holder.append(g)
        del g
        release.wait(10)
        gc.collect()
        getcurrent()  # a greenlet call in the owner thread runs its queued kills
        done.set()

    t = threading.Thread(target=owner, name="owner")
    t.start()
    while not holder:
        pass
    holder.clear()  # the last reference outside the greenlet's own frames
    gc.collect()
    release.set()
    done.wait(10)
    t.join(10)
    assert log == ["owner"]


def test_interpreter_shutdown_with_live_greenlets():
    # As with C greenlet, suspended greenlets are left as they are at shutdown: nothing runs in
    # them (the modules they would use are being torn down), nothing is reported.
    script = """
import threading
import greenlet
def run():
    try:
        greenlet.getcurrent().parent.switch()
    finally:
        print("finally ran")
keep = [greenlet.greenlet(run) for _ in range(10)]
for g in keep:
    g.switch()
def thread():
    g = greenlet.greenlet(run)
    g.switch()
    keep.append(g)
t = threading.Thread(target=thread)
t.start()
t.join()
print("end of script")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "end of script\n"
    assert out.stderr == ""


# -- packaging --------------------------------------------------------------------------------

@pytest.mark.parametrize("requirement", ["greenlet", "greenlet>=1.0", "greenlet>=3.1.1,<4",
                                         "greenlet==3.5.6", "greenlet~=3.5"])
def test_installed_distribution_satisfies_libraries_requirements(requirement):
    # What pip does for a library that depends on greenlet: an installed distribution that
    # satisfies the requirement is kept. --no-index: pip may not even look for another one.
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index",
                          "--disable-pip-version-check", requirement],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Requirement already satisfied: greenlet" in out.stdout
    assert "3.5.6+tealet" in out.stdout
    assert "Would install" not in out.stdout


# -- additions: garbage by reference count, failed switches, class-level getcurrent ---------

def test_dropping_the_last_reference_kills_at_once():
    # No gc.collect(): the suspended greenlet's own frames do not keep it alive.
    main = getcurrent()
    log = []

    def run():
        try:
            main.switch()
        finally:
            log.append(getcurrent() is not main)

    g = greenlet.greenlet(run)
    g.switch()
    ref = weakref.ref(g)
    del g
    assert log == [True] and ref() is None


def test_garbage_cycle_through_its_own_frames_is_collected():
    log = []

    def run():
        me = getcurrent()  # a local of its own frame refers to the greenlet: a cycle
        try:
            me.parent.switch()
        except GreenletExit:
            log.append("GreenletExit")

    g = greenlet.greenlet(run)
    g.switch()
    ref = weakref.ref(g)
    del g
    assert ref() is not None
    gc.collect()
    assert log == ["GreenletExit"] and ref() is None


def _run_child(code, **env):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, **env))


def test_garbage_greenlets_of_a_collection_on_a_greenlets_stack_die_once_it_is_over():
    # A collection in a greenlet finds suspended greenlets garbage. Killing them switches, which
    # could copy out the collector's stack with the heads of its object lists while their
    # finally blocks free its objects (this one frees the first found): a crash later in the
    # collection. They die when it is over, before gc.collect() returns.
    r = _run_child("""
        import gc
        import greenlet
        class Node:
            pass
        log = []
        def victim(firsts):
            try:
                greenlet.getcurrent().parent.switch()
            finally:
                log.append("finally")
                if firsts:
                    del firsts[0]
        def garbage():
            firsts = list(tuple(Node() for _ in range(100)))  # the oldest garbage
            firsts.append(firsts)
            for _ in range(40):
                g = greenlet.greenlet(victim)
                g.switch(firsts)
                firsts.append(g)
        def collector():
            gc.collect()
            garbage()
            gc.collect()
            log.append("collected")
            return log
        gc.disable()
        for _ in range(5):
            print(greenlet.greenlet(collector).switch() == ["finally"] * 40 + ["collected"])
            log.clear()
    """, PYTHONMALLOC="debug")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout == "True\n" * 5 and r.stderr == ""


def test_error_in_a_killed_greenlet_goes_to_the_default_unraisablehook():
    # As C greenlet's PyErr_WriteUnraisable: the greenlet as object, a traceback from its run.
    r = _run_child("""
        import greenlet
        def run():
            try:
                greenlet.getcurrent().parent.switch()
            finally:
                raise ValueError("boom")
        g = greenlet.greenlet(run)
        g.switch()
        del g
        print("after")
    """)
    assert r.returncode == 0 and r.stdout == "after\n", r.stderr[-3000:]
    lines = r.stderr.splitlines()
    assert lines[0].startswith("Exception ignored in: <greenlet.greenlet object at 0x")
    assert lines[0].endswith(" dead>")
    assert lines[1:3] == ["Traceback (most recent call last):", '  File "<string>", line 7, in run']
    assert lines[-1] == "ValueError: boom"


@pytest.mark.parametrize("how", ["return", "raise", "switch then return"])
def test_run_is_released_once_finished(how):
    # A dead greenlet that is still referenced must not keep its run (and what it holds).
    class Run:
        def __call__(self):
            if how == "switch then return":
                getcurrent().parent.switch()
            if how == "raise":
                raise ValueError
    run = Run()
    released = weakref.ref(run)
    g = greenlet.greenlet(run)
    del run
    with pytest.raises(ValueError) if how == "raise" else contextlib.nullcontext():
        g.switch()
        if how == "switch then return":
            g.switch()
    assert g.dead and released() is None


def test_replaced_run_is_released_inside_the_new_greenlet():
    # greenlet drops the assigned run inside the new greenlet before calling the one that
    # __getattribute__ returned; a __del__ there may even switch away.
    main = getcurrent()
    log = []

    class RunCallable:
        def __del__(self):
            log.append(("del in", getcurrent() is main))
            main.switch("from __del__")

    class G(greenlet.greenlet):
        def __getattribute__(self, name):
            if name == "run":
                return lambda: log.append("run")
            return object.__getattribute__(self, name)

    g = G(RunCallable())
    assert g.switch() == "from __del__"
    g.switch()
    assert log == [("del in", False), "run"] and g.dead


@pytest.mark.parametrize("started", [False, True])
def test_failed_low_level_switch_leaves_everything_as_it_was(started):
    # greenlet._greenlet.UnswitchableGreenlet forces the continulet switch to fail before it
    # leaves; the switcher stays current and the target stays switchable.
    runs = []

    def run():
        runs.append(1)
        getcurrent().parent.switch()
        runs.append(2)

    g = greenlet._greenlet.UnswitchableGreenlet(run)
    if started:
        g.switch()
    g.force_switch_error = True
    message = "running greenlet" if started else "greenlet for the first time"
    with pytest.raises(SystemError, match=message):
        g.switch()
    assert getcurrent().parent is None  # still the main greenlet
    assert bool(g) is started and not g.dead
    g.force_switch_error = False
    if not started:
        with pytest.raises(AttributeError):
            g.switch()  # as in greenlet, the failed start dropped run
        return
    g.switch()
    assert runs == [1, 2] and g.dead


def test_failed_low_level_switch_from_a_greenlet_keeps_it_current():
    # The switcher recovers who runs from its continulet (which holds no strong reference to
    # its greenlet): here a non-main greenlet.
    target = greenlet._greenlet.UnswitchableGreenlet(lambda: None)
    target.force_switch_error = True

    def run():
        with pytest.raises(SystemError, match="for the first time"):
            target.switch()
        return getcurrent()

    g = greenlet.greenlet(run)
    assert g.switch() is g and g.dead and not target.dead


def test_class_level_getcurrent():
    # gevent and others call getcurrent through the class or an instance.
    class Hub(greenlet.greenlet):
        pass

    assert greenlet.greenlet.getcurrent is greenlet.getcurrent
    assert Hub.getcurrent() is getcurrent()
    g = Hub(lambda: g.getcurrent())
    assert g.switch() is g
    assert Hub().getcurrent() is getcurrent()


def test_library_depending_on_greenlet_keeps_ours(tmp_path):
    # A wheel of a library that requires greenlet: pip would install only the library.
    import zipfile
    wheel = tmp_path / "needsgreenlet-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("needsgreenlet/__init__.py", "import greenlet\n")
        z.writestr("needsgreenlet-1.0.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: needsgreenlet\nVersion: 1.0\n"
                   "Requires-Dist: greenlet>=2.0\n")
        z.writestr("needsgreenlet-1.0.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("needsgreenlet-1.0.dist-info/RECORD", "")
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-index",
                          "--disable-pip-version-check", str(wheel)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Would install needsgreenlet-1.0" in out.stdout
    assert "Requirement already satisfied: greenlet" in out.stdout


# -- tracebacks: greenlet's C switch adds no entry of its own ------------------------------

def _entries(exc):
    """(function name, in greenlet's own source) per traceback entry, outermost first."""
    out, tb = [], exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        out.append((code.co_name, code.co_filename == greenlet._greenlet.__file__))
        tb = tb.tb_next
    return out


def _assert_only_user_frames(exc, expected):
    """`expected`: the function names after the calling test's own frame."""
    expected = [sys._getframe(1).f_code.co_name] + expected
    entries = _entries(exc)
    if sys.version_info >= (3, 11):
        assert entries == [(name, False) for name in expected]
    else:
        # Before 3.11 a bare re-raise keeps the entry of the frame it is raised from: of ours,
        # only switch()'s or throw()'s outermost frame stays where a switch was crossed, alone.
        assert [e for e in entries if not e[1]] == [(name, False) for name in expected]
        assert entries[0] == (expected[0], False)
        assert all(not (a[1] and b[1]) for a, b in zip(entries, entries[1:])), entries


def _raise_value_error():
    raise ValueError("from run")


def test_traceback_of_an_exception_from_run_has_no_frames_of_ours():
    def run(**kwargs):
        _raise_value_error()

    for kwargs in ({}, {"key": 1}):
        with pytest.raises(ValueError) as info:
            greenlet.greenlet(run).switch(**kwargs)
        _assert_only_user_frames(info.value, ["run", "_raise_value_error"])


def test_traceback_after_a_resumed_greenlet_raises_has_no_frames_of_ours():
    def run():
        getcurrent().parent.switch()
        _raise_value_error()

    g = greenlet.greenlet(run)
    g.switch()
    with pytest.raises(ValueError) as info:
        g.switch()
    _assert_only_user_frames(info.value, ["run", "_raise_value_error"])


def test_traceback_of_an_exception_thrown_into_the_switcher_has_no_frames_of_ours():
    main = getcurrent()

    def run():
        main.throw(ValueError("thrown"))

    def switcher():
        greenlet.greenlet(run).switch()

    with pytest.raises(ValueError) as info:
        switcher()
    _assert_only_user_frames(info.value, ["switcher"])


def test_traceback_of_a_throw_that_is_not_caught_has_no_frames_of_ours():
    def run():
        getcurrent().parent.switch()

    g = greenlet.greenlet(run)
    g.switch()
    with pytest.raises(KeyError) as info:
        g.throw(KeyError)
    _assert_only_user_frames(info.value, ["run"])


def test_traceback_of_greenlets_own_errors_has_no_frames_of_ours():
    g = greenlet.greenlet()  # no run
    with pytest.raises(AttributeError) as info:
        g.switch()
    _assert_only_user_frames(info.value, [])
    with pytest.raises(TypeError) as info:
        greenlet.greenlet(lambda: None).throw(1)
    _assert_only_user_frames(info.value, [])


# -- eventlet.monkey_patch() greens the RLocks it finds and logs those it cannot ----------

def test_no_rlock_in_the_module_globals():
    # eventlet.monkey_patch() replaces every RLock reachable from sys.modules by a Python one.
    rlock = type(threading.RLock())
    assert not [name for name, value in vars(greenlet._greenlet).items() if isinstance(value, rlock)]


@pytest.mark.skipif(sys.version_info < (3, 10), reason="RLocks are not GC-tracked before 3.10, so "
                    "eventlet cannot find them either")
def test_no_rlock_before_the_first_switch():
    # eventlet's import calls getcurrent(), its monkey_patch() makes the hub greenlet and then
    # logs every RLock it finds but cannot reach ("N RLock(s) were not greened") on 3.10+.
    script = """
import gc, threading
rlock = type(threading.RLock())
def count():
    gc.collect()
    return sum(isinstance(o, rlock) for o in gc.get_objects())
import greenlet
before = count()
greenlet.getcurrent()
t = threading.Thread(target=greenlet.getcurrent)
t.start(); t.join()
g = greenlet.greenlet(lambda: 5)
print(count() - before)
print(g.switch(), count() - before > 0)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "5", "True"]
