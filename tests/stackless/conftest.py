import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# Ours, not PyPy's lib_pypy stackless.
sys.path.insert(0, os.path.join(ROOT, "stackless-py"))

import stackless  # noqa: E402

assert stackless.__file__.startswith(os.path.join(ROOT, "stackless-py")), stackless.__file__


@pytest.fixture(autouse=True)
def clean_scheduler():
    yield
    stackless.set_schedule_callback(None)
    stackless.set_channel_callback(None)
    stackless.set_error_handler(None)
    for t in list(stackless.get_run_queue()):
        t.kill()
    assert stackless.getcurrent() is stackless.getmain()
    assert stackless.getruncount() == 1
