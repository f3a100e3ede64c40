#!/usr/bin/env bash
# eventlet's own tests (from its PyPI sdist, downloaded here, never committed), the modules that
# exercise greenlets, hubs and green I/O, run in the same run against greenlet-py (.venv/py3.X)
# and C greenlet (the benchmarks' peer venv): every test that passes on C greenlet must pass on
# ours. The eventlet version is the one tests/greenlet/requirements-libraries.txt pins there,
# installed into both venvs here (ci/test-greenlet.sh has done so already: then a no-op).
# Left out: patcher_test (~20 s of child processes re-importing eventlet; test_libraries.py runs
# monkey_patch() itself) and the modules for other libraries (wsgi, dns, ssl, zmq, databases).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

VERSIONS=(${EVENTLET_UPSTREAM_VERSIONS:-3.13})
MODULES=(api_test asyncio_test backdoor_test convenience_test dagpool_test debug_test event_test
         greenio_test greenpool_test greenthread_test hub_test pools_test queue_test
         semaphore_test socket_test test__event test__greenness thread_test timeout_test
         timeout_with_statement_test timer_test tpool_test)
FILES=()
for m in "${MODULES[@]}"; do FILES+=("tests/$m.py"); done
WORK="$ROOT/.cache/eventlet-upstream"
mkdir -p "$WORK"

rc=0
for v in "${VERSIONS[@]}"; do
    py=$(venv_python "$v")
    gpy=$(greenlet_peer "$v")
    # greenlet-py first (ci/test-greenlet.sh installs it), or eventlet would bring the C extension.
    "$py" -c "import greenlet._greenlet as g; assert g.__file__.endswith('.py'), g" ||
        { echo "greenlet-py is not installed in $py"; rc=1; continue; }
    "$py" -m pip install -q --disable-pip-version-check -r tests/greenlet/requirements-libraries.txt
    "$gpy" -m pip install -q --disable-pip-version-check -r tests/greenlet/requirements-libraries.txt \
        pytest==8.4.2
    ev=$("$py" -c "import importlib.metadata as m; print(m.version('eventlet'))")
    cev=$("$gpy" -c "import importlib.metadata as m; print(m.version('eventlet'))")
    [ "$ev" = "$cev" ] || { echo "eventlet $ev with ours but $cev with C greenlet"; rc=1; continue; }
    sdist="$WORK/eventlet-$ev.tar.gz"
    if [ ! -f "$sdist" ]; then
        log "eventlet-upstream: download the eventlet $ev sdist"
        "$py" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
            "eventlet==$ev" -d "$WORK"
    fi
    # Only its tests: the installed eventlet is the one imported.
    tree="$WORK/tree-$ev"
    rm -rf "$tree" && mkdir -p "$tree"
    tar xzf "$sdist" -C "$tree" --strip-components=1 "eventlet-$ev/tests" "eventlet-$ev/pyproject.toml"
    for side in c ours; do
        p=$py; [ $side = c ] && p=$gpy
        log "eventlet-upstream: CPython $v, eventlet $ev, $([ $side = c ] && echo "C greenlet" || echo greenlet-py)"
        (cd "$tree" && "$p" -m pytest -q -p no:cacheprovider -rA "${FILES[@]}" \
            > "$WORK/$side-$v.log" 2>&1) || true
        # As "passed=N failed=M": ci/test.sh totals "N passed/failed" of our own tests, and this
        # suite is judged by the comparison below (both sides fail the same tests here).
        tail -n 1 "$WORK/$side-$v.log" | sed -E 's/([0-9]+) (passed|failed|skipped)/\2=\1/g'
        sed -n 's/^PASSED \([^ ]*\).*/\1/p' "$WORK/$side-$v.log" | sort -u > "$WORK/$side-$v.passed"
    done
    missing=$(comm -23 "$WORK/c-$v.passed" "$WORK/ours-$v.passed")
    echo "C greenlet passed $(wc -l < "$WORK/c-$v.passed"); greenlet-py passed" \
         "$(comm -12 "$WORK/c-$v.passed" "$WORK/ours-$v.passed" | wc -l) of them"
    if [ -n "$missing" ] || [ ! -s "$WORK/c-$v.passed" ]; then
        echo "passes on C greenlet, not on greenlet-py:"; echo "$missing"
        rc=1
    fi
done
exit $rc
