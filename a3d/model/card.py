"""The Hugging Face Hub model card (README.md) that ``A3DModel.save_pretrained`` / ``push_to_hub`` write.

Metadata: ``pipeline_tag: image-to-3d``, ``library_name: a3d``, tags, the licence and, when the
weights come with an evaluation, ``model-index`` results. The evaluation travels with the weights as
``metrics.json`` in the model folder (:data:`METRICS_FILE`; the bundled model has one, written from
its training run's held-out evaluation): the training data, the protocol and PSNR / SSIM / LPIPS
overall and per view bucket. Without it the card says the weights are not evaluated. When the evaluation
names an example picture (``"example": "example.jpg"``, a file in the model folder: the input photo beside
turntable frames, written by ``scripts/model_card_example.py``), the card shows it. Every card ends with how
to cite the papers a3d implements and a3d itself (:data:`CITATION`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

__all__ = ["METRICS_FILE", "TAGS", "CITATION", "read_metrics", "build_model_card"]

METRICS_FILE = "metrics.json"
TAGS = ["gaussian-splatting", "3d", "avatar", "head", "image-to-3d", "3dgs"]
_METRIC_NAMES = {"psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS"}

CITATION = """## Citation

The network is the one-step DiT of Any3DAvatar; the heads are 3D Gaussians, rendered as in 3D Gaussian
Splatting. If you use these weights, cite the paper they implement, 3D Gaussian Splatting, and a3d:

```bibtex
@misc{any3davatar,
  title  = {Any3DAvatar},
  note   = {arXiv:2604.13856},
  url    = {https://arxiv.org/abs/2604.13856}
}
@article{kerbl3Dgaussians,
  author  = {Kerbl, Bernhard and Kopanas, Georgios and Leimk{\\"u}hler, Thomas and Drettakis, George},
  title   = {3D Gaussian Splatting for Real-Time Radiance Field Rendering},
  journal = {ACM Transactions on Graphics},
  volume  = {42},
  number  = {4},
  year    = {2023}
}
@software{a3d,
  title   = {a3d: one portrait to a 3D Gaussian-splat head},
  author  = {{the a3d authors}},
  license = {Apache-2.0}
}
```"""
"""The card's last section: BibTeX for the paper a3d implements, 3D Gaussian Splatting and a3d."""


def read_metrics(folder: str | Path) -> dict[str, Any] | None:
    """The ``metrics.json`` of a model folder, or None; ValueError for a file that is not a JSON object
    with a ``metrics`` mapping."""
    path = Path(folder) / METRICS_FILE
    if not path.is_file():
        return None
    if path.stat().st_size > 1 << 20:
        raise ValueError(f"{path}: over 1 MiB; expected a small JSON evaluation summary")
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise ValueError(f"{path}: expected a JSON object with a 'metrics' mapping")
    return data


def _metrics_table(metrics: dict[str, dict[str, float]]) -> str:
    rows = ["| views | count | PSNR (dB) ↑ | SSIM ↑ | LPIPS ↓ |", "|---|---|---|---|---|"]
    for bucket, m in metrics.items():
        rows.append(f"| {bucket} | {m.get('count', '')} | {m.get('psnr', float('nan')):.2f} | "
                    f"{m.get('ssim', float('nan')):.3f} | {m.get('lpips', float('nan')):.3f} |")
    return "\n".join(rows)


def build_model_card(config: dict[str, Any], num_parameters: int, stored_dtype: str,
                     evaluation: dict[str, Any] | None = None, repo_id: str | None = None) -> ModelCard:
    """The card of an a3d model: ``config`` (ModelConfig.to_dict()), its inference parameter count,
    the dtype of its stored weights, and its evaluation (``metrics.json`` content) if any."""
    results = []
    if evaluation is not None:
        overall = evaluation["metrics"].get("all", {})
        for key, name in _METRIC_NAMES.items():
            if key in overall:
                results.append(EvalResult(task_type="image-to-3d", dataset_type="synthetic-heads",
                                          dataset_name=evaluation.get("dataset", "held-out heads"),
                                          metric_type=key, metric_name=name, metric_value=round(overall[key], 4)))
    data = ModelCardData(library_name="a3d", pipeline_tag="image-to-3d", license="apache-2.0", tags=TAGS,
                         model_name=repo_id or "a3d", eval_results=results or None)
    size = config.get("image_size")
    arch = (f"{size}² input, patch {config.get('patch_size')}, width {config.get('width')}, "
            f"{config.get('depth')} DiT blocks, {num_parameters:,} parameters (inference), stored as {stored_dtype}")
    if evaluation is not None:
        evaluated = (f"## Evaluation\n\n{evaluation.get('dataset', '')}. {evaluation.get('protocol', '')}.\n\n"
                     f"{_metrics_table(evaluation['metrics'])}\n\nSource: {evaluation.get('source', 'metrics.json')}.")
        training = (f"## Training data\n\n{evaluation.get('training_data', 'not recorded')}.\n\n"
                    f"Training: {evaluation.get('training', 'not recorded')}.")
    example = ""
    if evaluation is not None and isinstance(evaluation.get("example"), str):
        example = (f"## Example\n\n![the input photo, then the reconstructed head turning]({evaluation['example']})"
                   f"\n\nThe input photo (left) and frames of the reconstruction's turntable.\n\n")
    if evaluation is None:
        evaluated = ("## Evaluation\n\nThese weights carry no evaluation (no metrics.json beside them). "
                     "`a3d train` evaluates on held-out synthetic heads; see docs/training.md.")
        training = "## Training data\n\nNot recorded with these weights."
    text = f"""---
{data.to_yaml()}
---

# {repo_id or "a3d model"}

A single-image 3D head reconstruction model for the a3d library: one portrait photo in, a full 360° head as
3D Gaussians out, with the one-step DiT of [Any3DAvatar](https://arxiv.org/abs/2604.13856).

- Architecture: {arch}.
- Licence: Apache-2.0.

## Use

```python
import a3d
avatar = a3d.reconstruct("portrait.jpg", model="{repo_id or "path/to/this/folder"}")
avatar.save_ply("head.ply")        # Inria 3DGS PLY
avatar.orbit_video("orbit.mp4")    # turntable
```

or `a3d reconstruct portrait.jpg -o out/ --model <folder>`. In memory the head sits at the origin, y up, face
toward +z, in head units (crown to chin about 1.1); files are written in the y-down world of other 3DGS tools.

{example}## Intended use

Reconstructing a plausible 3D head from one frontal or near-frontal portrait, for previews, avatars and
prototypes in 3DGS viewers and engines, for research on single-image 3D reconstruction, and as a starting
point for training larger models. `avatar.confidence` marks, per Gaussian, what the photo showed and what
the model guessed.

## Limitations

- Trained on synthetic heads only (no photographs of people): real photos show a domain gap (hair can come
  out as a hat, skin and clothing are simplified), and the sides and back of the head are guesses.
- Small: the `tiny` preset is blurry next to the paper's `paper` preset; see the metrics.
- Identity is approximate. a3d's evaluation (`a3d eval`) embeds the input photo and renders of the head with
  dlib's face-recognition network and reports their distance: dlib calls two faces the same person below
  0.6, and the photos of docs/eval.md score about 0.6 facing the camera and more from the side. A render
  that scores like the photo is a likeness in that network's eyes, not proof that it is the same person.
- Not for identification, biometric or surveillance use: the output is a generated shape, not a measurement
  of the person.

{training}

{evaluated}

{CITATION}
"""
    return ModelCard(text)
