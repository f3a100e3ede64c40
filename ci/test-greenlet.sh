#!/usr/bin/env bash
# Installs greenlet-py into each .venv/py3.X (next to bindings-py's _continuation) with the
# libraries of tests/greenlet/requirements-libraries.txt, runs tests/greenlet there and
# test_libraries.py against C greenlet too, then eventlet's and greenlet 3.5.6's own suites
# against greenlet-py and C greenlet (ci/eventlet-upstream-tests.sh, ci/greenlet-upstream-tests.sh).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

LIBS=tests/greenlet/requirements-libraries.txt
rc=0
for v in "${PY_VERSIONS[@]}"; do
    py=$(venv_python "$v")
    log "greenlet: CPython $v"
    ensure_binding "$py"
    # With build isolation: the 3.12+ venvs have no setuptools of their own.
    "$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps ./greenlet-py
    # eventlet and SQLAlchemy for test_libraries.py: our greenlet satisfies their requirement.
    "$py" -m pip install -q --disable-pip-version-check -r "$LIBS"
    # Run from the tests dir so the installed package (not a source tree) is imported.
    (cd tests/greenlet && "$py" -m pytest -q -p no:cacheprovider .) || rc=1
done

# test_libraries.py against C greenlet (the benchmarks' peer venvs), so what it asserts is
# what the libraries do on the reference (3.10: SQLAlchemy 2.0, 3.13: 2.1).
for v in ${GREENLET_LIBRARY_PEER_VERSIONS:-3.10 3.13}; do
    log "greenlet: test_libraries.py on C greenlet, CPython $v"
    gpy=$(greenlet_peer "$v") || { rc=1; continue; }
    "$gpy" -m pip install -q --disable-pip-version-check -r "$LIBS" pytest==8.4.2
    "$gpy" -c "import greenlet._greenlet as c; assert not c.__file__.endswith('.py'), c"
    (cd tests/greenlet && "$gpy" -m pytest -q -p no:cacheprovider test_libraries.py) || rc=1
done

bash ci/eventlet-upstream-tests.sh || rc=1
bash ci/greenlet-upstream-tests.sh || rc=1
exit $rc
