"""CPython 3.9/3.10: pickling a running tasklet refuses clearly; unstarted ones still pickle."""
import sys

import pytest

from conftest import FRAMES, run_py

SCRIPT = """
    import pickle, sys, stackless
    ch = stackless.channel()
    def f():
        ch.receive()
    t = stackless.tasklet(f)()
    stackless.schedule()
    try:
        pickle.dumps(t)
    except NotImplementedError as e:
        print("refused:", e)
    print(t.restorable)
    fresh = pickle.loads(pickle.dumps(stackless.tasklet(f)))
    print(fresh.func is f, fresh.alive)
    t.kill()
"""


@pytest.mark.skipif(FRAMES, reason="3.11-3.13 pickle running tasklets")
def test_running_tasklet_refused_naming_the_version(tmp_path):
    out = run_py(tmp_path, SCRIPT).stdout.splitlines()
    v = "%d.%d" % sys.version_info[:2]
    assert out[0] == "refused: pickling a running tasklet needs CPython 3.11, 3.12 or 3.13; " \
                     "this is CPython " + v
    assert out[1:] == ["False", "True False"]
