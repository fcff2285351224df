#!/usr/bin/env bash
# Assembles the Hugging Face Space in OUT_DIR: this folder's app.py, README.md (the Space's
# metadata), requirements.txt, packages.txt and examples/, plus the a3d package from the repository
# beside app.py (Python sources and assets/, the bundled model weights) with the extension's sources
# in a3d/csrc/. No compiled extension is copied: when the Space starts, app.py has a3d compile its
# kernels with ninja (a3d/core/_jit.py; about a minute on 2 cores), with the g++ that packages.txt installs.
#
#   bash demo/make_space.sh OUT_DIR      # then push OUT_DIR to the Space (weights > 10 MB need git-lfs)
set -euo pipefail
OUT="${1:?usage: bash demo/make_space.sh OUT_DIR}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then
    echo "make_space: $OUT exists and is not empty; give a new folder" >&2
    exit 1
fi
mkdir -p "$OUT"
cp "$REPO/demo/app.py" "$REPO/demo/README.md" "$REPO/demo/requirements.txt" "$REPO/demo/packages.txt" \
    "$REPO/LICENSE" "$OUT/"
cp -r "$REPO/demo/examples" "$OUT/examples"
cp -r "$REPO/a3d" "$OUT/a3d"
find "$OUT/a3d" \( -name "__pycache__" -o -name "*.so" -o -name "*.pyd" -o -name "*.pyi" \) -prune -exec rm -rf {} +
mkdir -p "$OUT/a3d/csrc"  # where an a3d without a3d/_C finds the sources to compile (as setup.py ships them)
cp "$REPO"/csrc/*.cpp "$REPO"/csrc/*.cu "$REPO"/csrc/*.h "$REPO"/csrc/*.cuh "$OUT/a3d/csrc/"
echo "Space assembled in $OUT ($(du -sh "$OUT" | cut -f1))"
