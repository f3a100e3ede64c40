"""Hostile callables, arguments, finalizers and class flags: each gets a clear exception or runs
correctly, never a crash, a leak or a wrong value (crashing shapes run in a subprocess under
PYTHONMALLOC=debug and -X dev)."""
import gc
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import IS_PYPY, tealet_only

pytestmark = tealet_only

if not IS_PYPY:
    from _continuation import continulet, error, permute


def run_py(code, timeout=120):
    env = dict(os.environ, PYTHONMALLOC="debug")
    return subprocess.run([sys.executable, "-X", "dev", "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout, env=env)


class Counted:
    """Counts its live instances."""
    alive = 0

    def __init__(self):
        Counted.alive += 1

    def __del__(self):
        Counted.alive -= 1


def test_flag_whose_truth_binds_the_continulet_leaves_one_binding():
    # The class flag's __bool__ binds the continulet being bound: the outer __init__ then finds
    # it bound and says so; nothing is leaked and the inner binding runs.
    outer = []
    class Flag:
        def __bool__(self):
            if not outer:
                outer.append(1)
                c.__init__(lambda c, a: "inner", Counted())
            return True
    class Sub(continulet):
        pass_continulet = Flag()
    base = Counted.alive
    c = Sub.__new__(Sub)
    with pytest.raises(error, match="continulet already __init__ialized"):
        c.__init__(lambda c, a: "outer", Counted())
    assert Counted.alive == base + 1     # the outer's argument is dropped, the inner's held
    assert c.switch() == "inner"
    del c
    gc.collect()
    assert Counted.alive == base


def test_finalizer_of_the_owner_switching_away_from_its_finished_tealet():
    # The callable returns while its continulet is referenced only by its own tealet: that
    # reference goes last, and the owner's __del__ switches. It used to run on the finished
    # tealet, which the switch's target then freed: the next switch into it crashed.
    r = run_py("""
        from _continuation import continulet, permute
        log = []
        class S(continulet):
            def __del__(self):
                log.append(("del", d.switch("from del")))
        def f(c):
            c.switch()
            del c
        c = S(f)
        c.switch()
        d = continulet(lambda d: log.append("lambda ran"))
        permute(c, d)          # c gets d's unstarted tealet, d gets f's continuation
        del c                  # f's tealet holds the only reference to c
        log.append(("main", d.switch()))
        log.append(("pending", d.is_pending()))
        log.append(("again", d.switch()))
        log.append(("pending", d.is_pending()))
        print(log)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str([("main", "from del"), ("pending", True), ("del", None),
                                    "lambda ran", ("again", None), ("pending", False)])


@pytest.mark.parametrize("owner_binds_again", [False, True])
def test_unstarted_continulet_dropped_in_another_thread_frees_its_call(owner_binds_again):
    # An unstarted continulet is freed by its refcount; in another thread than its own, which
    # still runs, its tealet cannot be freed there, but what its call holds must go at once
    # (it used to be leaked for good), and the tealet's record later: by the owner's next
    # __init__, or by any thread's once the owner exited.
    import threading
    box, made, go_on = [], threading.Event(), threading.Event()
    def owner():
        box.extend(continulet(lambda c, a: None, Counted()) for _ in range(200))
        made.set()
        go_on.wait()
        if owner_binds_again:
            assert continulet(lambda c: 5).switch() == 5
    base = Counted.alive
    t = threading.Thread(target=owner)
    t.start()
    made.wait()
    assert Counted.alive == base + 200
    box.clear()
    assert Counted.alive == base
    go_on.set()
    t.join()
    assert continulet(lambda c: 6).switch() == 6
