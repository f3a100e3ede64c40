#!/usr/bin/env bash
# Side by side in one run: greenlet-py (pure Python on _continuation) against C greenlet 3.5.x on
# the same CPython. The C greenlet lives in its own venv (.venv/greenlet-bench-3.X), never in the
# test venvs. Usage: bash ci/bench-greenlet.sh [3.X ...]   (default: 3.11 3.12 3.13)
# GREENLET_BENCH_INSTRUCTIONS=1 adds instructions per operation under callgrind (valgrind): the
# difference of two runs of different lengths, independent of the load on a shared machine.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

B=greenlet-py/bench/bench.py
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(3.11 3.12 3.13)
for v in "${versions[@]}"; do
    py=$(venv_python "$v")
    gpy=$(greenlet_peer "$v")
    ensure_binding "$py"
    "$py" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps ./greenlet-py
    gv=$("$gpy" -c "import greenlet; print(greenlet.__version__)")
    echo
    printf 'CPython %s: greenlet-py against C greenlet %s\n' "$v" "$gv"
    printf '%-38s %14s %14s %8s %8s\n' measure greenlet-py "C greenlet" ratio goal
    # Each side ROUNDS times, alternating, best kept: a burst of load on this shared VM then
    # spoils one sample of each side, not one side's only sample.
    row() {
        local name=$1 what=$2 scale=$3 unit=$4 goal=$5 ours="" c="" i
        for ((i = 0; i < ${GREENLET_BENCH_ROUNDS:-3}; i++)); do
            ours=$(min "$ours" "$("$py" $B "$what")")
            c=$(min "$c" "$("$gpy" $B "$what")")
        done
        awk -v n="$name" -v o="$ours" -v c="$c" -v s="$scale" -v u="$unit" -v t="$goal" \
            'BEGIN { printf "%-38s %10.1f %-3s %10.1f %-3s %7.3fx %8s\n", n, o*s, u, c*s, u, o/c, t }'
    }
    row "switch round trip" roundtrip 1e9 ns "<=1.0x"
    row "create+run+finish" lifecycle 1e9 ns "<=0.15x"
    row "RSS per suspended (100k, 3 deep)" memory 1 B "<=0.5x"
    if [ "${GREENLET_BENCH_INSTRUCTIONS:-0}" = 1 ]; then
        instructions() {  # $1 python, $2 measure: instructions per operation
            local n a b
            for n in 2000 22000; do
                b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" $B count "$2" $n 2>&1 |
                    sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
                [ $n = 2000 ] && a=$b
            done
            echo $(( (b - a) / 20000 ))
        }
        irow() {
            local ours c
            ours=$(instructions "$py" "$2"); c=$(instructions "$gpy" "$2")
            awk -v n="$1" -v o="$ours" -v c="$c" -v t="$3" \
                'BEGIN { printf "%-38s %10d ins %10d ins %7.3fx %8s\n", n, o, c, o/c, t }'
        }
        # No goal: C greenlet's create+run+finish is bound by memory traffic (stack copies),
        # not instructions; these rows locate our cost, the time rows judge it.
        irow "switch round trip, instructions" roundtrip -
        irow "create+run+finish, instructions" lifecycle -
    fi
done
