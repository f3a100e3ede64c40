#!/usr/bin/env bash
# Side by side in one run: our stackless against the same programs on C greenlet (a minimal
# scheduler + channel, stackless-py/bench/bench.py) and against PyPy's lib_pypy/stackless.py
# run on CPython over our _continuation. greenlet lives in its own venv, never in the test venvs.
# Usage: bash ci/bench-stackless.sh [3.X]   (default 3.12); BENCH_MILLION=1 adds 1,000,000 blocked tasklets.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

v=${1:-3.12}
py=$(venv_python "$v")
gpy=$(greenlet_peer "$v")
ensure_binding "$py"
export PYTHONPATH="$ROOT/stackless-py"
B=stackless-py/bench/bench.py
pypy_lib=/usr/lib/pypy3.9/stackless.py

gv=$("$gpy" -c "import greenlet; print(greenlet.__version__)")
printf 'CPython %s, greenlet %s\n' "$v" "$gv"
printf '%-44s %12s %12s %12s %9s %9s\n' measure stackless greenlet pypy-lib vs-gr vs-pypy
# Times: each kind runs ROUNDS times, interleaved, and the fastest run counts (the machine is
# shared; load only ever adds time). Memory: one run each.
row() {
    local name=$1 scale=$2 unit=$3 rounds=$4 s=() g=() p=() i
    shift 4
    for ((i = 0; i < rounds; i++)); do
        s+=("$("$py" $B stackless "$@")")
        g+=("$("$gpy" $B greenlet "$@")")
        if [ -f "$pypy_lib" ]; then p+=("$("$py" $B pypy "$@")"); else p+=(nan); fi
    done
    s=$(min "${s[@]}"); g=$(min "${g[@]}"); p=$(min "${p[@]}")
    awk -v n="$name" -v s="$s" -v g="$g" -v p="$p" -v k="$scale" -v u="$unit" \
        'BEGIN { printf "%-44s %9.2f %-2s %9.2f %-2s %9.2f %-2s %8.2fx %8.2fx\n", n, s*k, u, g*k, u, p*k, u, s/g, s/p }'
}
ROUNDS=${BENCH_ROUNDS:-3}
row "channel send+receive round trip" 1e6 us "$ROUNDS" roundtrip
row "schedule() among 1,000 tasklets" 1e6 us "$ROUNDS" schedule
# Memory per tasklet (seed example 3): RSS growth over 100,000 tasklets, per tasklet and per 100k.
memrow() {
    local name=$1 s g p=nan
    shift
    s=$("$py" $B stackless "$@"); g=$("$gpy" $B greenlet "$@")
    if [ -f "$pypy_lib" ]; then p=$("$py" $B pypy "$@"); fi
    awk -v n="$name" -v s="$s" -v g="$g" -v p="$p" \
        'BEGIN { printf "%-44s %9.0f B  %9.0f B  %9.0f B  %8.2fx %8.2fx\n", n, s, g, p, s/g, s/p
                 printf "%-44s %9.1f MB %9.1f MB %9.1f MB\n", "  = MB per 100,000", s/1e1, g/1e1, p/1e1 }'
}
memrow "RSS per unstarted tasklet (100k)" unstarted 100000
memrow "RSS per tasklet blocked on a channel (100k)" memory 100000
if [ "${BENCH_MILLION:-0}" = 1 ]; then
    printf '%-44s ' "1,000,000 tasklets blocked on channels"
    "$py" $B stackless memory 1000000 | awk '{ printf "stackless: ok, %.0f B each\n", $1 }'
fi
