#!/usr/bin/env bash
# The main demo: builds tealet for one CPython (3.11 by default, or $DEMO_PYTHON_VERSION) and runs
# the channel example (seed example 1) and the greenlet ping-pong (examples/greenlet_pingpong.py,
# on greenlet-py, the pure-Python greenlet).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

version=${DEMO_PYTHON_VERSION:-3.11}
venv="$VENVS/py$version"
if [ ! -x "$venv/bin/python" ]; then
    py=$(find_python "$version") || { echo "CPython $version not found" >&2; exit 1; }
    "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check maturin==1.9.6
PATH="$venv/bin:$PATH" "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation ./bindings-py
"$venv/bin/python" -m pip install -q --disable-pip-version-check ./stackless-py
"$venv/bin/python" -m pip install -q --disable-pip-version-check ./greenlet-py

log "examples/channel.py (stackless channels)"
"$venv/bin/python" examples/channel.py

log "examples/greenlet_pingpong.py (greenlet-py)"
"$venv/bin/python" examples/greenlet_pingpong.py
