"""int8 weight storage (a3d.model.quantize): per-channel error bounds, what is and is not quantised, a model
saved as int8 loads as float, computes nearly what the float model does and saves back the same
tensors; malformed int8 files are refused with the file's name."""
import pytest
import torch
from safetensors.torch import load_file, save_file

from a3d.train.checkpoint import export
from a3d.errors import InputError
from a3d.model.network import A3DModel
from a3d.model.weights import load_weights
from a3d.model.quantize import INT8_FORMAT, METADATA_KEY, SCALE_SUFFIX, dequantize_state, quantize_state
from a3d.train.config import TrainConfig
from shared import random_model

SMALL = dict(image_size=32, width=64, depth=2, heads=2, decoder_width=8, avas_width=8, input_width=4)


def test_quantize_bounds_the_error_per_channel():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(48, 64, generator=g) * torch.logspace(-3, 1, 48)[:, None]  # channels of very different sizes
    w[5] = 0.0  # an all-zero channel
    conv = torch.randn(16, 8, 3, 3, generator=g)
    state = {"a.weight": w, "b.weight": conv, "a.bias": torch.randn(48, generator=g),
             "tiny.weight": torch.randn(4, 4, generator=g), "embed": torch.randn(1, 40, 64, generator=g),
             "steps": torch.tensor(3)}
    stored = quantize_state(state)
    assert stored["a.weight"].dtype == torch.int8 and stored["b.weight"].dtype == torch.int8
    assert stored["a.weight" + SCALE_SUFFIX].shape == (48,) and stored["b.weight" + SCALE_SUFFIX].shape == (16,)
    # biases, small weights and tensors not named *.weight stay float16; integers stay as they are
    assert {stored[k].dtype for k in ("a.bias", "tiny.weight", "embed")} == {torch.float16}
    assert stored["steps"].dtype == torch.int64
    back = dequantize_state(stored)
    assert set(back) == set(state)
    for name in ("a.weight", "b.weight"):
        rows, err = state[name].reshape(len(state[name]), -1), (back[name] - state[name]).reshape(len(state[name]), -1)
        # at most half a step of each channel's own scale: small channels keep their precision
        assert (err.abs().amax(1) <= rows.abs().amax(1) / 127 / 2 * 1.001 + 1e-12).all()
    assert torch.equal(back["a.weight"][5], torch.zeros(64))
    assert torch.equal(quantize_state(back)["a.weight"], stored["a.weight"])  # idempotent values
    with pytest.raises(ValueError, match="scale"):
        dequantize_state({k: v for k, v in stored.items() if k != "a.weight" + SCALE_SUFFIX}, "f.safetensors")
    with pytest.raises(ValueError, match="belongs to no weight"):
        dequantize_state({"x.weight" + SCALE_SUFFIX: torch.ones(3)})


def test_int8_model_loads_computes_close_and_round_trips(seed, tmp_path):
    model = random_model(seed, **SMALL)
    model.save_pretrained(tmp_path / "f32")
    model.stored_dtype = torch.int8
    model.save_pretrained(tmp_path / "q")
    f32 = (tmp_path / "f32" / "model.safetensors").stat().st_size
    q8 = (tmp_path / "q" / "model.safetensors").stat().st_size
    assert q8 < 0.4 * f32  # a quarter of float32 for the big weights, plus scales and float16 for the rest
    loaded = A3DModel.from_pretrained(tmp_path / "q")
    assert loaded.stored_dtype == torch.int8 and next(loaded.parameters()).dtype == torch.float32
    image, g0 = torch.rand(2, 3, 32, 32), model.noise(2, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        a, b = model.one_step(image, g0), loaded.one_step(image, g0)
    for name in ("means", "colors", "opacities"):
        x, y = getattr(a, name), getattr(b, name)
        # on the average within 0.5% (measured: < 0.1%); the largest error of a smooth output within 2% (the
        # carve is steep in the depth, so a rare opacity moves more)
        assert (x - y).abs().mean() < 0.005 * x.abs().mean(), name
        if name != "opacities":
            assert (x - y).abs().max() < 0.02 * x.abs().max(), name
        assert not torch.equal(x, y)  # the weights did change: the bounds above are not vacuous
    loaded.save_pretrained(tmp_path / "again")
    first, second = load_file(tmp_path / "q" / "model.safetensors"), load_file(tmp_path / "again" / "model.safetensors")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_export_and_train_config_take_the_storage_dtype(tmp_path):
    model = random_model(1, **SMALL)
    export(model, tmp_path / "e", "int8")
    assert A3DModel.from_pretrained(tmp_path / "e").stored_dtype == torch.int8
    with pytest.raises(InputError, match="dtype"):
        export(model, tmp_path / "x", "int4")
    with pytest.raises(InputError, match="export_dtype"):
        TrainConfig(export_dtype="int4")


def test_malformed_int8_files_are_refused(tmp_path):
    stored = quantize_state(random_model(2, **SMALL).state_dict())
    plain = tmp_path / "plain.safetensors"
    save_file(stored, plain)  # int8 tensors without the format in the metadata
    with pytest.raises(InputError, match="not floating point"):
        load_weights(plain)
    unknown = tmp_path / "unknown.safetensors"
    save_file(stored, unknown, metadata={METADATA_KEY: "int4-magic"})
    with pytest.raises(InputError, match="unknown weight quantisation"):
        load_weights(unknown)
    name = next(k for k, v in stored.items() if v.dtype == torch.int8)
    missing = tmp_path / "missing.safetensors"
    save_file({k: v for k, v in stored.items() if k != name + SCALE_SUFFIX}, missing,
              metadata={METADATA_KEY: INT8_FORMAT})
    with pytest.raises(InputError, match="missing.safetensors"):
        load_weights(missing)
