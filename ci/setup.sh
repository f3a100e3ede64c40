#!/usr/bin/env bash
# Installs everything the tests and the demo need on a fresh Debian machine:
# cross compilers, qemu-user, pypy3, rustup targets and one venv per CPython version.
source "$(dirname "$0")/lib.sh"

APT_PACKAGES=(gcc-aarch64-linux-gnu gcc-riscv64-linux-gnu libc6-dev-arm64-cross
              libc6-dev-riscv64-cross qemu-user pypy3 valgrind pkg-config gdb)
RUST_TARGETS=(aarch64-unknown-linux-gnu riscv64gc-unknown-linux-gnu)
PIP_PACKAGES=(maturin==1.9.6 pytest==8.4.2)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

installed_targets=$(rustup target list --installed)
for t in "${RUST_TARGETS[@]}"; do
    grep -qx "$t" <<<"$installed_targets" || { log "rustup target add $t"; rustup target add "$t"; }
done

mkdir -p "$VENVS"
for v in "${PY_VERSIONS[@]}"; do
    py=$(find_python "$v") || { log "CPython $v not found"; exit 1; }
    if [ ! -x "$(venv_python "$v")" ]; then
        log "venv for CPython $v ($py)"
        "$py" -m venv "$VENVS/py$v"
    fi
    "$(venv_python "$v")" -m pip install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
done

if [ ! -x "$VENVS/pypy/bin/python" ]; then
    log "venv for PyPy (the reference _continuation)"
    pypy3 -m venv "$VENVS/pypy"
fi
"$VENVS/pypy/bin/python" -m pip install -q --disable-pip-version-check pytest==8.4.2
