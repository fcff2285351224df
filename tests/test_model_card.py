"""save_pretrained keeps the stored dtype and writes a real model card; push_to_hub uploads that folder
(the Hub's HTTP API replaced by a local stand-in for HfApi: nothing leaves the machine)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open

from a3d.api import DEFAULT_MODEL_DIR
from a3d.model.config import get_config
from a3d.model.network import A3DModel


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def _dtypes(path) -> set:
    with safe_open(str(path), "pt") as f:
        return {f.get_slice(k).get_dtype() for k in f.keys()}


def test_bundled_model_round_trips_in_fp16_with_its_card(tmp_path):
    model = A3DModel.from_pretrained(str(DEFAULT_MODEL_DIR))
    assert next(model.parameters()).dtype == torch.float32  # computes in float32
    assert _dtypes(DEFAULT_MODEL_DIR / "model.safetensors") == {"F16"}
    model.save_pretrained(tmp_path / "copy")
    out = tmp_path / "copy" / "model.safetensors"
    assert _dtypes(out) == {"F16"}, "save_pretrained widened the stored fp16 weights"
    assert abs(out.stat().st_size - (DEFAULT_MODEL_DIR / "model.safetensors").stat().st_size) < 64 * 1024
    again = A3DModel.from_pretrained(str(tmp_path / "copy"))
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k  # fp16 -> fp32 -> fp16 is exact

    card = (tmp_path / "copy" / "README.md").read_text()
    meta = _front_matter(card)
    assert meta["pipeline_tag"] == "image-to-3d" and meta["library_name"] == "a3d"
    assert meta["license"] == "apache-2.0"
    assert {"gaussian-splatting", "3d", "avatar", "head"} <= set(meta["tags"])
    results = meta["model-index"][0]["results"][0]
    metrics = {m["type"]: m["value"] for m in results["metrics"]}
    expect = json.loads((DEFAULT_MODEL_DIR / "metrics.json").read_text())["metrics"]["all"]
    assert metrics["psnr"] == pytest.approx(expect["psnr"], abs=1e-3)
    assert metrics["lpips"] == pytest.approx(expect["lpips"], abs=1e-3)
    assert "More Information Needed" not in card
    for words in ("Intended use", "Limitations", "Training data", "synthetic", "CC0", "float16",
                  f"{expect['psnr']:.2f}", "## Citation", "arXiv:2604.13856",
                  "3D Gaussian Splatting for Real-Time Radiance Field Rendering",
                  "@software{a3d", "dlib", "0.6"):
        assert words in card, words
    assert card.index("## Limitations") < card.index("## Citation") and card.rstrip().endswith("```")
    assert json.loads((tmp_path / "copy" / "metrics.json").read_text())["metrics"]["all"] == expect


def test_model_built_in_code_saves_its_own_dtype_and_says_it_is_unevaluated(tmp_path):
    model = A3DModel(get_config("tiny", depth=1, width=64, heads=2))
    model.save_pretrained(tmp_path / "m")
    assert _dtypes(tmp_path / "m" / "model.safetensors") == {"F32"}
    card = (tmp_path / "m" / "README.md").read_text()
    assert _front_matter(card)["pipeline_tag"] == "image-to-3d"
    assert "no evaluation" in card and not (tmp_path / "m" / "metrics.json").exists()
    model.half().save_pretrained(tmp_path / "h")
    assert _dtypes(tmp_path / "h" / "model.safetensors") == {"F16"}


def test_push_to_hub_uploads_weights_config_and_card(tmp_path, monkeypatch):
    from huggingface_hub import HfApi
    from huggingface_hub import RepoUrl

    uploaded = {}

    def create_repo(self, repo_id, **kwargs):
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        uploaded.update({p.name: p.read_bytes() for p in Path(folder_path).iterdir()})
        return "commit"

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    model = A3DModel.from_pretrained(str(DEFAULT_MODEL_DIR))
    model.push_to_hub("someone/a3d-tiny", token="hf_offline_test", model_card_kwargs={"repo_id": "someone/a3d-tiny"})
    assert {"model.safetensors", "config.json", "README.md", "metrics.json"} <= set(uploaded)
    assert b"someone/a3d-tiny" in uploaded["README.md"] and b"image-to-3d" in uploaded["README.md"]
    assert len(uploaded["model.safetensors"]) < 1.1 * (DEFAULT_MODEL_DIR / "model.safetensors").stat().st_size


def test_card_shows_the_example_picture_its_evaluation_names():
    from a3d.model.card import build_model_card

    evaluation = {"metrics": {"all": {"psnr": 20.0, "ssim": 0.8, "lpips": 0.1, "count": 4}}, "example": "example.jpg"}
    card = str(build_model_card({"image_size": 64}, 10, "float16", evaluation))
    assert "## Example" in card and "](example.jpg)" in card
    assert "## Example" not in str(build_model_card({"image_size": 64}, 10, "float16", {"metrics": {}}))


def test_the_cards_example_picture_travels_with_the_model(tmp_path):
    """The bundled model's metrics.json names its example picture; a saved copy carries the file, so the card's
    link resolves."""
    from a3d.api import DEFAULT_MODEL_DIR

    model = A3DModel.from_pretrained(DEFAULT_MODEL_DIR)
    assert model.evaluation["example"] == "example.jpg"
    model.save_pretrained(tmp_path)
    assert (tmp_path / "example.jpg").read_bytes() == (DEFAULT_MODEL_DIR / "example.jpg").read_bytes()
    assert "](example.jpg)" in (tmp_path / "README.md").read_text()
