"""Seed example 2 (shared/seed-examples.md), unchanged as examples/pickledtasklet.py."""
import pathlib
import shutil
import subprocess
import sys

from conftest import needs_frames

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "pickledtasklet.py"

ENTER = "".join("enter level %s%d\n" % (i * " ", i) for i in range(1, 10))
LEAVE = "".join("leave level %s%d\n" % (i * " ", i) for i in range(9, 0, -1))


def run(cwd, *args):
    return subprocess.run([sys.executable, str(cwd / "demo.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@needs_frames
def test_tasklet_suspended_nine_deep_resumes_in_a_new_process(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "demo.py")
    first = run(tmp_path)
    assert first.returncode == 0, first.stderr
    # The original run goes on after the dump: the tasklet unwinds there too.
    assert first.stdout == ENTER + "hi\n" + LEAVE
    assert (tmp_path / "tasklet.pickle").stat().st_size > 0
    second = run(tmp_path, "tasklet.pickle")
    assert second.returncode == 0, second.stderr
    assert second.stdout == LEAVE
