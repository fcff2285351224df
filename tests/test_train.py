"""The trainer: schedule, metrics, the loss going down, exact resume, export, CLI (CPU, small)."""
import argparse
import dataclasses
import json
import math

import pytest
import torch
from PIL import Image

from a3d.train.batches import FolderBatches, SyntheticBatches
from a3d.core.cameras import Cameras, canonical_cameras, orbit_cameras, save_cameras_json
from a3d.cli import build_parser, config_from_args
from a3d.data.dataset import CAMERA_FILE
from a3d.eval.evaluate import bucket, eval_azimuths, plot_log
from a3d.eval.metrics import psnr, ssim
from a3d.model.network import A3DModel
from a3d.train.objective import compute_loss
from a3d.core.rendering import render
from a3d.errors import InputError
from a3d.train.loop import CKPT_NAME, LOG_NAME, train
from a3d.train.config import TrainConfig, get_lr
from shared import assert_same_checkpoints, blob_head

TINY = dict(image_size=32, width=64, depth=2, heads=2, decoder_width=16, avas_width=8)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two captures in the documented layout: the 4 canonical views and 4 others at 32²."""
    root = tmp_path_factory.mktemp("heads")
    for h in range(2):
        cams = Cameras.cat([canonical_cameras(32), orbit_cameras(4, size=32, azimuth_start=30.0, elevation=10.0)])
        rgb = render(blob_head(150, h), cams, (1.0, 1.0, 1.0)).rgb
        folder = root / f"head{h}"
        folder.mkdir()
        save_cameras_json(folder / CAMERA_FILE, cams)
        for i, im in enumerate(rgb):
            Image.fromarray((im.clamp(0, 1) * 255 + 0.5).byte().numpy()).save(folder / f"{i:03d}.png")
    return str(root)


def _cfg(data, out, **kw) -> TrainConfig:
    """A small run of the recipe without the heads' augmentation and turns (tests that want them ask)."""
    base = dict(model_overrides=TINY, data=data, num_views=2, num_workers=0, batch_size=1, max_steps=6,
                warmup_steps=2, lr=3e-3, min_lr=3e-4, log_every=1, ckpt_every=3, eval_every=0, eval_heads=0,
                out_dir=str(out), progress=False, ema_decay=0.9, synth_ahead=1, augment=False, head_yaw=0.0,
                head_pitch=0.0)
    base.update(kw)
    return TrainConfig(**base)


def test_get_lr_warmup_and_cosine():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)
    lrs = [get_lr(s, cfg) for s in range(120)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)  # linear warmup to the peak
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:110], lrs[11:110]))  # cosine decay
    assert lrs[60] == pytest.approx(0.5 * (1e-3 + 1e-4))  # half way down the cosine
    assert lrs[110] == lrs[119] == pytest.approx(1e-4)


def test_get_lr_over_a_budget_of_minutes_follows_the_clock_not_the_steps():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110, budget_minutes=2.0)
    assert get_lr(4, cfg, 100.0) == pytest.approx(5e-4)  # the warmup still counts steps
    assert get_lr(50, cfg, 0.0) == pytest.approx(1e-3)  # the cosine starts at the peak
    for step in (20, 500):  # whatever the step: half way through the 120 s, half way down
        assert get_lr(step, cfg, 60.0) == pytest.approx(0.5 * (1e-3 + 1e-4))
    assert get_lr(30, cfg, 120.0) == get_lr(30, cfg, 500.0) == pytest.approx(1e-4)
    with pytest.raises(InputError, match="budget_minutes"):
        TrainConfig(budget_minutes=-1.0)


def test_a_run_with_a_budget_ends_when_it_is_spent_and_a_resumed_call_adds_nothing(tmp_path):
    cfg = _cfg("synthetic", tmp_path, synth_gaussians=2000, max_steps=10_000, budget_minutes=3 / 60,
               ckpt_every=10_000)
    train(cfg)
    done = json.loads((tmp_path / "eval.json").read_text())
    log = [r for r in map(json.loads, open(tmp_path / LOG_NAME)) if "loss" in r]
    assert 0 < done["step"] < 10_000 and not done["stopped_by_clock"]  # the schedule's end, not max_minutes
    assert done["elapsed_s"] >= 3.0 and len(log) == done["step"]
    assert log[-1]["lr"] < 3e-3 and log[-1]["lr"] == min(r["lr"] for r in log[cfg.warmup_steps:])
    train(cfg)  # the checkpoint carries the spent minutes: nothing is left to train
    assert json.loads((tmp_path / "eval.json").read_text())["step"] == done["step"]


def _ssim_direct(x, y, win=11, sigma=1.5):
    """SSIM with an explicit 2D window at every valid position (no separable filtering)."""
    r = torch.arange(win, dtype=torch.float64) - (win - 1) / 2
    g = torch.exp(-r ** 2 / (2 * sigma ** 2))
    w = (g[:, None] * g[None]) / (g.sum() ** 2)
    B, C, H, W = x.shape
    vals = []
    for i in range(H - win + 1):
        for j in range(W - win + 1):
            a, b = x[..., i:i + win, j:j + win], y[..., i:i + win, j:j + win]
            ma, mb = (a * w).sum((-1, -2)), (b * w).sum((-1, -2))
            va = (a * a * w).sum((-1, -2)) - ma ** 2
            vb = (b * b * w).sum((-1, -2)) - mb ** 2
            cov = (a * b * w).sum((-1, -2)) - ma * mb
            vals.append(((2 * ma * mb + 1e-4) * (2 * cov + 9e-4)) / ((ma ** 2 + mb ** 2 + 1e-4) * (va + vb + 9e-4)))
    return torch.stack(vals, -1).mean((-1, -2))


def test_ssim_psnr(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 16, 18, generator=g, dtype=torch.float64)
    y = (x + 0.1 * torch.randn(2, 3, 16, 18, generator=g, dtype=torch.float64)).clamp(0, 1)
    torch.testing.assert_close(ssim(x, y).double(), _ssim_direct(x, y), atol=1e-5, rtol=0)
    assert torch.allclose(ssim(x, x), torch.ones(2))
    assert torch.allclose(ssim(x, y), ssim(y, x))
    noisier = (x + 0.3 * torch.randn(2, 3, 16, 18, generator=g, dtype=torch.float64)).clamp(0, 1)
    assert (ssim(x, noisier) < ssim(x, y)).all()
    mse = ((x - y) ** 2).mean((1, 2, 3))
    torch.testing.assert_close(psnr(x, y).double(), -10 * torch.log10(mse), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="window"):
        ssim(x[..., :8, :8], y[..., :8, :8])


def test_eval_views_and_buckets():
    az = eval_azimuths(16)
    assert len(az) == 16 and min(abs(a) for a in az) == pytest.approx(11.25)  # the input azimuth is skipped
    names = [bucket(a) for a in az]
    assert names.count("front") == 4 and names.count("back") == 4 and names.count("side") == 8
    assert bucket(0) == "front" and bucket(180) == "back" and bucket(-90) == "side" and bucket(200) == "back"


def _fixed_loss(model, cfg, batch):
    with torch.random.fork_rng():
        torch.manual_seed(123)
        loss, _ = compute_loss(model, batch, cfg, model.config, autocast=False)
    return float(loss)


def test_training_reduces_loss(dataset, tmp_path):
    cfg = _cfg(dataset, tmp_path / "run", max_steps=20, one_step_prob=1.0, export_dir=str(tmp_path / "export"))
    torch.manual_seed(0)
    batch = FolderBatches(dataset, 32, 2, 2, seed=7, rank=0, world=1, workers=0, device=torch.device("cpu")).get(0)
    model = A3DModel(cfg.model_config(), with_avas=True)
    with torch.no_grad():
        before = _fixed_loss(model, cfg, batch)
    train(cfg)
    ck = torch.load(tmp_path / "run" / CKPT_NAME, map_location="cpu", weights_only=True)
    assert ck["step"] == 20
    model.load_state_dict(ck["model"])
    with torch.no_grad():
        after = _fixed_loss(model, cfg, batch)
    assert after < 0.7 * before, (before, after)
    log = [r for r in map(json.loads, open(tmp_path / "run" / LOG_NAME)) if "loss" in r]
    assert [r["step"] for r in log] == list(range(1, 21))
    assert all(math.isfinite(r["loss"]) and r["skipped_files"] == 0 for r in log)
    assert {"l2", "lpips", "avas_l2", "avas_lpips", "lr", "samples_per_s"} <= set(log[0])
    # The export holds the EMA weights without AVAS, in float16, and loads strictly.
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "export" / "model.safetensors"))
    assert weights and all(v.dtype == torch.float16 for v in weights.values())
    assert not any(k.startswith("avas.") for k in weights)
    loaded = A3DModel.from_pretrained(str(tmp_path / "export"))
    ema = {k: v for k, v in ck["ema"].items() if not k.startswith("avas.")}
    for k, v in loaded.state_dict().items():
        torch.testing.assert_close(v, ema[k].half().float(), atol=0, rtol=0)
    png = plot_log(tmp_path / "run" / LOG_NAME, tmp_path / "curve.png")
    assert Image.open(png).size == (900, 420)


class _Killed(Exception):
    pass


def _train_killed_before(cfg, step: int) -> None:
    """Run ``cfg`` and kill it when it reaches ``step`` (as a crash would, after its last checkpoint)."""
    def kill(s):
        if s == step:
            raise _Killed

    with pytest.raises(_Killed):
        train(cfg, on_step=kill)


def test_resume_is_exact(dataset, tmp_path):
    """A run killed after its step-3 checkpoint and restarted ends with the same bits as one that ran
    straight through."""
    straight = _cfg(dataset, tmp_path / "a")
    train(straight)

    killed = _cfg(dataset, tmp_path / "b")
    _train_killed_before(killed, 4)
    ck = torch.load(tmp_path / "b" / CKPT_NAME, map_location="cpu", weights_only=True)
    assert ck["step"] == 3
    train(killed)  # resumes from step 3

    assert_same_checkpoints(tmp_path / "a" / CKPT_NAME, tmp_path / "b" / CKPT_NAME, step=6)
    steps = [r["step"] for r in map(json.loads, open(tmp_path / "b" / LOG_NAME)) if "loss" in r]
    assert steps == list(range(1, 7))  # the lines of the killed run after its checkpoint were dropped


def test_config_cli_and_errors(tmp_path):
    parser = build_parser("train")
    (tmp_path / "c.json").write_text(json.dumps({"lr": 1e-3, "batch_size": 4, "config_version": 2}))
    args = parser.parse_args(["train", "--config", str(tmp_path / "c.json"), "--batch-size", "2", "--no-bf16",
                              "--model-overrides", '{"image_size": 64}', "--max-minutes", "8.5"])
    cfg = config_from_args(args)
    assert (cfg.lr, cfg.batch_size, cfg.bf16, cfg.max_minutes) == (1e-3, 2, False, 8.5)
    assert cfg.model_config().image_size == 64
    assert config_from_args(parser.parse_args(["train", "--max-steps", "5"])) == TrainConfig(max_steps=5)  # the recipe
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"learning_rate": 1, "config_version": 2})
    with pytest.raises(ValueError, match="min_lr"):
        TrainConfig(lr=1e-4, min_lr=1e-3)
    with pytest.raises(ValueError, match="overrides"):
        TrainConfig(model_overrides={"nope": 1}).model_config()
    # turned heads come with the heads' augmentation, within ±90°
    assert TrainConfig(augment=True, head_yaw=30, head_pitch=10).heads_augmented
    for bad in (dict(augment=False, head_yaw=30), dict(augment=True, augment_heads=False, head_pitch=5),
                dict(augment=True, head_yaw=120), dict(augment=True, head_yaw=30, head_turn_power=0.5)):
        with pytest.raises(ValueError, match="head_"):
            TrainConfig(**bad)


def test_version_1_configs_mean_what_they_meant_and_a_head_pool_is_refused(tmp_path):
    """A config without config_version is version 1: the fields it leaves out take version 1's defaults (with a
    warning naming them), synth_pool / synth_refresh 0 are dropped, a pool is an error naming its key, and an
    unknown version is refused."""
    with pytest.warns(UserWarning, match="lr"):
        old = TrainConfig.from_dict({"batch_size": 4, "synth_pool": 0, "synth_refresh": 0})
    assert (old.lr, old.augment, old.head_yaw, old.synth_ahead, old.batch_size) == (4e-4, False, 0.0, 1, 4)
    assert old.config_version == 2 and TrainConfig.from_dict(dataclasses.asdict(old)) == old
    assert TrainConfig.from_dict({"config_version": 2, "batch_size": 4}) == TrainConfig(batch_size=4)
    for key in ("synth_pool", "synth_refresh"):
        with pytest.raises(ValueError, match=key):
            TrainConfig.from_dict({key: 8})
    (tmp_path / "future.json").write_text(json.dumps({"config_version": 3}))
    with pytest.raises(ValueError, match="config_version 3"):
        TrainConfig.from_json(tmp_path / "future.json")
    with pytest.raises(ValueError, match="config_version"):
        TrainConfig(config_version=1)


def test_every_train_option_has_a_help_line_with_its_default():
    """`a3d train --help`: every TrainConfig field (but config_version) is a flag whose help is the field's
    docstring followed by the recipe's default, as are --config, --export-only and --plot."""
    from a3d.train.config import field_help

    parser = build_parser("train")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    options = {a.dest: a for a in sub._actions if a.option_strings and a.dest not in ("help", "debug")}
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"config_version"}
    assert fields <= set(options) and set(options) - fields == {"config", "export_only", "plot"}
    docs, recipe = field_help(), TrainConfig()
    for name, action in options.items():
        assert action.help and "(default: " in action.help, name
        if name in fields:
            assert action.help.startswith(docs[name]) and len(docs[name]) > 8, name
            shown = json.dumps(getattr(recipe, name)) if isinstance(getattr(recipe, name), (str, dict)) \
                else str(getattr(recipe, name))
            assert action.help.endswith(f"(default: {shown})"), (name, action.help)
    text = sub.format_help()  # argparse expands the help strings: a stray % would fail here
    assert "--synth-ahead" in text and "--synth-pool" not in text


def test_provenance_chains_the_runs_and_ends_with_the_recipe():
    """a3d/assets/models/tiny/provenance.json: each run warm-starts from the one before it (the first from
    nothing), has its steps, minutes, device and date, and the last run's config with its flags is the recipe:
    TrainConfig's defaults but for the run fields and model_overrides (the preset is the shipped model)."""
    from a3d.api import DEFAULT_MODEL_DIR
    from a3d.train.config import RUN_FIELDS

    doc = json.loads((DEFAULT_MODEL_DIR / "provenance.json").read_text())
    runs = doc["runs"]
    assert runs[0]["warm_start_from"] is None and len(runs) >= 2
    assert [r["warm_start_from"] for r in runs[1:]] == [r["name"] for r in runs[:-1]]
    for r in runs:
        assert r["date"] and r["device"] and r["config"] and r["batch_size"] > 0, r["name"]
        parts = [r["steps"], r["minutes"]]
        assert all(isinstance(p, list) for p in parts) or not any(isinstance(p, list) for p in parts), r["name"]
        assert all(v > 0 for p in parts for v in (p if isinstance(p, list) else [p])), r["name"]
    last = runs[-1]
    used = TrainConfig.from_dict({**last["config"], **last.get("flags", {})})  # a version-1 file, migrated
    assert sum(last["steps"]) == used.max_steps
    recipe = dataclasses.asdict(TrainConfig())
    skip = set(RUN_FIELDS) | {"model_overrides"}
    assert {k: v for k, v in dataclasses.asdict(used).items() if k not in skip} == \
        {k: v for k, v in recipe.items() if k not in skip}
    assert recipe["model_overrides"] == {} and recipe["init_from"] == ""


def test_synthetic_run_evaluates_and_writes_gallery(tmp_path):
    """The default data path: heads from a3d.data.synth on the fly, held-out evaluation by view bucket."""
    out = tmp_path / "syn"
    cfg = _cfg("synthetic", out, max_steps=2, ckpt_every=1, synth_gaussians=10_000, eval_heads=2, eval_views=8,
               gallery_images=1, eval_turn=20.0)
    res = train(cfg)
    assert res["heads"] == 2 and res["views"] == 8
    # eval_turn: the same heads turned, scored too (a turned head is another picture: other figures)
    assert res["turned"]["all"]["count"] == 16 and res["turned"]["all"]["psnr"] != res["all"]["psnr"]
    assert res["front"]["count"] == 4 and res["side"]["count"] == 8 and res["back"]["count"] == 4
    for name in ("all", "front", "side", "back"):
        m = res[name]
        assert math.isfinite(m["psnr"]) and 0 < m["psnr"] < 100 and -1 <= m["ssim"] <= 1 and m["lpips"] >= 0
    summary = json.loads((out / "eval.json").read_text())
    assert summary["step"] == 2 and summary["eval"] == res and not summary["stopped_by_clock"]
    assert Image.open(out / "gallery_0.png").size == (5 * 32, 4 * 32)  # input + 4 views; GT and prediction rows


def test_bundled_model_is_trained_tiny_fp16():
    """The weights shipped in a3d/assets/models/tiny: the tiny preset, float16, < 16 MiB, no AVAS, and
    trained: on a held-out synthetic head they beat the untrained network by a wide margin."""
    from safetensors.torch import load_file

    from a3d.api import DEFAULT_MODEL_DIR
    from a3d.model.config import get_config
    from a3d.eval.evaluate import evaluate, synthetic_eval_set

    path = DEFAULT_MODEL_DIR / "model.safetensors"
    assert path.stat().st_size < 16 * 2**20
    weights = load_file(str(path))
    assert all(v.dtype == torch.float16 for v in weights.values()) and not any(k.startswith("avas.") for k in weights)
    model = A3DModel.from_pretrained(str(DEFAULT_MODEL_DIR))
    assert model.config == get_config("tiny")  # the preset is the bundled model
    eval_set = synthetic_eval_set(1, 4, model.config.image_size, torch.device("cpu"), seed=4242, num_gaussians=20_000)
    trained = evaluate(model, eval_set)["all"]
    torch.manual_seed(0)
    untrained = evaluate(A3DModel(get_config("tiny")), eval_set)["all"]
    assert trained["psnr"] > untrained["psnr"] + 3 and trained["lpips"] < untrained["lpips"] - 0.2, (trained, untrained)


def test_turned_heads_in_a_batch():
    """turn: the same heads and views as without it (the turn is drawn last), turned: the input differs."""
    kw = dict(size=32, batch=2, num_views=2, num_gaussians=4000, seed=5, device=torch.device("cpu"), augment=True)
    plain, turned = SyntheticBatches(**kw).get(0), SyntheticBatches(**kw, turn=(40.0, 10.0)).get(0)
    assert plain.input.shape == turned.input.shape and torch.isfinite(turned.input).all()
    assert torch.equal(plain.viewmats, turned.viewmats) and torch.equal(plain.Ks, turned.Ks)
    assert (plain.input - turned.input).abs().mean() > 0.01
    # the supervision sees the turned heads too (every view, not the input alone)
    assert (plain.canonical[:, 1:] - turned.canonical[:, 1:]).abs().mean() > 0.01
    assert (plain.images - turned.images).abs().mean() > 0.01
    with pytest.raises(ValueError, match="turn"):
        SyntheticBatches(**(kw | {"augment": False}), turn=(20.0, 0.0))  # turning is part of the heads' augmentation


def test_synthetic_heads_generated_ahead_are_the_same_heads_and_resume_exactly():
    """synth_ahead: one generator call makes the heads of A steps; each step gets the heads k·B … k·B + B − 1
    it gets without it (up to the last bits, which may depend on the call), and a source started inside a
    group (a resumed run) makes the group's call again, so its batches are bit for bit those of a straight run."""
    kw = dict(size=32, batch=2, num_views=2, num_gaussians=2000, seed=11, device=torch.device("cpu"))
    calls = []

    def recording(source):
        sample = source.heads.sample

        def sample_and_record(n, head_ids):
            calls.append(list(head_ids))
            return sample(n, head_ids=head_ids)
        source.heads.sample = sample_and_record
        return source

    straight = recording(SyntheticBatches(**kw, ahead=3))
    ref = [straight.get(k) for k in range(7)]
    assert calls == [list(range(0, 6)), list(range(6, 12)), list(range(12, 18))]  # one call a group of 3 steps
    one_by_one = SyntheticBatches(**kw)
    for k in range(7):
        torch.testing.assert_close(ref[k].canonical, one_by_one.get(k).canonical, atol=1e-4, rtol=0)
    for start in (4, 5):  # inside the second group
        calls.clear()
        resumed = recording(SyntheticBatches(**kw, ahead=3))
        for k in range(start, 7):
            batch = resumed.get(k)
            assert all(torch.equal(v, getattr(batch, key)) for key, v in ref[k].tensors().items()), (start, k)
        assert calls == [list(range(6, 12)), list(range(12, 18))]
    with pytest.raises(ValueError, match="ahead"):
        SyntheticBatches(**kw, ahead=0)
    with pytest.raises(ValueError, match="synth_ahead"):
        TrainConfig(synth_ahead=0)


def test_generation_ahead_is_logged_at_its_amortised_cost():
    """stage_s["generate"] with synth_ahead = A: the group call's time / A on every step of the group, also
    on the step that made the call (whose own mark would have booked all of it)."""
    from a3d.train.batches import StageClock

    source = SyntheticBatches(32, 1, 2, 2000, seed=3, device=torch.device("cpu"), ahead=2)
    clocks = [StageClock(torch.device("cpu")) for _ in range(2)]
    for k, clock in enumerate(clocks):
        source.get(k, clock)
    assert source.group_seconds > 0
    assert clocks[0].seconds["generate"] == clocks[1].seconds["generate"] == source.group_seconds / 2
    assert clocks[0].seconds["render_gt"] < source.group_seconds  # the call itself is not booked to the next stage


def test_resume_inside_a_generation_group_is_exact(tmp_path):
    """A run with synth_ahead = 2 killed after its step-3 checkpoint (inside the group of steps 2 and 3)
    and restarted ends with the same bits as one that ran straight through."""
    kw = dict(synth_ahead=2, synth_gaussians=2000, max_steps=5)
    train(_cfg("synthetic", tmp_path / "a", **kw))
    _train_killed_before(_cfg("synthetic", tmp_path / "b", **kw), 4)
    train(_cfg("synthetic", tmp_path / "b", **kw))
    assert_same_checkpoints(tmp_path / "a" / CKPT_NAME, tmp_path / "b" / CKPT_NAME, step=5)
    logs = [[r["loss"] for r in map(json.loads, open(tmp_path / name / LOG_NAME)) if "loss" in r] for name in "ab"]
    assert logs[0] == logs[1] and len(logs[0]) == 5


def test_heads_augmented_before_rendering_change_every_view_and_keep_the_cameras():
    """SyntheticBatches(augment=True): the same cameras as without it, a function of (seed, step), and the
    colour/framing change reaches the supervision views and canonical targets, not the input alone."""
    kw = dict(size=32, batch=6, num_views=2, num_gaussians=2000, seed=5, device=torch.device("cpu"))
    plain, augmented = SyntheticBatches(**kw).get(0), SyntheticBatches(**kw, augment=True).get(0)
    again = SyntheticBatches(**kw, augment=True).get(0)
    assert all(torch.equal(v, getattr(again, k)) for k, v in augmented.tensors().items())
    assert torch.equal(plain.viewmats, augmented.viewmats) and torch.equal(plain.Ks, augmented.Ks)
    changed_input = (augmented.input - plain.input).abs().flatten(1).amax(1) > 1e-3  # [B]
    changed_views = (augmented.images - plain.images).abs().flatten(2).amax(2) > 1e-3  # [B, V]
    changed_back = (augmented.canonical[:, 3] - plain.canonical[:, 3]).abs().flatten(1).amax(1) > 1e-3
    assert changed_input.any()
    assert torch.equal(changed_input, changed_views.all(1)) and torch.equal(changed_input, changed_back)



def test_training_with_augmented_heads_runs(tmp_path):
    """augment + augment_heads: the input then takes only the degradations no other view has (blur, noise,
    JPEG, matte edge), and training runs on it."""
    train(_cfg("synthetic", tmp_path, augment=True, augment_heads=True, synth_gaussians=2000, max_steps=2))
    logged = [json.loads(line) for line in (tmp_path / LOG_NAME).read_text().splitlines()]
    losses = [r["loss"] for r in logged if "loss" in r]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert (tmp_path / CKPT_NAME).exists()
