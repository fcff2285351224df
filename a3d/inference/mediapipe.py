"""The bundled MediaPipe models (``a3d/assets/mediapipe``) and the runtime that runs them, ``ai-edge-litert``.

Three ``.tflite`` files: BlazeFace short range (128² input, faces that fill much of the frame), BlazeFace
full range (192², small and distant faces) and selfie segmentation (256², the person matte). LiteRT is a
core dependency of a3d on the platforms that have its wheels (Linux x86_64 and aarch64 with glibc 2.27+,
macOS on Apple silicon, Windows x86_64; Python 3.10-3.14); elsewhere :func:`require_face_models` raises a
:class:`a3d.errors.SetupError` that says so, and only ``preprocess=False`` works.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..core.assets import ASSET_DIR
from ..errors import SetupError

__all__ = ["SHORT_RANGE", "FULL_RANGE", "SEGMENTER", "has_face_models", "require_face_models", "run_model"]

_ASSETS = ASSET_DIR / "mediapipe"
SHORT_RANGE = _ASSETS / "face_detection_short_range.tflite"
FULL_RANGE = _ASSETS / "face_detection_full_range_sparse.tflite"
SEGMENTER = _ASSETS / "selfie_segmentation.tflite"

_lock = threading.Lock()
_interpreters: dict[Path, Any] = {}


def has_face_models() -> bool:
    """Whether face detection and segmentation can run (ai-edge-litert installed, the model files present)."""
    if importlib.util.find_spec("ai_edge_litert") is None:
        return False
    return all(p.is_file() for p in (SHORT_RANGE, FULL_RANGE, SEGMENTER))


def require_face_models() -> None:
    """Raise :class:`SetupError` saying what is missing unless :func:`has_face_models`."""
    if importlib.util.find_spec("ai_edge_litert") is None:
        raise SetupError("face framing needs ai-edge-litert, which is not installed: `pip install ai-edge-litert` "
                         "(wheels for Linux x86_64/aarch64, macOS on Apple silicon and Windows x86_64). On other "
                         "platforms frame the portrait like the model's input yourself (eyes and mouth where "
                         "a3d.core.framing.face_anchors_uv puts them) and pass preprocess=False (CLI: --no-preprocess)")
    missing = [p.name for p in (SHORT_RANGE, FULL_RANGE, SEGMENTER) if not p.is_file()]
    if missing:
        raise SetupError(f"the bundled MediaPipe models are missing from {_ASSETS}: {', '.join(missing)} "
                         f"(reinstall a3d)")


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send file descriptor 2 to /dev/null for a moment: LiteRT's C++ logs "INFO: Created TensorFlow
    Lite XNNPACK delegate for CPU." there when an interpreter is built, which would leak into every
    terminal and notebook (ipykernel forwards fd 2). Python exceptions still propagate."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def run_model(model: Path, x: np.ndarray) -> list[np.ndarray]:
    """Run a .tflite model on one float32 input [1, H, W, 3]; its outputs in the model's order."""
    from ai_edge_litert.interpreter import Interpreter

    with _lock:  # a LiteRT interpreter is not thread-safe
        it = _interpreters.get(model)
        if it is None:
            with _native_stderr_silenced():
                it = Interpreter(model_path=str(model), num_threads=max(1, min(4, os.cpu_count() or 1)))
                it.allocate_tensors()
            _interpreters[model] = it
        it.set_tensor(it.get_input_details()[0]["index"], x.astype(np.float32))
        it.invoke()
        return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]
