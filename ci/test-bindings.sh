#!/usr/bin/env bash
# Builds and installs bindings-py (_continuation) into each .venv/py3.X once, runs the pytest suite there,
# then runs the PyPy-semantics tests against PyPy's own _continuation (validates the suite itself).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

TESTS=tests/continuation
rc=0
for v in "${PY_VERSIONS[@]}"; do
    py=$(venv_python "$v")
    log "bindings: CPython $v"
    if ! PATH="$(dirname "$py"):$PATH" "$py" -m pip install -q --no-build-isolation --force-reinstall ./bindings-py; then
        echo "bindings: build failed on $v"; rc=1; continue
    fi
    # Run from the tests dir so the installed module (not a source tree) is imported.
    "$py" -m pytest -q -p no:cacheprovider "$TESTS" || rc=1
done

log "bindings: semantics suite on PyPy's reference _continuation"
"$VENVS/pypy/bin/python" -m pytest -q -p no:cacheprovider "$TESTS" || rc=1
exit $rc
