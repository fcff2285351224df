#!/usr/bin/env bash
# Assembles the Hugging Face Space in OUT_DIR: this folder's app.py, README.md (the Space's
# metadata), requirements.txt and examples/, plus the a3d package from the repository beside app.py
# (Python sources and assets/, bundled model weights included once they exist). The compiled
# extension is left out: on the Space a3d runs its pure-PyTorch backend (see a3d.ops.backend).
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
cp "$REPO/demo/app.py" "$REPO/demo/README.md" "$REPO/demo/requirements.txt" "$REPO/LICENSE" "$OUT/"
cp -r "$REPO/demo/examples" "$OUT/examples"
cp -r "$REPO/a3d" "$OUT/a3d"
find "$OUT/a3d" \( -name "__pycache__" -o -name "*.so" -o -name "*.pyd" -o -name "*.pyi" \) -prune -exec rm -rf {} +
echo "Space assembled in $OUT ($(du -sh "$OUT" | cut -f1))"
