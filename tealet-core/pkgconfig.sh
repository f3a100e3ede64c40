#!/usr/bin/env bash
# Write tealet.pc for a built tealet-core.
# Usage: bash tealet-core/pkgconfig.sh LIBDIR OUTDIR
#   LIBDIR: where libtealet_core.{a,so} are (e.g. target/release); OUTDIR: where tealet.pc goes.
# Then: PKG_CONFIG_PATH=OUTDIR cc prog.c $(pkg-config --cflags --libs tealet)
set -euo pipefail
libdir=$(cd "$1" && pwd)
incdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/include" && pwd)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$(dirname "${BASH_SOURCE[0]}")/Cargo.toml" | head -n 1)
mkdir -p "$2"
cat > "$2/tealet.pc" <<PC
libdir=$libdir
includedir=$incdir

Name: tealet
Description: stackful one-shot coroutines (tealets) with a C ABI
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -ltealet_core
Libs.private: -lpthread -ldl -lm
PC
