"""Our stackless against PyPy's lib_pypy/stackless.py, run by pypy3, on agreement.py's scenarios."""
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

import agreement
from conftest import HERE, ROOT

PYPY = shutil.which("pypy3")
if PYPY and not glob.glob("/usr/lib/pypy3*/stackless.py") + glob.glob(
        os.path.join(os.path.dirname(os.path.realpath(PYPY)), "..", "lib", "pypy3*", "stackless.py")):
    PYPY = None
pytestmark = pytest.mark.skipif(PYPY is None, reason="pypy3 with lib_pypy/stackless.py not installed")

SCRIPT = os.path.join(HERE, "agreement.py")


def result(python, name, env):
    out = subprocess.run([python, SCRIPT, name], capture_output=True, text=True, timeout=60,
                         env=env, cwd=HERE)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("name", list(agreement.SCENARIOS))
def test_scenario(name):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    pypy = result(PYPY, name, env)
    ours = result(sys.executable, name, dict(env, PYTHONPATH=os.path.join(ROOT, "stackless-py")))
    if name in agreement.DIFFERENCES:
        pypy_expected, stackless_expected, why = agreement.DIFFERENCES[name]
        assert (pypy, ours) == (pypy_expected, stackless_expected), why
    else:
        assert ours == pypy
