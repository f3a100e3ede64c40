#!/usr/bin/env bash
# Running-tasklet pickling (tests/pickling): resumes in fresh processes on CPython 3.11-3.13;
# on 3.9/3.10 the same suite checks the NotImplementedError refusal (the rest is skipped).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

rc=0
for v in "${PY_VERSIONS[@]}"; do
    py=$(venv_python "$v")
    log "pickling: CPython $v"
    ensure_binding "$py" "_continuation; _continuation.check_frames"
    "$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps ./stackless-py
    (cd tests/pickling && "$py" -m pytest -q -p no:cacheprovider .) || rc=1
done
exit $rc
