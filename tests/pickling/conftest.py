"""Each scenario runs in fresh interpreter processes: one pickles, another loads and resumes."""
import subprocess
import sys
import textwrap

import pytest

FRAMES = (3, 11) <= sys.version_info[:2] <= (3, 13)
needs_frames = pytest.mark.skipif(not FRAMES, reason="running-tasklet pickling is CPython 3.11-3.13")


def run_py(cwd, source, *args, check=True):
    """Runs `source` as script.py in `cwd` with this interpreter; returns the completed process."""
    script = cwd / "script.py"
    script.write_text(textwrap.dedent(source))
    r = subprocess.run([sys.executable, str(script), *args], cwd=cwd, capture_output=True,
                       text=True, timeout=120)
    if check:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def checkpoint_and_resume(cwd, source):
    """Runs `source` with "dump" (runs to a checkpoint, pickles, prints a marker, goes on) and
    then with "load" in a fresh process. Returns (what the dumping process printed after the
    marker, what the loading process printed)."""
    first = run_py(cwd, source, "dump").stdout
    assert "--- checkpoint\n" in first, first
    second = run_py(cwd, source, "load").stdout
    return first.split("--- checkpoint\n", 1)[1], second
