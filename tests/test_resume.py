"""Resume across processes: a training run killed (SIGKILL) and restarted in a new process ends with
the same bits as one that ran straight through, on the CPU (docs/training.md promises it).

Each run is its own Python process, so nothing built lazily (the LPIPS network) or cached in the
process can hide a difference, as it could in tests/test_train.py's in-process resume test.
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from a3d.train.loop import CKPT_NAME, LOG_NAME
from shared import assert_same_checkpoints

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(image_size=32, width=64, depth=2, heads=2, decoder_width=16, avas_width=8)
CONFIG = dict(model_overrides=TINY, data="synthetic", synth_gaussians=2000, synth_ahead=2,
              num_views=2, batch_size=1, max_steps=6, warmup_steps=2, lr=3e-3, min_lr=3e-4, log_every=1,
              ckpt_every=3, eval_every=0, eval_heads=0, gallery_images=0, progress=False, ema_decay=0.9,
              device="cpu", config_version=2)

# Trains with the config file argv[1]; SIGKILLs its own process right after step argv[2] (no cleanup,
# no atexit: what a crash, an OOM kill or a pre-empted machine does).
_KILLER = """
import os, signal, sys
from a3d.train.loop import train
from a3d.train.config import TrainConfig
def on_step(step):
    if step == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
train(TrainConfig.from_json(sys.argv[1]), on_step=on_step)
"""


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(dict(CONFIG, out_dir=str(tmp_path / name))))
    return path


def _train(config: Path) -> None:
    r = _run(["-m", "a3d.train", "--config", str(config)])
    assert r.returncode == 0, r.stderr[-3000:]


def _train_and_kill(config: Path, step: int) -> None:
    r = _run(["-c", _KILLER, str(config), str(step)])
    assert r.returncode == -signal.SIGKILL, (r.returncode, r.stderr[-3000:])


def test_resume_in_a_new_process_is_bit_exact(tmp_path):
    straight = _config(tmp_path, "straight")
    _train(straight)

    killed = _config(tmp_path, "killed")
    _train_and_kill(killed, 2)  # before the first checkpoint: the next start begins afresh
    assert not (tmp_path / "killed" / CKPT_NAME).exists()
    _train_and_kill(killed, 4)  # after the step-3 checkpoint
    ck = torch.load(tmp_path / "killed" / CKPT_NAME, map_location="cpu", weights_only=True)
    assert ck["step"] == 3
    _train(killed)  # a new process resumes at step 3

    assert_same_checkpoints(tmp_path / "straight" / CKPT_NAME, tmp_path / "killed" / CKPT_NAME, step=6)
    # The log holds each step once: the killed runs' lines after the checkpoint (and the whole log of
    # the run killed before any checkpoint) are gone, and the losses are those of the straight run.
    logs = [[r for r in map(json.loads, open(tmp_path / name / LOG_NAME)) if "loss" in r]
            for name in ("straight", "killed")]
    assert [r["step"] for r in logs[1]] == list(range(1, 7))
    assert [r["loss"] for r in logs[0]] == [r["loss"] for r in logs[1]]


def test_a_corrupt_checkpoint_is_a_clear_error(tmp_path):
    config = _config(tmp_path, "corrupt")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / CKPT_NAME).write_bytes(b"PK\x03\x04 not really a zip")
    r = _run(["-m", "a3d", "train", "--config", str(config)])
    assert r.returncode == 2, r.stderr[-3000:]
    assert "not a readable a3d checkpoint" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("argv", [["--device", "cuda"], ["--device", "cuda:0"]])
def test_device_cuda_without_cuda_is_one_line(tmp_path, argv):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = _run(["-m", "a3d", "train", "--config", str(_config(tmp_path, "nocuda")), *argv])
    assert r.returncode == 3, r.stderr[-3000:]
    assert r.stderr.count("\n") == 1 and "CUDA is not available" in r.stderr and "use 'cpu'" in r.stderr
