"""The dataset loader reads the documented AnyHead layout and survives broken files."""
import json
import os
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from a3d.core import framing
from a3d.data.batch import Batch
from a3d.core.cameras import Cameras, canonical_cameras, orbit_cameras, save_cameras_json
from a3d.data.dataset import CAMERA_FILE, HeadDataset, find_captures, load_view


def _write_capture(folder, cams: Cameras, rng, names=None, rgba=False, input_name=None):
    """Images whose colour encodes (capture, frame): a constant RGB per frame."""
    os.makedirs(folder, exist_ok=True)
    names = names or [f"{i:03d}" for i in range(len(cams))]
    save_cameras_json(os.path.join(folder, CAMERA_FILE), cams, names)
    if input_name is not None:
        with open(os.path.join(folder, CAMERA_FILE)) as f:
            doc = json.load(f)
        doc["input"] = input_name
        with open(os.path.join(folder, CAMERA_FILE), "w") as f:
            json.dump(doc, f)
    colours = {}
    for n in names:
        c = rng.integers(0, 256, size=3, dtype=np.uint8)
        arr = np.broadcast_to(c, (cams.height, cams.width, 3)).copy()
        if rgba:
            a = np.zeros((cams.height, cams.width, 1), np.uint8)
            a[:, : cams.width // 2] = 255  # left half opaque, right half transparent
            arr = np.concatenate([arr, a], -1)
        Image.fromarray(arr).save(os.path.join(folder, n + ".png"))
        colours[n] = c / 255.0
    return colours


def _ring(n, size, azimuth_start=0.0):
    return orbit_cameras(n, size=size, azimuth_start=azimuth_start)


def test_layout_levels_input_rule_and_resize(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "AnyHead"
    # A head without sub-levels, a Digital_Human head with two expressions, an Accessory head.
    # Rings start at 40° so frame 0 is not the front; the front-most frame is 7 (azimuth -5°).
    flat = _write_capture(root / "AI_Generated_Heads_Dataset" / "h0", _ring(8, 48, 40.0), rng)
    _write_capture(root / "Digital_Human_Heads_Dataset" / "h1" / "smile", _ring(8, 48, 40.0), rng)
    _write_capture(root / "Digital_Human_Heads_Dataset" / "h1" / "neutral", _ring(8, 48, 40.0), rng,
                   input_name="003")
    _write_capture(root / "Accessory_Rich_Heads_Dataset" / "h2" / "glasses", _ring(8, 48, 40.0), rng)
    (root / "AI_Generated_Heads_Dataset" / "README.md").write_text("split: all train\n")
    # Deeper than MAX_DEPTH: ignored.
    _write_capture(root / "a" / "b" / "c" / "d", _ring(4, 48), rng)

    caps, skips = find_captures(root)
    assert [os.path.relpath(c.folder, root) for c in caps] == [
        os.path.join("AI_Generated_Heads_Dataset", "h0"),
        os.path.join("Accessory_Rich_Heads_Dataset", "h2", "glasses"),
        os.path.join("Digital_Human_Heads_Dataset", "h1", "neutral"),
        os.path.join("Digital_Human_Heads_Dataset", "h1", "smile"),
    ]
    assert not skips
    assert caps[0].names[caps[0].input_index] == "007"  # closest to the front camera (azimuth 355°)
    assert caps[2].names[caps[2].input_index] == "003"  # named by the "input" field

    ds = HeadDataset(root, size=16, num_views=5, seed=1)
    item = ds[0]
    assert item.input[0].shape == (3, 16, 16) and item.input_mask[0].shape == (1, 16, 16)
    assert item.images[0].shape == (5, 3, 16, 16) and item.masks[0].shape == (5, 1, 16, 16)
    assert item.viewmats[0].shape == (5, 4, 4) and item.Ks[0].shape == (5, 3, 3)
    assert item.canonical[0].shape == (4, 3, 16, 16) and item.canonical_valid[0].shape == (4,)
    assert int(item.skipped[0]) == 0 and bool(item.ok[0])
    # a Batch of one sample; photos carry no canonical matte or depth: those loss terms are off
    assert isinstance(item, Batch) and item.input.shape == (1, 3, 16, 16)
    assert item.canonical_alpha.shape == item.canonical_depth.shape == (1, 4, 1, 16, 16)
    assert not item.canonical_alpha.any() and not item.geometry_valid.any()
    # Constant colours survive the resize; the input is frame 007's colour.
    expect = torch.tensor(flat["007"], dtype=torch.float32).view(3, 1, 1).expand(3, 16, 16)
    torch.testing.assert_close(item.input[0], expect, atol=1e-5, rtol=0)
    # Supervision views are distinct non-input frames (7 candidates >= 5) with their own cameras.
    ring16 = _ring(8, 16, 40.0)
    vm = item.viewmats[0]
    idx = [int(torch.argmin((ring16.viewmats - v).abs().flatten(1).sum(1))) for v in vm]
    assert len(set(idx)) == 5 and 7 not in idx
    for k, i in enumerate(idx):
        torch.testing.assert_close(item.images[0][k, :, 0, 0], torch.tensor(flat[f"{i:03d}"], dtype=torch.float32),
                                   atol=1e-5, rtol=0)
    # Intrinsics follow the 48 -> 16 resize: equal to cameras made at 16 pixels.
    torch.testing.assert_close(item.Ks[0], ring16.Ks[idx], atol=1e-4, rtol=0)
    # The draw is a function of (seed, epoch, index): same again, another after set_epoch.
    torch.testing.assert_close(ds[0].viewmats[0], vm)
    draws = set()
    for e in range(6):
        ds.set_epoch(e)
        draws.add(tuple(ds[0].viewmats[0][:, 0, 3].tolist()))
    assert len(draws) > 1


def test_non_square_crop_and_rgba(tmp_path):
    rng = np.random.default_rng(1)
    W, H = 64, 48
    K = torch.tensor([[60.0, 0, 32.0], [0, 60.0, 24.0], [0, 0, 1]])
    base = _ring(3, 48)
    cams = Cameras(base.viewmats, K.expand(3, 3, 3).clone(), W, H)
    colours = _write_capture(tmp_path / "h", cams, rng, rgba=True)
    ds = HeadDataset(tmp_path, size=12, num_views=2)
    item = ds[0]
    # Crop 64x48 -> 48x48 at x0 = 8, then scale by 12/48.
    torch.testing.assert_close(item.Ks[0][0], torch.tensor([[15.0, 0, 6.0], [0, 15.0, 6.0], [0, 0, 1]]))
    # Cropped to columns 8..55 of which 8..31 are opaque: the left half of the 12-px image.
    m = item.input_mask[0][0]
    assert torch.all(m[:, :5] > 0.99) and torch.all(m[:, 7:] < 0.01)
    c = torch.tensor(colours[ds.captures[0].names[ds.captures[0].input_index]], dtype=torch.float32)
    torch.testing.assert_close(item.input[0][:, 3, 1], c, atol=1e-5, rtol=0)
    torch.testing.assert_close(item.input[0][:, 3, 10], torch.tensor(framing.BACKGROUND), atol=1e-5, rtol=0)


def test_canonical_targets(tmp_path):
    rng = np.random.default_rng(2)
    canon = canonical_cameras(40)
    cams = Cameras.cat([canon, _ring(4, 40, 45.0)])
    colours = _write_capture(tmp_path / "h", cams, rng)
    item = HeadDataset(tmp_path, size=20, num_views=3)[0]
    assert item.canonical_valid[0].tolist() == [True] * 4
    for k in range(4):
        expect = torch.tensor(colours[f"{k:03d}"], dtype=torch.float32)
        torch.testing.assert_close(item.canonical[0][k, :, 5, 5], expect, atol=1e-5, rtol=0)
    # A ring at another radius has no canonical match.
    _write_capture(tmp_path / "g", orbit_cameras(4, radius=3.5, size=40), rng)
    ds = HeadDataset(tmp_path, size=20, num_views=3)
    assert ds[0].canonical_valid[0].tolist() == [False] * 4


def test_survives_corrupt_missing_and_broken(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "ds"
    _write_capture(root / "good", _ring(6, 32), rng)
    # Corrupt supervision PNGs (truncated, garbage) and one missing image.
    bad = root / "badviews"
    _write_capture(bad, _ring(6, 32), rng)
    data = (bad / "001.png").read_bytes()
    (bad / "001.png").write_bytes(data[: len(data) // 2])
    (bad / "002.png").write_bytes(b"not a png at all")
    os.remove(bad / "003.png")
    # Wrong image size for its camera file.
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(bad / "004.png")
    # A broken camera file, a camera file with a missing field, and a capture whose input is corrupt.
    (root / "brokenjson").mkdir()
    (root / "brokenjson" / CAMERA_FILE).write_text('{"format": "a3d-cameras", "frames": [')
    _write_capture(root / "nofield", _ring(3, 32), rng)
    doc = json.loads((root / "nofield" / CAMERA_FILE).read_text())
    del doc["frames"][0]["K"]
    (root / "nofield" / CAMERA_FILE).write_text(json.dumps(doc))
    _write_capture(root / "badinput", _ring(4, 32), rng)
    (root / "badinput" / "000.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    # A PNG header claiming a huge image (never decoded).
    _write_capture(root / "huge", _ring(3, 32), rng)
    hdr = bytearray((root / "huge" / "001.png").read_bytes())
    hdr[16:24] = (30000).to_bytes(4, "big") + (30000).to_bytes(4, "big")
    hdr[29:33] = zlib.crc32(bytes(hdr[12:29])).to_bytes(4, "big")  # a valid IHDR: only the size lies
    (root / "huge" / "001.png").write_bytes(bytes(hdr))

    ds = HeadDataset(root, size=16, num_views=4, seed=5)
    assert ds.index_skips == {"bad_camera_file": 2, "missing_image": 1}
    names = [os.path.basename(c.folder) for c in ds.captures]
    assert names == ["badinput", "badviews", "good", "huge"]
    with pytest.raises(ValueError, match="too large|megapixels"):
        load_view(str(root / "huge" / "001.png"), 16, (32, 32))

    # Every item of several epochs builds; the skips are counted, never raised.
    loader = torch.utils.data.DataLoader(ds, batch_size=2, shuffle=False, collate_fn=Batch.cat)
    total = 0
    for epoch in range(3):
        ds.set_epoch(epoch)
        for batch in loader:
            assert batch.images.shape == (2, 4, 3, 16, 16)
            assert torch.isfinite(batch.images).all()
            assert batch.ok.all()
            total += int(batch.skipped.sum())
    assert total > 0
    # The capture with a corrupt input view falls back to the next capture.
    item = ds[0]
    assert int(item.skipped[0]) >= 1
    torch.testing.assert_close(item.input_viewmat[0], ds.captures[1].cameras.viewmats[ds.captures[1].input_index])
    # badviews: 000 is the input, 003 is missing, 001/002/004 fail to decode: only 005 is left,
    # repeated to fill the 4 views.
    item = ds[1]
    assert int(item.skipped[0]) == 3
    cap = ds.captures[1]
    assert cap.names == ["000", "001", "002", "004", "005"]
    torch.testing.assert_close(item.viewmats[0], cap.cameras.viewmats[4].expand(4, 4, 4))


def test_all_inputs_unreadable_gives_not_ok(tmp_path):
    rng = np.random.default_rng(4)
    _write_capture(tmp_path / "h", _ring(3, 32), rng)
    for p in (tmp_path / "h").glob("*.png"):
        p.write_bytes(b"junk")
    ds = HeadDataset(tmp_path, size=8, num_views=2, max_tries=2)
    item = ds[0]
    assert not bool(item.ok[0]) and int(item.skipped[0]) == 2
    assert item.images[0].shape == (2, 3, 8, 8)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="root"):
        HeadDataset(tmp_path / "nope", size=16)
    with pytest.raises(ValueError, match="root: no capture"):
        HeadDataset(tmp_path, size=16)
    with pytest.raises(ValueError, match="size"):
        HeadDataset(tmp_path, size=3)


def test_reads_what_synth_exports(tmp_path):
    """a3d.data.dataset.export_dataset writes the layout this loader reads (RGBA, "input" field)."""
    from a3d.data.dataset import export_dataset
    from a3d.data.synth import INPUT_VIEW

    export_dataset(tmp_path, num_heads=2, views=6, size=32, seed=3, device="cpu", num_gaussians=10_000,
                   progress=False)
    ds = HeadDataset(tmp_path, size=32, num_views=3)
    assert len(ds) == 2 and not ds.index_skips
    cap = ds.captures[0]
    assert cap.names[cap.input_index] == f"{INPUT_VIEW:03d}"
    item = ds[1]
    assert bool(item.ok[0]) and int(item.skipped[0]) == 0
    assert item.images[0].shape == (3, 3, 32, 32)
    # The input portrait is the front canonical view: its camera sits at (0, 0, radius).
    centre = -(item.input_viewmat[0][:3, :3].T @ item.input_viewmat[0][:3, 3])
    torch.testing.assert_close(centre, torch.tensor([0.0, 0.0, framing.CANONICAL_RADIUS]), atol=1e-4, rtol=0)
    # Straight alpha composited on the model background: the corners are background.
    torch.testing.assert_close(item.input[0][:, 0, 0], torch.tensor(framing.BACKGROUND), atol=2e-2, rtol=0)
