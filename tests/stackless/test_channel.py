import sys

import pytest
import stackless


def run_log(*funcs):
    for f in funcs:
        stackless.tasklet(f)()
    stackless.run()


def test_send_to_blocked_receiver_runs_receiver_first():
    c = stackless.channel()
    log = []

    def receiver():
        log.append(("got", c.receive()))

    def sender():
        c.send(1)
        log.append("sender on")
    run_log(receiver, sender, lambda: log.append("third"))
    assert log == [("got", 1), "third", "sender on"]


def ends(c, log):
    """A receiver and a sender on `c` that log "r" / "s" once their operation returns."""
    def receiver():
        c.receive()
        log.append("r")

    def sender():
        c.send(None)
        log.append("s")
    return receiver, sender


@pytest.mark.parametrize("preference,expected", [
    (-1, ["r", "s"]),   # the receiver runs at once
    (1, ["s", "r"]),    # the sender goes on
    (0, ["s", "r"]),    # neither: the caller goes on
])
def test_preference_on_send(preference, expected):
    c = stackless.channel()
    c.preference = preference
    log = []
    receiver, sender = ends(c, log)
    run_log(receiver, sender)
    assert log == expected


@pytest.mark.parametrize("preference,expected", [
    (-1, ["r", "s"]),   # the receiver (the caller) goes on
    (1, ["s", "r"]),    # the blocked sender runs at once
    (0, ["r", "s"]),
])
def test_preference_on_receive(preference, expected):
    c = stackless.channel()
    c.preference = preference
    log = []
    receiver, sender = ends(c, log)
    run_log(sender, receiver)
    assert log == expected


def test_schedule_all_puts_both_at_the_end():
    c = stackless.channel()
    c.schedule_all = True
    log = []
    receiver, sender = ends(c, log)
    run_log(receiver, sender, lambda: log.append("x"))
    assert log == ["x", "r", "s"]


def test_balance_and_queue_chain():
    c = stackless.channel()
    ts = [stackless.tasklet(c.send)(i) for i in range(3)]
    stackless.run()
    assert c.balance == 3
    assert c.queue is ts[0] and ts[0].next is ts[1] and ts[1].next is ts[2]
    assert ts[2].next is None and ts[1].prev is ts[0]
    assert all(t.blocked == 1 and t.scheduled and not t.paused for t in ts)
    assert [c.receive() for _ in range(3)] == [0, 1, 2]
    assert c.balance == 0 and c.queue is None
    stackless.run()
    r = stackless.tasklet(c.receive)()
    stackless.run()
    assert c.balance == -1 and r.blocked == -1
    c.send(None)


def test_send_exception_and_send_throw():
    c = stackless.channel()
    got = []

    def receiver():
        for _ in range(3):
            try:
                c.receive()
            except Exception as e:
                got.append((type(e), e.args, e.__traceback__ is not None))
    stackless.tasklet(receiver)()
    stackless.run()
    c.send_exception(ValueError, 1, 2)
    c.send_throw(KeyError("k"))
    try:
        raise IndexError("i")
    except IndexError:
        tb = sys.exc_info()[2]
    c.send_throw(IndexError, IndexError("i"), tb)
    assert got[0][:2] == (ValueError, (1, 2))
    assert got[1][:2] == (KeyError, ("k",))
    assert got[2] == (IndexError, ("i",), True)


def test_send_exception_to_a_receiver_that_comes_later():
    c = stackless.channel()
    stackless.tasklet(c.send_exception)(ZeroDivisionError, "late")
    stackless.run()
    with pytest.raises(ZeroDivisionError, match="late"):
        c.receive()


def test_send_sequence_returns_count_and_iteration():
    c = stackless.channel()
    got = []

    def consumer():
        for x in c:
            got.append(x)
        got.append("done")
    stackless.tasklet(consumer)()
    stackless.run()

    def producer():
        assert c.send_sequence(range(4)) == 4
        c.send_exception(StopIteration)
    stackless.tasklet(producer)()
    stackless.run()
    assert got == [0, 1, 2, 3, "done"]


def test_close_semantics():
    c = stackless.channel()
    senders = [stackless.tasklet(c.send)(i) for i in range(2)]
    stackless.run()
    c.close()
    assert c.closing and not c.closed
    assert list(c) == [0, 1]             # iteration drains, then stops
    assert c.closed
    with pytest.raises(ValueError, match="closed channel"):
        c.send(1)
    with pytest.raises(ValueError, match="closed channel"):
        c.receive()
    assert c.balance == 0
    c.open()
    assert not c.closing and not c.closed
    stackless.run()
    assert not any(t.alive for t in senders)


def test_closing_channel_still_pairs_with_waiters():
    c = stackless.channel()
    r = stackless.tasklet(c.receive)()
    stackless.run()
    c.close()
    c.send("x")              # a receiver waits: no blocking, allowed
    assert c.closed and not r.alive


def test_iteration_stops_when_closed_while_blocked():
    c = stackless.channel()
    got = []

    def consumer():
        got.extend(c)
    stackless.tasklet(consumer)()
    stackless.run()
    c.send(1)
    c.close()
    assert got == [1] and c.closing and not c.closed   # still blocked in receive
    c.send_exception(StopIteration)
    assert c.closed


def test_block_trap():
    c = stackless.channel()
    me = stackless.getcurrent()
    me.block_trap = True
    try:
        with pytest.raises(RuntimeError, match="does not like to be blocked"):
            c.receive()
        assert c.balance == 0
        stackless.tasklet(c.send)(5)
        stackless.run()
        assert c.receive() == 5           # no blocking needed
    finally:
        me.block_trap = False


def test_deadlock_leaves_channel_and_queue_consistent():
    c = stackless.channel()
    with pytest.raises(RuntimeError, match="^Deadlock: the last runnable tasklet cannot be blocked.$"):
        c.receive()
    assert c.balance == 0 and c.queue is None and not stackless.getmain().blocked
    assert stackless.getruncount() == 1
    # the last other runnable tasklet ends while main is blocked: main gets the error
    stackless.tasklet(lambda: None)()
    with pytest.raises(RuntimeError, match="Deadlock"):
        c.send(1)
    assert c.balance == 0 and stackless.getruncount() == 1
    r = stackless.tasklet(c.receive)()
    stackless.run()
    c.send(2)
    assert not r.alive


def test_deadlock_in_a_tasklet_while_main_is_blocked():
    c, d = stackless.channel(), stackless.channel()
    errors = []

    def t():
        try:
            d.receive()
        except RuntimeError as e:
            errors.append(str(e))
            c.send("ok")
    stackless.tasklet(t)()
    assert c.receive() == "ok"
    assert errors == [stackless.DEADLOCK] and d.balance == 0


def test_channel_callback():
    seen = []
    c = stackless.channel()
    assert stackless.set_channel_callback(lambda *a: seen.append(a)) is None
    cb = stackless.get_channel_callback()
    r = stackless.tasklet(c.receive)()
    stackless.run()
    c.send(1)
    m = stackless.getmain()
    assert seen == [(c, r, False, True), (c, m, True, False)]
    assert stackless.set_channel_callback(None) is cb


def test_weakref_and_subclass():
    import weakref

    class MyChannel(stackless.channel):
        def send(self, value):
            super().send(value * 2)
    c = MyChannel()
    c.label = "x"
    stackless.tasklet(c.send)(21)
    stackless.run()
    assert c.receive() == 42
    stackless.run()          # the sender finishes and drops its reference
    ref = weakref.ref(c)
    del c
    assert ref() is None


def test_kill_blocked_receiver_unblocks_channel():
    c = stackless.channel()
    ts = [stackless.tasklet(c.receive)() for _ in range(3)]
    stackless.run()
    ts[1].kill()
    assert c.balance == -2 and c.queue is ts[0] and ts[0].next is ts[2]
    for t in (ts[0], ts[2]):
        c.send(None)
    assert not any(t.alive for t in ts)


def test_balance_and_closing_are_read_only():
    # Stackless: writing them would desynchronise the channel from its queue of blocked tasklets.
    c = stackless.channel()
    with pytest.raises(AttributeError):
        c.balance = 1
    with pytest.raises(AttributeError):
        c.closing = True
    c.close()
    assert c.closing and c.closed and c.balance == 0
    c.open()
    assert not c.closing


@pytest.mark.parametrize("value, stored", [(5, 1), (-7, -1), (0, 0), (True, 1), (False, 0)])
def test_preference_is_clamped_to_minus_one_zero_one(value, stored):
    c = stackless.channel()
    c.preference = value
    assert c.preference == stored


@pytest.mark.parametrize("name", ["preference", "schedule_all"])
@pytest.mark.parametrize("value", [None, "x", 1.5])
def test_flags_refuse_what_is_not_an_integer(name, value):
    c = stackless.channel()
    with pytest.raises(TypeError, match=name + " must be set to a bool or integer"):
        setattr(c, name, value)


def test_schedule_all_is_a_bool():
    c = stackless.channel()
    c.schedule_all = 2
    assert c.schedule_all is True


@pytest.mark.parametrize("exc", [1, ValueError("x"), None])
def test_send_exception_needs_an_exception_class(exc):
    c = stackless.channel()
    t = stackless.tasklet(c.receive)()
    stackless.run()
    with pytest.raises(TypeError, match="channel.send_exception needs an exception class as first parameter, not "
                       + type(exc).__name__):
        c.send_exception(exc)
    assert c.balance == -1 and t.blocked     # nothing was sent
    t.kill()
