"""Details of issue 5's bullets that the other files do not pin down."""
import contextvars
import gc
import sys
import threading

import stackless


def test_current_tasklet_is_scheduled_not_paused():
    seen = []

    def f():
        cur = stackless.getcurrent()
        seen.append((cur.scheduled, cur.paused, cur.alive))
    stackless.tasklet(f)()
    m = stackless.getmain()
    assert m.scheduled and not m.paused
    stackless.run()
    assert seen == [(True, False, True)]


def test_getcurrentid_and_get_thread_info_inside_tasklets():
    seen = []

    def f():
        cur = stackless.getcurrent()
        main, current, count = stackless.get_thread_info()
        seen.append((stackless.getcurrentid() == id(cur), main is stackless.getmain(),
                     current is cur, count))
    stackless.tasklet(f)()
    stackless.tasklet(f)()
    stackless.run()
    assert seen == [(True, True, True, 2), (True, True, True, 1)]


def test_context_id_is_the_same_inside_and_outside():
    seen = []

    def f():
        seen.append(stackless.getcurrent().context_id)
        stackless.schedule_remove()
        seen.append(stackless.getcurrent().context_id)
    t = stackless.tasklet(f)()
    stackless.run()
    assert seen == [t.context_id]
    t.insert()
    stackless.run()
    assert seen[1] == seen[0]


def test_set_context_on_a_suspended_tasklet_applies_when_it_resumes():
    var = contextvars.ContextVar("var", default="unset")
    seen = []

    def f():
        seen.append(var.get())
        stackless.schedule_remove()
        seen.append(var.get())
    t = stackless.tasklet(f)()
    stackless.run()
    ctx = contextvars.Context()
    ctx.run(var.set, "new")
    t.set_context(ctx)
    assert t.context_run(var.get) == "new" and t.context_id == id(ctx)
    t.insert()
    stackless.run()
    assert seen == ["unset", "new"] and var.get() == "unset"


def test_set_context_on_the_current_tasklet_enters_it_now():
    var = contextvars.ContextVar("var", default="unset")
    ctx = contextvars.Context()
    ctx.run(var.set, "ctx")
    seen = []

    def f():
        stackless.getcurrent().set_context(ctx)
        seen.append(var.get())
        stackless.schedule()
        seen.append(var.get())
    stackless.tasklet(f)()
    stackless.run()
    assert seen == ["ctx", "ctx"] and var.get() == "unset"


def test_bomb_sent_on_a_channel_raises_in_the_receiver():
    c = stackless.channel()
    got = []

    def receiver():
        try:
            c.receive()
        except KeyError as e:
            got.append(e.args)
    stackless.tasklet(receiver)()
    stackless.run()
    c.send(stackless.bomb(KeyError, KeyError("b")))
    assert got == [("b",)]


def test_bomb_without_arguments_takes_the_exception_being_handled():
    try:
        raise IndexError("now")
    except IndexError as e:
        b = stackless.bomb()
        caught = e
    assert b.type is IndexError and b.value is caught and b.traceback is caught.__traceback__
    try:
        b.raise_()
    except IndexError as e:
        assert e is caught
    else:
        raise AssertionError("raise_ did not raise")


def test_bomb_in_tempval_raises_when_the_tasklet_resumes():
    got = []

    def f():
        try:
            stackless.schedule_remove()
        except ValueError as e:
            got.append(e.args)
    t = stackless.tasklet(f)()
    stackless.run()
    t.tempval = stackless.bomb(ValueError, "tv")
    t.insert()
    stackless.run()
    assert got == [("tv",)]


def test_blocked_sender_holds_its_value_in_tempval():
    c = stackless.channel()
    s = stackless.tasklet(c.send)("value")
    stackless.run()
    assert s.blocked == 1 and s.tempval == "value"
    assert c.receive() == "value"
    stackless.run()
    assert not s.alive


def test_run_accepts_ignore_nesting():
    log = []
    stackless.tasklet(log.append)(1)
    assert stackless.run(ignore_nesting=True) is None
    assert log == [1]


def test_remove_returns_the_tasklet_and_is_a_no_op_when_paused():
    t = stackless.tasklet(lambda: None)()
    assert t.remove() is t and t.paused
    assert t.remove() is t and t.paused
    assert t.insert() is t and t.scheduled
    stackless.run()


def blocked_on_garbage_channel(log, direction):
    def f(c):
        me = stackless.getcurrent()
        try:
            c.send(1) if direction > 0 else c.receive()
        finally:
            log.append(("finally", stackless.getcurrent() is me))
    c = stackless.channel()
    stackless.tasklet(f)(c)
    stackless.run()
    assert c.balance == direction


def test_garbage_tasklet_blocked_on_a_garbage_channel_is_killed():
    log = []
    blocked_on_garbage_channel(log, -1)
    blocked_on_garbage_channel(log, 1)
    gc.collect()
    assert log == [("finally", True), ("finally", True)]
    assert stackless.getcurrent() is stackless.getmain()


def test_garbage_tasklets_of_a_collection_on_a_tasklets_stack_die_once_it_is_over(monkeypatch):
    # Killing switches, which a collection on a tasklet's stack does not allow (the heads of its
    # object lists are there): the kills run when it is over, before gc.collect() returns.
    log, unraisable = [], []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)

    def victim(held):
        try:
            stackless.schedule_remove()
        finally:
            log.append("finally")

    def garbage():
        held = []
        held.append(held)
        for _ in range(10):
            t = stackless.tasklet(victim)(held)
            t.run()
            held.append(t)

    def collector():
        gc.collect()
        log.append("collected")
    stackless.tasklet(garbage)()
    stackless.tasklet(collector)()
    stackless.run()
    assert unraisable == []
    assert log == ["finally"] * 10 + ["collected"]


def test_garbage_blocked_tasklets_do_not_keep_threadblock_waiting():
    # run(threadblock=True) waits while tasklets of this thread are blocked on
    # channels; collected ones must not count.
    blocked_on_garbage_channel([], -1)
    gc.collect()
    release = threading.Event()

    def bystander():
        stackless.getcurrent()          # a stackless thread that could send to us
        release.wait(10)
    t = threading.Thread(target=bystander)
    t.start()
    try:
        stackless.run(threadblock=True)
        assert t.is_alive()             # returned at once, not when the bystander ended
    finally:
        release.set()
        t.join()


def test_unstarted_tasklets_bound_in_one_context_stay_apart():
    """Tasklets bound in the same context share a snapshot until they start
    or their context is used: none of them may see another's changes."""
    var = contextvars.ContextVar("var", default="unset")
    seen = []

    def f(value):
        seen.append(var.get())
        var.set(value)
        stackless.schedule()
        seen.append(var.get())
    var.set("binder")
    a, b, c = (stackless.tasklet(f) for _ in range(3))
    var.set("later")            # after bind: not seen by the tasklets
    a.setup("a")
    b.setup("b")
    c.setup("c")
    c.context_run(var.set, "c-before-start")
    assert a.context_run(var.get) == "binder" and b.context_run(var.get) == "binder"
    assert len({a.context_id, b.context_id, c.context_id}) == 3
    stackless.run()
    assert seen == ["binder", "binder", "c-before-start", "a", "b", "c"]
    assert var.get() == "later"


def test_values_equal_but_not_identical_are_not_shared():
    var = contextvars.ContextVar("var")
    var.set(1)
    a = stackless.tasklet(lambda: None)
    var.set(1.0)
    b = stackless.tasklet(lambda: None)
    assert type(a.context_run(var.get)) is int and type(b.context_run(var.get)) is float
    a.kill()
    b.kill()


def test_rare_fields_default_and_rebinding_drops_keyword_arguments():
    seen = []

    def f(*args, **kwargs):
        seen.append((args, kwargs))
    t = stackless.tasklet(f)
    assert (t.atomic, t.block_trap, t.ignore_nesting) == (False, False, False)
    assert t.trace_function is None and t.profile_function is None
    t.bind(f, (1,), {"k": 2})
    t.bind(f, (3,))
    t.insert()
    assert t.set_atomic(True) is False and t.set_atomic(False) is True and t.atomic is False
    stackless.run()
    assert seen == [((3,), {})]
    assert not t.alive


def test_a_garbage_tasklets_kill_is_not_traced():
    """As Stackless's C deallocator: the finalizer and the kill it starts are not traced."""
    log = []

    def f():
        try:
            stackless.schedule_remove()
        finally:
            log.append("finally")
    gc.disable()  # it dies in the collection below, not in an automatic one before
    try:
        stackless.tasklet(f)()
        stackless.run()
    finally:
        gc.enable()
    events = []

    def tracer(frame, event, arg):
        events.append((event, frame.f_code.co_name))
        return tracer

    sys.settrace(tracer)
    try:
        gc.collect()
    finally:
        sys.settrace(None)
    assert log == ["finally"]
    assert not {name for _, name in events} & {"__del__", "kill", "_throw"}
