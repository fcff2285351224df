"""`a3d reconstruct` on many photos: folders and glob patterns, a bad photo reported and skipped while the
others are saved, exit status 2 when any failed, warnings on one clean line (a small random model)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from a3d import api
from a3d.cli import main
from a3d.io.image_files import expand_image_paths
from shared import random_model

SMALL = dict(image_size=32, width=64, depth=2, heads=2, decoder_width=8, avas_width=8)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("model")
    random_model(0, **SMALL).save_pretrained(d)
    return d


def photo(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
    return path


def test_expand_image_paths(tmp_path):
    (tmp_path / "d").mkdir()
    a, b = photo(tmp_path / "d" / "b.png", 0), photo(tmp_path / "d" / "a.JPG", 1)
    (tmp_path / "d" / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    c = photo(tmp_path / "c.png", 2)
    files, problems = expand_image_paths([tmp_path / "d", c, str(tmp_path / "*.png"), c, tmp_path / "missing.png",
                                          str(tmp_path / "*.gif"), tmp_path / "empty"])
    assert files == [str(b), str(a), str(c), str(c)]  # folder sorted; c named twice, not again from the pattern
    assert [spec for spec, _ in problems] == [str(tmp_path / "missing.png"), str(tmp_path / "*.gif"),
                                              str(tmp_path / "empty")]
    assert "no such file" in problems[0][1] and "matches no file" in problems[1][1] and "no image" in problems[2][1]


def test_folder_with_a_bad_photo_saves_the_others(model_dir, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        photo(folder / f"p{i}.png", i)
    (folder / "p1b.png").write_text("not an image")  # in the same batch as p0..p2
    rc = main(["reconstruct", str(folder), str(tmp_path / "nowhere.png"), "-o", str(tmp_path / "out"),
               "--model", str(model_dir), "--no-preprocess", "--ply", "--batch-size", "4"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0", "p1", "p2"]
    assert all((tmp_path / "out" / f"p{i}" / "head.ply").stat().st_size > 1000 for i in range(3))
    assert "p1b.png" in err and "nowhere.png" in err and "2 of 5 images failed" in err
    assert "Traceback" not in err


def test_seeds_do_not_depend_on_the_batch_cut(model_dir, tmp_path, capsys):
    """Image i keeps seed + i when a failing batch is redone one photo at a time."""
    good = [photo(tmp_path / f"g{i}.png", 10 + i) for i in range(2)]
    (tmp_path / "g1bad.png").write_text("no")
    args = ["-o", "--model", str(model_dir), "--no-preprocess", "--ply", "--seed", "7"]
    assert main(["reconstruct", str(good[0]), str(tmp_path / "g1bad.png"), str(good[1]), *args[:1],
                 str(tmp_path / "a"), *args[1:], "--batch-size", "3"]) == 2
    assert main(["reconstruct", str(good[0]), str(tmp_path / "g1bad.png"), str(good[1]), *args[:1],
                 str(tmp_path / "b"), *args[1:], "--batch-size", "1"]) == 2
    capsys.readouterr()
    from a3d.io.ply import load_ply
    for name in ("g0", "g1"):
        assert torch.equal(load_ply(tmp_path / "a" / name / "head.ply").means,
                           load_ply(tmp_path / "b" / name / "head.ply").means)


def test_warnings_print_on_one_line(model_dir, tmp_path, monkeypatch, capsys):
    real = api.reconstruct_many

    def warning_first(*args, **kwargs):
        warnings.warn("the face is turned 50° from the camera;\nthe far side is guessed", UserWarning)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "reconstruct_many", warning_first)
    rc = main(["reconstruct", str(photo(tmp_path / "w.png", 3)), "-o", str(tmp_path / "out"), "--model",
               str(model_dir), "--no-preprocess", "--ply"])
    err = capsys.readouterr().err
    assert rc == 0, err
    lines = [line for line in err.splitlines() if "warning" in line]
    assert lines == ["a3d reconstruct: warning: the face is turned 50° from the camera; the far side is guessed"]
    assert "warnings.warn" not in err and ".py:" not in err
