#!/usr/bin/env bash
# Installs stackless-py into each .venv/py3.X (bindings-py must be installed there: ci/test-bindings.sh)
# and runs the stackless tests against the installed package.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

rc=0
for v in "${PY_VERSIONS[@]}"; do
    py=$(venv_python "$v")
    log "stackless: CPython $v"
    "$py" -c "import _continuation" 2>/dev/null || \
        PATH="$(dirname "$py"):$PATH" "$py" -m pip install -q --no-build-isolation ./bindings-py
    # Build isolation: 3.12+ venvs have no setuptools of their own.
    "$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps ./stackless-py
    "$py" -m pytest -q -p no:cacheprovider tests/test_seed_channel.py tests/stackless || rc=1
done
exit $rc
