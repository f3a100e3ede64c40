"""Seed example 1 (shared/seed-examples.md), run unchanged as examples/channel.py: exact output."""
import pathlib
import subprocess
import sys

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "channel.py"

EXPECTED = """\
Receiving tasklet started
Sending tasklet started
send from sending_tasklet
Receiving tasklet finished
Just another tasklet in the scheduler
sending tasklet finished
"""


def test_channel_example_prints_exactly_the_seed_output():
    r = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == EXPECTED
