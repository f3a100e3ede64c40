"""The README example: examples/simulation.py checkpointed at round 10, killed, resumed in a new
process, gives the same final result as an uninterrupted run."""
import pathlib
import shutil
import signal
import subprocess
import sys

from conftest import needs_frames

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "simulation.py"


def run(cwd, *args):
    return subprocess.run([sys.executable, str(cwd / "simulation.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@needs_frames
def test_checkpoint_kill_resume_matches_uninterrupted_run(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "simulation.py")
    whole = run(tmp_path)
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout.startswith("after 20 rounds of 1000 tasklets: checksum ")
    assert whole.stdout.endswith("\nalive: 0\n")

    killed = run(tmp_path, "--checkpoint", "sim.pickle")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert killed.stdout == "checkpoint after round 10 written to sim.pickle\n"

    resumed = run(tmp_path, "--resume", "sim.pickle")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == whole.stdout
