#!/usr/bin/env bash
# tealet-asm + tealet-core: native tests, the same tests under qemu-user for aarch64 and riscv64,
# the C program (header + one cc line) natively and under valgrind.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

rc=0
log "core: cargo test (x86_64, native)"
cargo test -p tealet-asm -p tealet-core || rc=1

for target in aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu; do
    log "core: cargo test ($target, qemu-user)"
    cargo test -p tealet-asm -p tealet-core --target "$target" || rc=1
done

log "core: C program"
cargo build --release -p tealet-core
out=$(mktemp -d)
bash tealet-core/pkgconfig.sh "$ROOT/target/release" "$out"
cc -Wall -Wextra -Werror -O1 $(PKG_CONFIG_PATH="$out" pkg-config --cflags tealet) tests/c/gen_ping.c \
    $(PKG_CONFIG_PATH="$out" pkg-config --libs tealet) -o "$out/gen_ping"
export LD_LIBRARY_PATH="$ROOT/target/release"
if "$out/gen_ping"; then echo "1 passed; 0 failed (C program)"; else echo "0 passed; 1 failed (C program)"; rc=1; fi

log "core: C program under valgrind"
if valgrind -q --error-exitcode=1 "$out/gen_ping"; then
    echo "1 passed; 0 failed (C program under valgrind)"
else
    echo "0 passed; 1 failed (C program under valgrind)"; rc=1
fi
rm -rf "$out"
exit $rc
