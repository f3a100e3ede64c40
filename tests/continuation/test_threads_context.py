"""get_context/set_context/get_frame: a thread's missing context, another thread's suspended
continulet, the context a continulet finished in; the GC and plain-form switch calls."""
import contextvars
import gc
import threading
import weakref

import pytest
from conftest import IS_PYPY, tealet_only

pytestmark = tealet_only

if not IS_PYPY:
    from _continuation import continulet, error, get_context, get_frame, set_context

VAR = contextvars.ContextVar("tc_var", default="unset")


def in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def test_running_context_is_none_until_first_use():
    def fresh():
        before = get_context()
        VAR.set("x")
        return before, get_context()
    before, after = in_thread(fresh)
    assert before is None
    assert type(after) is contextvars.Context and after[VAR] == "x"


def test_new_continulet_runs_without_context_until_first_use():
    def f(c):
        before = get_context()
        VAR.set("inside")
        return before, get_context()
    before, after = continulet(f).switch()
    assert before is None
    assert after[VAR] == "inside"


class Suspended:
    """A continulet of another thread, suspended in `wait` until release() (thread ends then)."""

    def __init__(self, ctx=None, exit_thread=False):
        self.ready, self.go, self.seen = threading.Event(), threading.Event(), []

        def wait(c):
            VAR.set("theirs")
            c.switch()
            self.seen.append(VAR.get())

        def body():
            self.c = continulet(wait)
            if ctx is not None:
                set_context(ctx, self.c)
            self.c.switch()
            self.ready.set()
            if not exit_thread:
                self.go.wait(10)
                self.c.switch()

        self.thread = threading.Thread(target=body)
        self.thread.start()
        self.ready.wait(10)
        if exit_thread:
            self.thread.join()

    def release(self):
        self.go.set()
        self.thread.join()


def test_context_of_another_threads_suspended_continulet():
    ctx = contextvars.Context()
    s = Suspended(ctx)
    try:
        assert get_context(s.c) is ctx and ctx[VAR] == "theirs"
        other = contextvars.Context()
        other.run(VAR.set, "replaced")
        set_context(other, s.c)
        assert get_context(s.c) is other
    finally:
        s.release()
    assert s.seen == ["replaced"]


def test_frame_of_another_threads_suspended_continulet():
    s = Suspended()
    try:
        names = []
        f = get_frame(s.c)
        while f is not None:
            names.append(f.f_code.co_name)
            f = f.f_back
        assert names[0] == "wait"
    finally:
        s.release()


def test_frame_and_context_of_a_continulet_whose_thread_exited():
    ctx = contextvars.Context()
    s = Suspended(ctx, exit_thread=True)
    assert get_frame(s.c).f_code.co_name == "wait"
    assert get_context(s.c) is ctx and ctx[VAR] == "theirs"


def test_finished_continulet_keeps_the_context_it_ended_in():
    def f(c):
        VAR.set("done")
    c = continulet(f)
    c.switch()
    ctx = get_context(c)
    assert type(ctx) is contextvars.Context and ctx[VAR] == "done"
    with pytest.raises(error, match="finished"):
        set_context(contextvars.Context(), c)


def test_finished_inside_context_run_ends_without_context():
    ctx = contextvars.copy_context()
    c = continulet(lambda c: ctx.run(VAR.set, "in run"))
    c.switch()
    assert get_context(c) is None


def test_finished_context_is_seen_by_the_gc():
    class Node:
        pass
    n = Node()
    def f(c):
        VAR.set(n)
    c = continulet(f)
    c.switch()
    n.c = c  # cycle through the context the continulet finished in
    ref = weakref.ref(n)
    del n, c
    gc.collect()
    assert ref() is None


def test_cycle_through_arguments_of_a_plain_form_switch_call():
    # continulet.switch(c, value): 3.13 keeps the callable below a NULL self; the arguments
    # above it must be seen as live
    class Node:
        pass
    log = []
    def f(c):
        try:
            continulet.switch(c, Node())  # the Node stays an argument on f's value stack
        finally:
            log.append("f")
    c = continulet(f)
    n = c.switch()
    n.c = c
    ref = weakref.ref(n)
    del n, c
    gc.collect()
    assert ref() is None and log == ["f"]


def orphan(make_frames_hold):
    """A continulet suspended in a thread that then exits; returns (continulet, weakref to an
    object only its frames hold, log of finally blocks run)."""
    out, log = [], []

    def body():
        class Held:
            pass
        held = Held()

        def wait(c, held):
            try:
                c.switch()
            finally:
                log.append("finally")
        c = continulet(wait, held)
        c.switch()
        make_frames_hold(held, c)
        out.append((c, weakref.ref(held)))

    t = threading.Thread(target=body)
    t.start()
    t.join()
    return out[0][0], out[0][1], log


def test_orphaned_continulet_is_freed_without_running_its_frames():
    c, ref, log = orphan(lambda held, c: None)
    assert ref() is not None
    del c
    gc.collect()  # it holds itself while suspended (its callable's first argument)
    assert ref() is None and log == []


def test_orphaned_continulet_in_a_cycle_is_collected():
    def cycle(held, c):
        held.c = c
    c, ref, log = orphan(cycle)
    frame = get_frame(c)  # a frame object made (and dropped) before, as greenlet's gr_frame does
    assert frame.f_code.co_name == "wait"
    del c, frame
    gc.collect()
    assert ref() is None and log == []


def test_orphaned_continulets_do_not_grow_the_heap():
    import tracemalloc  # not on PyPy
    def make():
        for _ in range(20):
            c, ref, _ = orphan(lambda held, c: setattr(held, "data", bytearray(1 << 20)))
            del c
    make()
    gc.collect()
    tracemalloc.start()
    try:
        before = len(gc.get_objects())
        make()  # 20 MiB held by those frames if they leaked
        gc.collect()
        assert len(gc.get_objects()) <= before + 10
        assert tracemalloc.get_traced_memory()[0] < 1 << 20
    finally:
        tracemalloc.stop()
