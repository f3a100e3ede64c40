"""eventlet programs that tests/greenlet/test_libraries.py runs in child processes (eventlet's
hub and monkey patching are per process): `python eventlet_programs.py NAME` prints NAME()'s
result as JSON. Nothing else is imported here first: eventlet.monkey_patch() must come early."""
import json
import os
import sys
import traceback
import warnings

import greenlet

OWN_SOURCE = os.path.dirname(greenlet.__file__)


def frames_of_greenlet(tb):
    """Traceback entries in the greenlet package's own source: C greenlet has none."""
    return [f.name for f in traceback.extract_tb(tb) if f.filename.startswith(OWN_SOURCE)]


def eventlet_basics():
    import eventlet
    from eventlet import GreenPool, Timeout, corolocal, event, queue

    q = queue.Queue()

    def worker(i):
        eventlet.sleep(0.02 * (5 - i))  # wide steps: the order must not depend on load
        q.put(i)
        return i * i

    out = {"imap": list(GreenPool(10).imap(worker, range(5)))}
    out["queue order"] = [q.get() for _ in range(5)]
    ev = event.Event()
    gt = eventlet.spawn(lambda: ev.wait() + 1)
    eventlet.spawn_after(0.01, ev.send, 41)
    out["event"] = gt.wait()
    try:
        with Timeout(0.01):
            eventlet.sleep(5)
    except Timeout as t:
        out["timeout"] = str(t)
    with Timeout(0.01, False):
        eventlet.sleep(5)
    pool = GreenPool(3)
    results = []
    for i in range(10):
        pool.spawn_n(lambda i: (eventlet.sleep(0), results.append(i)), i)
    pool.waitall()
    out["pool"] = sorted(results)
    out["running"] = pool.running()
    local = corolocal.local()
    seen = []

    def set_local(i):
        local.value = i
        eventlet.sleep(0)
        seen.append(local.value)

    for t in [eventlet.spawn(set_local, i) for i in range(3)]:
        t.wait()
    out["corolocal"] = seen
    return out


def eventlet_kill():
    import eventlet
    import eventlet.debug
    eventlet.debug.hub_exceptions(False)  # else the hub prints c's KeyError

    log = []

    def sleeper(name):
        try:
            log.append(name + " started")
            eventlet.sleep(10)
        except greenlet.GreenletExit:
            log.append(name + " exit")
            raise
        finally:
            log.append(name + " finally")

    a = eventlet.spawn(sleeper, "a")
    a.link(lambda gt: log.append("a linked, dead=%s" % gt.dead))
    eventlet.sleep(0)
    a.kill()
    try:
        a.wait()
    except greenlet.GreenletExit as e:
        out = {"a": a.dead, "a waited": repr(e)}
    b = eventlet.spawn(sleeper, "b")
    b.kill()  # never started: its run is never called
    out["b"] = b.dead
    c = eventlet.spawn(sleeper, "c")
    eventlet.sleep(0)
    c.kill(KeyError, "c")
    try:
        c.wait()
    except KeyError as e:
        out["c"] = repr(e)
    d = eventlet.spawn_n(sleeper, "d")  # a raw greenlet
    eventlet.sleep(0)
    eventlet.kill(d)
    eventlet.sleep(0)
    out["d"] = d.dead
    out["log"] = log
    return out


def eventlet_traceback():
    import traceback

    import eventlet
    import eventlet.debug
    eventlet.debug.hub_exceptions(False)  # else the hub prints the greenthread's exception

    def inner():
        eventlet.sleep(0)
        raise ValueError("boom")

    def outer():
        inner()

    gt = eventlet.spawn(outer)
    try:
        gt.wait()
    except ValueError as e:
        tb = e.__traceback__
    entries = traceback.extract_tb(tb)
    return {"names": [f.name for f in entries if not f.filename.startswith(OWN_SOURCE)],
            "ours": len(frames_of_greenlet(tb))}


def eventlet_sockets():
    import eventlet

    def handle(sock, addr):
        f = sock.makefile("rwb")
        for line in f:
            f.write(line.upper())
            f.flush()
        sock.close()

    server = eventlet.listen(("127.0.0.1", 0))
    port = server.getsockname()[1]
    eventlet.spawn(eventlet.serve, server, handle)

    def client(i):
        c = eventlet.connect(("127.0.0.1", port))
        f = c.makefile("rwb")
        replies = []
        for j in range(10):
            f.write(b"hello %d %d\n" % (i, j))
            f.flush()
            replies.append(f.readline())
        c.close()
        return replies == [b"HELLO %d %d\n" % (i, j) for j in range(10)]

    results = list(eventlet.GreenPool(100).imap(client, range(100)))
    return {"clients": len(results), "all echoed": all(results)}


def eventlet_hubs():
    import threading

    import eventlet
    from eventlet import hubs

    def ping_pong(n):
        q = eventlet.queue.Queue()
        got = []
        gt = eventlet.spawn(lambda: [got.append(q.get()) for _ in range(n)])
        for i in range(n):
            q.put(i)
            eventlet.sleep(0)
        gt.wait()
        return got == list(range(n))

    out = {}
    for name in ("selects", "poll", "epolls"):
        hubs.use_hub(name)
        hub = hubs.get_hub()
        out[name] = (type(hub).__module__, ping_pong(20))
    # Each OS thread has its own hub (and greenlets), both running at once.
    results = {}

    def thread(name):
        results[name] = (ping_pong(200), hubs.get_hub() is not hubs_of_main)

    hubs_of_main = hubs.get_hub()
    threads = [threading.Thread(target=thread, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["threads"] = results
    return out


def eventlet_tpool():
    import threading

    import eventlet
    from eventlet import tpool

    def blocking(i):
        return i, threading.current_thread() is not threading.main_thread()

    ticks = []
    ticker = eventlet.spawn(lambda: [ticks.append(eventlet.sleep(0.001)) for _ in range(5)])
    results = [tpool.execute(blocking, i) for i in range(20)]
    ticker.wait()
    tpool.killall()
    return {"results": results, "ticks": len(ticks)}


def eventlet_monkey_patch():
    import eventlet
    eventlet.monkey_patch()
    import queue
    import socket
    import threading
    import time

    from eventlet import patcher

    out = {"patched": [patcher.is_monkey_patched(m) for m in ("thread", "time", "socket")]}
    q = queue.Queue()
    order = []

    def work(i):
        time.sleep(0.02 * (3 - i))  # wide steps: the order must not depend on load
        order.append(i)
        q.put((i, threading.current_thread().name))

    threads = [threading.Thread(target=work, args=(i,), name="t%d" % i) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["order"] = order
    out["queue"] = sorted(q.get() for _ in range(3))
    cond = threading.Condition()
    ready = threading.Event()

    def waiter():
        with cond:
            cond.wait_for(ready.is_set)

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.01)
    with cond:
        ready.set()
        cond.notify_all()
    t.join(5)
    out["condition"] = not t.is_alive()
    lock = threading.RLock()
    with lock:
        with lock:
            out["rlock"] = True
    out["socket"] = type(socket.socket()).__module__
    return out


if __name__ == "__main__":
    # eventlet warns on import that it is in bugfix mode; stderr must stay empty otherwise.
    warnings.filterwarnings("ignore", message="(?s).*Eventlet is deprecated")
    print(json.dumps(globals()[sys.argv[1]]()))
