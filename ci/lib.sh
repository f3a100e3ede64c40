# Shared helpers for the ci/ scripts. Source it; do not run it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENVS="$ROOT/.venv"
PY_VERSIONS=(3.9 3.10 3.11 3.12 3.13)

log() { printf '\n== %s\n' "$*" >&2; }

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
