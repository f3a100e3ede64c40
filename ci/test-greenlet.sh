#!/usr/bin/env bash
# Installs greenlet-py into each .venv/py3.X (next to bindings-py's _continuation), runs
# tests/greenlet there, then greenlet 3.5.6's own suite against it (ci/greenlet-upstream-tests.sh).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

rc=0
for v in "${PY_VERSIONS[@]}"; do
    py=$(venv_python "$v")
    log "greenlet: CPython $v"
    ensure_binding "$py"
    # With build isolation: the 3.12+ venvs have no setuptools of their own.
    "$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps ./greenlet-py
    # Run from the tests dir so the installed package (not a source tree) is imported.
    (cd tests/greenlet && "$py" -m pytest -q -p no:cacheprovider .) || rc=1
done

bash ci/greenlet-upstream-tests.sh || rc=1
exit $rc
