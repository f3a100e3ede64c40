import subprocess
import sys
import threading

import pytest
import stackless


def in_thread(func, *args):
    """Run func in a new thread; returns (thread, result list, error list)."""
    result, errors = [], []

    def body():
        try:
            result.append(func(*args))
        except BaseException as e:
            errors.append(e)
    t = threading.Thread(target=body)
    t.start()
    return t, result, errors


def test_each_thread_has_its_own_main_and_scheduler():
    main = stackless.getmain()
    stackless.tasklet(lambda: None)()        # queued here; invisible to the other thread

    def other():
        m = stackless.getmain()
        log = []
        stackless.tasklet(log.append)("in thread")
        count = stackless.getruncount()
        stackless.run()
        return m, m is stackless.getcurrent(), count, log, m.thread_id, threading.get_ident()
    t, result, errors = in_thread(other)
    t.join()
    assert not errors
    m, is_current, count, log, ident, thread_ident = result[0]
    assert m is not main and is_current and count == 2 and log == ["in thread"]
    assert ident == thread_ident
    assert m.thread_id == -1 and not m.alive           # its thread has ended
    assert stackless.getruncount() == 2
    stackless.run()


def test_channel_wakes_a_tasklet_blocked_in_another_thread():
    c = stackless.channel()
    t, result, errors = in_thread(lambda: [c.send(i) for i in range(3)])
    got = [c.receive() for _ in range(3)]
    t.join()
    assert got == [0, 1, 2] and not errors and c.balance == 0


def test_many_round_trips_between_threads():
    ping, pong = stackless.channel(), stackless.channel()

    def echo():
        for _ in range(2000):
            pong.send(ping.receive() + 1)
    t, result, errors = in_thread(echo)
    n = 0
    for _ in range(2000):
        ping.send(n)
        n = pong.receive()
    t.join()
    assert n == 2000 and not errors


def test_receiver_thread_waits_instead_of_deadlock():
    c = stackless.channel()
    started = threading.Event()

    def receiver():
        started.set()
        return c.receive()           # only tasklet of its thread: must wait, not raise
    t, result, errors = in_thread(receiver)
    started.wait()
    c.send("late")
    t.join()
    assert result == ["late"] and not errors


def test_deadlock_once_the_only_possible_sender_thread_ends():
    c = stackless.channel()
    stop = threading.Event()

    def bystander():
        stackless.getcurrent()       # a stackless thread: its end wakes waiters
        stop.wait()
    t, _, _ = in_thread(bystander)
    threading.Timer(0.05, stop.set).start()
    with pytest.raises(RuntimeError, match="Deadlock"):
        c.receive()
    t.join()
    assert c.balance == 0


def test_deadlock_when_a_foreign_thread_ends():
    c = stackless.channel()
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)   # never touches stackless
    t.start()
    threading.Timer(0.05, stop.set).start()
    with pytest.raises(RuntimeError, match="Deadlock"):
        c.receive()
    t.join()


def test_run_threadblock_waits_for_other_threads():
    c = stackless.channel()
    got = []
    stackless.tasklet(lambda: got.append(c.receive()))()
    stackless.run()
    assert got == [] and c.balance == -1
    go = threading.Event()
    t, _, errors = in_thread(lambda: (go.wait(), c.send("from thread")))
    go.set()
    stackless.run(threadblock=True)
    t.join()
    assert got == ["from thread"] and not errors


def test_bind_thread_and_insert_run_the_tasklet_in_that_thread():
    ready = threading.Event()
    ch = stackless.channel()
    info = {}

    def worker():
        info["ident"] = threading.get_ident()
        info["main"] = stackless.getmain()
        ready.set()
        return ch.receive()          # the worker's main waits for a tasklet to arrive

    def job():
        ch.send((threading.get_ident(), stackless.getcurrent().thread_id))
    t, result, errors = in_thread(worker)
    ready.wait()
    job_tasklet = stackless.tasklet(job, ())
    job_tasklet.bind_thread(info["ident"])
    assert job_tasklet.thread_id == info["ident"]
    assert stackless.get_thread_info(info["ident"])[0] is info["main"]
    assert info["ident"] in stackless.threads
    job_tasklet.insert()
    t.join()
    assert not errors and result == [(info["ident"], info["ident"])]


def test_cannot_switch_to_a_tasklet_of_another_thread():
    made = []
    t, _, _ = in_thread(lambda: made.append(stackless.tasklet(lambda: None, ())))
    t.join()
    with pytest.raises(RuntimeError, match="another thread"):
        made[0].run()


def test_tasklets_blocked_when_their_thread_ends_leave_their_channels():
    ch = stackless.channel()
    made, log = [], []

    def receiver():
        log.append(ch.receive())

    def worker():
        made.append(stackless.tasklet(receiver)())
        stackless.run()                 # the receiver blocks; the thread ends

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    task = made[0]
    assert (ch.balance, task.blocked, task.alive, task.thread_id) == (0, 0, False, -1)
    with pytest.raises(RuntimeError, match="Deadlock"):
        ch.send("lost")                 # no receiver any more: not handed to one that never runs
    with pytest.raises(RuntimeError, match="dead"):
        task.insert()
    assert log == []


INTERRUPTED_RECEIVE = r"""
import signal, threading, time
import stackless

class Interrupted(Exception):
    pass

def interrupt(signum, frame):
    raise Interrupted

ch = stackless.channel()
registered = threading.Event()

def other():
    stackless.getcurrent()          # a stackless thread that could still send
    registered.set()
    time.sleep(1.0)

t = threading.Thread(target=other)
t.start()
registered.wait()
signal.signal(signal.SIGALRM, interrupt)
signal.setitimer(signal.ITIMER_REAL, 0.2)
try:
    ch.receive()                    # waits for the other thread; the signal interrupts it
except Interrupted:
    print("interrupted", ch.balance, stackless.getmain().blocked)
stackless.tasklet(ch.send)("X")
stackless.tasklet(lambda: print("got", ch.receive()))()
stackless.run()
print("balance", ch.balance)
t.join()
"""


def test_an_interrupted_blocking_receive_leaves_the_channel():
    r = subprocess.run([sys.executable, "-c", INTERRUPTED_RECEIVE], capture_output=True, text=True,
                       timeout=60)
    assert r.stdout.splitlines() == ["interrupted 0 0", "got X", "balance 0"], r.stderr


def test_kill_of_a_tasklet_running_in_another_thread_is_refused():
    running, release = threading.Event(), threading.Event()
    box = []

    def busy():
        box.append(stackless.getcurrent())
        running.set()
        release.wait()
        return "finished"

    t, result, errors = in_thread(lambda: stackless.tasklet(busy)().run())
    running.wait()
    try:
        for throw in (box[0].kill, lambda: box[0].throw(ValueError)):
            with pytest.raises(RuntimeError, match="running in another thread"):
                throw()
        assert box[0].alive
    finally:
        release.set()
        t.join()
    assert not errors and not box[0].alive


SOLO_TO_SHARED = r"""
import threading
import stackless

N = 20000
s = stackless._state()
assert s.solo                    # the only thread: channels skip the lock
ping, pong, cross = stackless.channel(), stackless.channel(), stackless.channel()
got = []

def echo():
    for _ in range(N):
        pong.send(ping.receive())

def other_thread():
    for i in range(2000):
        cross.send(i)            # wakes a tasklet of the main thread

def driver():
    for i in range(N):
        if i == N // 4:
            threading.Thread(target=other_thread).start()
        ping.send(i)
        assert pong.receive() == i
    got.append("driver")

def sink():
    got.append(sum(cross.receive() for _ in range(2000)))

for f in (echo, driver, sink):
    stackless.tasklet(f)()
stackless.run(threadblock=True)
assert not s.solo
assert sorted(map(str, got)) == sorted(["driver", str(sum(range(2000)))]), got
assert (ping.balance, pong.balance, cross.balance) == (0, 0, 0)
print("ok")
"""


def test_channels_stay_consistent_when_a_second_thread_arrives():
    # A fresh process: the first thread runs its channels unlocked until the second registers.
    import os
    import subprocess
    import sys
    from conftest import ROOT
    out = subprocess.run([sys.executable, "-c", SOLO_TO_SHARED], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "stackless-py")),
                         timeout=120)
    assert out.returncode == 0 and out.stdout == "ok\n", out.stderr
