"""Where the files that ship inside the package live: ``a3d/assets/``.

The bundled model (``models/<name>/``), the morphable head basis, the face detector and segmenter
(``mediapipe/``), the LPIPS weights (``lpips/``) and the example head. Each module that reads one names it
relative to :data:`ASSET_DIR`; provenance and licence of every file are in ``a3d/assets/README.md``.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["ASSET_DIR"]

ASSET_DIR = Path(__file__).resolve().parents[1] / "assets"
"""The package's asset folder (absolute): read-only data installed with a3d, nothing downloaded."""
