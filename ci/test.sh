#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs every part and sums the results.
# Usage: bash ci/test.sh [part ...]   (a part is a ci/test-<part>.sh script; default: every one)
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

PARTS=("$@")
if [ ${#PARTS[@]} -eq 0 ]; then
    for script in ci/test-*.sh; do part=${script#ci/test-}; PARTS+=("${part%.sh}"); done
fi

bash ci/setup.sh

LOGS="$ROOT/.cache/ci-logs"
rm -rf "$LOGS"; mkdir -p "$LOGS"
failed_parts=()
for part in "${PARTS[@]}"; do
    log "part: $part"
    start=$SECONDS
    if ! bash "ci/test-$part.sh" 2>&1 | tee "$LOGS/$part.log"; then
        failed_parts+=("$part")
    fi
    log "part $part took $((SECONDS - start)) s"
done

# pytest ends with "N passed, M failed ... in Xs"; cargo test with "N passed; M failed".
sum() {
    { grep -hoE "[0-9]+ $1[;,) ]" "$LOGS"/*.log 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}'
}
passed=$(sum passed); failed=$(sum failed)
if [ ${#failed_parts[@]} -gt 0 ]; then
    log "failed parts: ${failed_parts[*]}"
    [ "$failed" -gt 0 ] || failed=${#failed_parts[@]}
fi
echo
echo "total: $passed passed, $failed failed"
[ ${#failed_parts[@]} -eq 0 ]
