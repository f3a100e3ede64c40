# Shared helpers for the ci/ scripts. Source it; do not run it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENVS="$ROOT/.venv"
PY_VERSIONS=(3.9 3.10 3.11 3.12 3.13)

log() { printf '\n== %s\n' "$*" >&2; }
# The smallest of its numeric arguments (empty ones ignored): benchmarks keep the best sample.
min() { printf '%s\n' "$@" | grep -v '^$' | sort -g | head -n 1; }

# The interpreter for a minor version: the newest pyenv build of it, else python3.X on PATH.
find_python() {
    local minor=$1 root cand
    if root=$(pyenv root 2>/dev/null); then
        cand=$(ls -d "$root"/versions/"$minor".* 2>/dev/null | sort -V | tail -n 1 || true)
        if [ -n "$cand" ] && [ -x "$cand/bin/python" ]; then
            echo "$cand/bin/python"; return 0
        fi
    fi
    command -v "python$minor" || return 1
}

venv_python() { echo "$VENVS/py$1/bin/python"; }

# Builds bindings-py into the venv of the interpreter $1 unless `import $2` works there
# (default `_continuation`; pass e.g. "_continuation; _continuation.check_frames" to insist on
# a recent build). maturin is found on the venv's PATH, so it must be absolute.
ensure_binding() {
    local py=$1 probe=${2:-_continuation} so
    so=$("$py" -c "import $probe, _continuation; print(_continuation.__file__)" 2>/dev/null)
    # Rebuilt when missing or older than any source of it (a bench must not measure a stale one).
    if [ -z "$so" ] || [ -n "$(find bindings-py tealet-core tealet-asm Cargo.toml -path '*/target' -prune \
            -o -type f -newer "$so" -print -quit)" ]; then
        PATH="$(cd "$(dirname "$py")" && pwd):$PATH" "$py" -m pip install -q --no-build-isolation --force-reinstall ./bindings-py
    fi
}

# The benchmarks' peer: a venv with C greenlet 3.5.x for CPython $1, kept apart from the test
# venvs. greenlet 3.5 needs CPython 3.10+; elsewhere the newest release that installs there is
# the peer (3.2.5 on 3.9): callers print greenlet.__version__. Prints its interpreter.
greenlet_peer() {
    local v=$1 venv="$VENVS/greenlet-bench-$1"
    [ -x "$venv/bin/python" ] || "$(find_python "$v")" -m venv "$venv" >&2
    if ! "$venv/bin/python" -c "import greenlet" 2>/dev/null; then
        "$venv/bin/python" -m pip install -q "greenlet>=3.5,<3.6" >&2 2>/dev/null ||
            "$venv/bin/python" -m pip install -q greenlet >&2 || {
                echo "no greenlet release installs on CPython $v: no peer" >&2
                return 1
            }
    fi
    echo "$venv/bin/python"
}
