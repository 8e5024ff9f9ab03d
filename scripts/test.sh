#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Everything CI runs: style and layering checks, unit and integration tests, then both again
# under AddressSanitizer + UndefinedBehaviorSanitizer. Run as root from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
# and the real clients and toolchains the tests drive (WASI modules are built from C)
scripts/deps.sh awscli chromium clang lld wasi-libc libclang-rt-dev-wasm32
PY=/usr/bin/python3 # Debian's python3, which has python3-pytest

step() { printf '\n== %s\n' "$*"; }

step "format (clang-format, .clang-format)"
mapfile -t sources < <(git ls-files '*.c' '*.h')
clang-format --dry-run --Werror "${sources[@]}"

step "layers: no include reaches up or sideways by path"
if grep -nE '#include "\.\./' "${sources[@]}"; then
    echo "relative includes bypass the layer rules (each layer sees only itself and below)" >&2
    exit 1
fi

step "build"
[ -d build ] || meson setup build
ninja -C build

step "unit tests"
meson test -C build --suite unit --print-errorlogs

step "integration tests"
$PY -m pytest -q -p no:cacheprovider tests/integration

step "corpus: real programs packed, run and served (tests/corpus; once, not under ASan)"
HUSK_CORPUS_REPORT="$PWD/build/corpus.md" $PY -m pytest -q -p no:cacheprovider tests/corpus

step "sanitizers: build (ASan + UBSan)"
[ -d build-asan ] || meson setup build-asan -Dbuildtype=debug -Db_sanitize=address,undefined \
    -Db_lundef=false
ninja -C build-asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

step "sanitizers: unit tests"
meson test -C build-asan --suite unit --print-errorlogs

step "sanitizers: integration tests"
HUSK="$PWD/build-asan/husk" HUSK_PROBE="$PWD/build/tests/integration/probe/probe" $PY -m pytest -q -p no:cacheprovider tests/integration
