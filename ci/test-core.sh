#!/usr/bin/env bash
# tealet-asm + tealet-core: native tests, the same tests under qemu-user for aarch64 and riscv64,
# the C program (header + one cc line) natively and under valgrind, a gdb backtrace check, and
# the tool hooks (ASan, valgrind) with their cargo features on.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

rc=0
log "core: cargo test (x86_64, native)"
cargo test -p tealet-asm -p tealet-core || rc=1

for target in aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu; do
    log "core: cargo test ($target, qemu-user)"
    cargo test -p tealet-asm -p tealet-core --target "$target" || rc=1
done

log "core: aarch64 asm object carries the BTI property note and starts every entry with bti c"
cargo build -p tealet-core --target aarch64-unknown-linux-gnu
lib="$ROOT/target/aarch64-unknown-linux-gnu/debug/libtealet_core.a"
member=$(aarch64-linux-gnu-nm -A "$lib" 2>/dev/null | grep -E 'tealet_asm4arch7aarch646switch' | grep ' T ' | head -n 1 | cut -d: -f2)
objdir=$(mktemp -d)
(cd "$objdir" && ar x "$lib" "$member")
entries=$(aarch64-linux-gnu-objdump -d "$objdir/$member" | grep -A1 -E '<_ZN10tealet_asm4arch7aarch64[0-9]+(switch|jump|trampoline)17h[0-9a-f]+E>:' | grep -c 'bti[[:space:]]c' || true)
if aarch64-linux-gnu-readelf -n "$objdir/$member" | grep -q 'AArch64 feature: BTI' && [ "$entries" = 3 ]; then
    echo "1 passed; 0 failed (aarch64 BTI note and landing pads)"
else
    aarch64-linux-gnu-readelf -n "$objdir/$member"; echo "bti c entries: $entries"
    echo "0 passed; 1 failed (aarch64 BTI note and landing pads)"; rc=1
fi
rm -rf "$objdir"

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
log "core: gdb backtrace from inside a tealet ends at the entry trampoline"
# The generator's switch line, hit on its 4th resume: dedicated policy first, then shared.
line=$(grep -n 'tealet_switch(tealet_previous(), &v);' tests/c/gen_ping.c | head -n 1 | cut -d: -f1)
cc -g -O1 $(PKG_CONFIG_PATH="$out" pkg-config --cflags tealet) tests/c/gen_ping.c \
    $(PKG_CONFIG_PATH="$out" pkg-config --libs tealet) -o "$out/gen_ping_g"
bt=$(gdb -batch -nx -ex "break gen_ping.c:$line if i == 3" -ex run -ex bt -ex continue -ex bt \
    "$out/gen_ping_g" 2>&1 | grep -E '^#[0-9]|Backtrace stopped|corrupt' || true)
echo "$bt"
# Each backtrace: gen_run, entry, trampoline, nothing more.
if [ "$(echo "$bt" | grep -c '^#0 .*gen_run')" = 2 ] && [ "$(echo "$bt" | grep -c '^#2 .*trampoline')" = 2 ] \
    && ! echo "$bt" | grep -qE '^#3|Backtrace stopped|corrupt'; then
    echo "1 passed; 0 failed (gdb backtrace)"
else
    echo "0 passed; 1 failed (gdb backtrace)"; rc=1
fi

log "core: tool hooks (features asan, valgrind)"
cargo build --release -p tealet-core --features asan,valgrind
cflags=$(PKG_CONFIG_PATH="$out" pkg-config --cflags tealet)
libs=$(PKG_CONFIG_PATH="$out" pkg-config --libs tealet)
cc -Wall -Wextra -Werror -g -O1 -fsanitize=address $cflags tests/c/fibers.c $libs -o "$out/fibers_asan"
cc -Wall -Wextra -Werror -g -O1 $cflags tests/c/fibers.c $libs -o "$out/fibers"
if "$out/fibers_asan" 2> "$out/asan.log" && ! grep -qE 'WARNING: ASan|ERROR: AddressSanitizer' "$out/asan.log"; then
    echo "1 passed; 0 failed (C program with ASan)"
else
    cat "$out/asan.log"; echo "0 passed; 1 failed (C program with ASan)"; rc=1
fi
for prog in fibers gen_ping; do
    if valgrind --error-exitcode=1 "$out/$prog" 2> "$out/vg.log" && ! grep -q 'client switching stacks' "$out/vg.log"; then
        echo "1 passed; 0 failed ($prog under valgrind, stacks registered)"
    else
        grep -E 'Warning|Invalid|ERROR' "$out/vg.log" | head -n 20
        echo "0 passed; 1 failed ($prog under valgrind, stacks registered)"; rc=1
    fi
done
# Leave the default build in place for later users of target/release.
cargo build --release -p tealet-core
rm -rf "$out"
exit $rc
