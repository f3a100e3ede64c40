#!/usr/bin/env bash
# tealet-core benchmarks, peers side by side in one run (see tealet-core/README.md for the table).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
cargo bench -p tealet-core --bench switch -- --warm-up-time 1 --measurement-time 3 "$@"
