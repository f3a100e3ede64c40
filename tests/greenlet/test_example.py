"""The README's greenlet demo, examples/greenlet_pingpong.py: exact output, nothing on stderr (it
ends with pong suspended, which must stay quiet at interpreter shutdown, as with C greenlet)."""
import pathlib
import subprocess
import sys

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "greenlet_pingpong.py"

EXPECTED = """\
ping 0
pong 0
ping 1
pong 1
ping 2
pong 2
ping-pong finished after 3 rounds
"""


def test_pingpong_example_prints_exactly_its_output():
    r = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == EXPECTED
    assert r.stderr == ""
