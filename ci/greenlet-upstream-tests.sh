#!/usr/bin/env bash
# greenlet 3.5.6's own test suite (from its PyPI sdist, downloaded here, never committed) run
# with GREENLET_SKIP_LEAKCHECKS=1 against greenlet-py and, in the same run, against the C
# extension (PyPI wheel, in a venv of its own); then every test the C extension passes must pass
# with ours, except those listed with their reason in ci/greenlet_upstream.py.
# Needs .venv/py3.X with _continuation (ci/test-bindings.sh or ci/test-greenlet.sh installs it).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

GREENLET_VERSION=3.5.6
VERSIONS=(${GREENLET_UPSTREAM_VERSIONS:-3.11 3.13})
WORK="$ROOT/.cache/greenlet-upstream"
SDIST="$WORK/greenlet-$GREENLET_VERSION.tar.gz"
export GREENLET_SKIP_LEAKCHECKS=1
mkdir -p "$WORK"

if [ ! -f "$SDIST" ]; then
    log "greenlet-upstream: download the greenlet $GREENLET_VERSION sdist"
    "$(venv_python "${VERSIONS[0]}")" -m pip download -q --disable-pip-version-check \
        --no-deps --no-binary :all: "greenlet==$GREENLET_VERSION" -d "$WORK"
fi
rm -rf "$WORK/sdist" && mkdir -p "$WORK/sdist"
tar xzf "$SDIST" -C "$WORK/sdist" --strip-components=1

rc=0
for v in "${VERSIONS[@]}"; do
    py=$(venv_python "$v")
    log "greenlet-upstream: CPython $v, C extension"
    cvenv="$WORK/cvenv-$v"
    if [ ! -x "$cvenv/bin/python" ]; then
        "$(find_python "$v")" -m venv "$cvenv"
    fi
    "$cvenv/bin/python" -m pip install -q --disable-pip-version-check \
        "greenlet==$GREENLET_VERSION" psutil objgraph
    # Outside the source tree, so the installed packages are imported.
    (cd "$WORK" && "$cvenv/bin/python" "$ROOT/ci/greenlet_upstream.py" run "$WORK/c-$v.json" \
        > "$WORK/c-$v.log" 2>&1) || true
    grep "^outcomes:" "$WORK/c-$v.log" || { tail -20 "$WORK/c-$v.log"; rc=1; continue; }

    log "greenlet-upstream: CPython $v, greenlet-py"
    # Our package with the sdist's tests overlaid as greenlet.tests, plus the suite's deps,
    # on the path of the venv that has _continuation.
    ours="$WORK/ours-$v"
    rm -rf "$ours" && mkdir -p "$ours"
    cp -r greenlet-py/src/greenlet "$ours/greenlet"
    cp -r "$WORK/sdist/src/greenlet/tests" "$ours/greenlet/tests"
    [ -d "$WORK/deps-$v/psutil" ] || \
        "$py" -m pip install -q --disable-pip-version-check --target "$WORK/deps-$v" psutil objgraph
    (cd "$WORK" && PYTHONPATH="$ours:$WORK/deps-$v" "$py" "$ROOT/ci/greenlet_upstream.py" run \
        "$WORK/ours-$v.json" > "$WORK/ours-$v.log" 2>&1) || true
    grep "^outcomes:" "$WORK/ours-$v.log" || { tail -20 "$WORK/ours-$v.log"; rc=1; continue; }

    log "greenlet-upstream: CPython $v, comparison"
    "$py" ci/greenlet_upstream.py compare "$WORK/c-$v.json" "$WORK/ours-$v.json" || rc=1
done
exit $rc
