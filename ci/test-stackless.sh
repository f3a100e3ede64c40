#!/usr/bin/env bash
# Installs stackless-py into each .venv/py3.X (bindings-py must be installed there: ci/test-bindings.sh)
# and runs the stackless tests against the installed package.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

rc=0
for v in "${PY_VERSIONS[@]}"; do
    py=$(venv_python "$v")
    log "stackless: CPython $v"
    ensure_binding "$py" "_continuation; _continuation.check_frames"
    # Build isolation: 3.12+ venvs have no setuptools of their own.
    "$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps ./stackless-py
    "$py" -m pytest -q -p no:cacheprovider tests/test_seed_channel.py tests/stackless || rc=1
done
exit $rc
