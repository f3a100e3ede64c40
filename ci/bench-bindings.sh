#!/usr/bin/env bash
# Side by side in one run: _continuation (bindings-py) against C greenlet 3.5.x on the same CPython
# (on 3.9, which greenlet 3.5 does not support, the newest greenlet that installs there: 3.2.5).
# greenlet lives in its own venv (.venv/greenlet-bench-3.X), never in the test venvs.
# Usage: bash ci/bench-bindings.sh [3.X]   (default 3.12)
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

v=${1:-3.12}
py=$(venv_python "$v")
gpy=$(greenlet_peer "$v")
ensure_binding "$py"

B=bindings-py/bench/bench.py
gv=$("$gpy" -c "import greenlet; print(greenlet.__version__)")
note=""
case $gv in 3.5.*) ;; *) note=" (newest greenlet that installs on CPython $v; 3.5 needs 3.10+)" ;; esac
printf 'CPython %s, greenlet %s%s\n' "$v" "$gv" "$note"
printf '%-40s %14s %14s %8s %8s\n' measure continulet greenlet ratio target
# Each side BINDINGS_BENCH_ROUNDS times (default 3), alternating, best kept: a burst of load on
# this shared VM then spoils one sample of each side, not one side's only sample.
row() {
    local name=$1 what=$2 scale=$3 unit=$4 target=$5 c="" g="" i
    for ((i = 0; i < ${BINDINGS_BENCH_ROUNDS:-3}; i++)); do
        c=$(min "$c" "$("$py" $B continulet "$what")")
        g=$(min "$g" "$("$gpy" $B greenlet "$what")")
    done
    awk -v n="$name" -v c="$c" -v g="$g" -v s="$scale" -v u="$unit" -v t="$target" \
        'BEGIN { printf "%-40s %10.3f %-3s %10.3f %-3s %7.3fx %8s\n", n, c*s, u, g*s, u, c/g, t }'
}
row "switch round trip" roundtrip 1e9 ns "<=0.33x"
row "create+run+finish" lifecycle 1e9 ns "<=0.15x"
row "RSS per suspended (100k, 3 deep)" memory 1 B "<=0.4x"
printf '%-40s ' "1,000,000 suspended (3 deep)"
"$py" $B continulet million | awk '{ printf "continulet: %s, RSS %.0f MiB\n", $1, $2 / 1048576 }'
