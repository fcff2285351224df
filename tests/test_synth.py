"""Synthetic heads (a3d.data.synth, a3d.data.head_basis): the bundled basis, determinism, batching, valid and
framed Gaussians, cameras, the front view, and the AnyHead layout a3d.data.dataset.export_dataset writes."""
import dataclasses
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from a3d.core import framing
from a3d.core.cameras import canonical_cameras, load_cameras_json
from a3d.cli import build_parser
from a3d.cli import cmd_synth
from a3d.data.dataset import _select_views, export_dataset
from a3d.data.head_basis import load_head_basis
from a3d.data.synth import (EARRINGS, EXPRESSIONS, HAIR_STYLES, HATS, INPUT_VIEW, NUM_FIXED_VIEWS, SynthConfig,
                       SyntheticHeads, fixed_cameras, random_cameras, render_views)

N = 4000  # Gaussians a head: enough to test, small enough for a CPU


@pytest.fixture(scope="module")
def gen():
    return SyntheticHeads("cpu", seed=3, num_gaussians=N, image_size=48, num_random_views=6)


@pytest.fixture(scope="module")
def sample(gen):
    return gen.sample(3, head_ids=[0, 1, 2])


def test_basis_shapes_and_values():
    b = load_head_basis()
    V = b.num_vertices
    assert 2000 < V < 20000
    K, E = b.shape_basis.shape[0], b.expr_basis.shape[0]
    assert 16 <= K <= 32 and 16 <= E <= 52
    assert b.shape_basis.shape == (K, V, 3) and b.expr_basis.shape == (E, V, 3)
    assert b.regions.shape == (V, len(b.region_names)) and b.eye_coord.shape == (V, 2)
    assert b.faces.shape[1] == 3 and int(b.faces.min()) == 0 and int(b.faces.max()) == V - 1
    for t in (b.mean, b.shape_basis, b.expr_basis, b.regions, b.eye_coord):
        assert torch.isfinite(t).all()
    assert {"skin", "lips", "ears", "brows", "eyes", "mouth"} <= set(b.region_names)
    assert "jawOpen" in b.expressions and "mouthSmileLeft" in b.expressions
    assert b.meta["licence"].startswith("CC0")
    # every region is present, the weights are a partition of unity up to clamping
    assert (b.regions.sum(-1) > 0.99).all()
    for i, name in enumerate(b.region_names):
        assert (b.regions[:, i] > 0.5).sum() > 10, name
    # the mean head is framed: pupils and mouth on the anchors, crown-to-chin about 1.1 units
    lm = b.landmarks(b.mean)
    anchors = torch.tensor([framing.FACE_ANCHORS_3D[n] for n in ("right_eye", "left_eye", "mouth")])
    assert (lm[:3] - anchors).norm(dim=-1).max() < 0.03
    crown, chin = lm[b.landmark_names.index("crown")], lm[b.landmark_names.index("chin")]
    assert 1.0 < float(crown[1] - chin[1]) < 1.25
    # the identity components are ordered by variance and change the head visibly
    norms = b.shape_basis.flatten(1).norm(dim=1)
    assert norms[0] > norms[-1] > 0
    assert b.expr_basis[b.expressions.index("jawOpen")].norm(dim=-1).max() > 0.05


def test_basis_rejects_other_files(tmp_path):
    from safetensors.torch import save_file
    p = tmp_path / "x.safetensors"
    save_file({"mean": torch.zeros(3, 3)}, str(p), metadata={"format": "something-else"})
    with pytest.raises(ValueError, match="not an a3d head basis"):
        load_head_basis(p)


def test_sample_is_deterministic_and_seeds_differ(gen, sample):
    again = SyntheticHeads("cpu", seed=3, num_gaussians=N, image_size=48, num_random_views=6).sample(
        3, head_ids=[0, 1, 2])
    for k in ("means", "quats", "scales", "opacities", "colors"):
        assert torch.equal(getattr(sample.gaussians, k), getattr(again.gaussians, k)), k
    assert torch.equal(sample.cameras.viewmats, again.cameras.viewmats)
    # a head does not depend on the batch it comes in (up to the last bit of vectorised float math: an
    # element's lane in a SIMD loop depends on the part's width in the batch)
    single = gen.sample(1, head_ids=[1])
    assert torch.allclose(single.gaussians.means[0], sample.gaussians.means[1], rtol=0, atol=1e-6)
    assert torch.allclose(single.gaussians.colors[0], sample.gaussians.colors[1], rtol=0, atol=1e-6)
    # heads of one seed differ, and other seeds give other heads
    assert not torch.allclose(sample.gaussians.means[0], sample.gaussians.means[1])
    other = SyntheticHeads("cpu", seed=4, num_gaussians=N, image_size=48, num_random_views=6).sample(1, head_ids=[0])
    assert not torch.allclose(other.gaussians.colors[0], sample.gaussians.colors[0])
    # the stream advances
    s1, s2 = gen.sample(1), gen.sample(1)
    assert s1.head_ids.tolist() != s2.head_ids.tolist()


def test_gaussians_are_valid(sample):
    g = sample.gaussians
    assert g.means.shape == (3, N, 3) and g.quats.shape == (3, N, 4) and g.scales.shape == (3, N, 3)
    for k in ("means", "quats", "scales", "opacities", "colors"):
        assert torch.isfinite(getattr(g, k)).all(), k
    assert (g.scales > 0).all() and (g.scales < 0.2).all()
    assert (g.opacities > 0).all() and (g.opacities < 1).all()
    assert (g.colors >= 0).all() and (g.colors <= 1).all()
    assert torch.allclose(g.quats.norm(dim=-1), torch.ones(3, N), atol=1e-4)


def test_heads_are_framed(gen, sample):
    g = sample.gaussians
    lo = torch.tensor([-1.4, -1.3, -1.2])  # the neck's base flares toward the shoulders in x
    hi = torch.tensor([1.4, 1.2, 1.2])
    assert ((g.means > lo) & (g.means < hi)).all()
    # most of the mass is the head itself: inside its ellipsoid (semi-axes 0.45/0.55/0.5), inflated
    # by half for hair and accessories
    e = (g.means / torch.tensor([0.45, 0.55, 0.5])).norm(dim=-1)
    assert (e < 1.5).float().mean() > 0.6
    anchors = torch.tensor([framing.FACE_ANCHORS_3D[n] for n in ("right_eye", "left_eye", "mouth")])
    lm = gen.basis.landmarks(sample.vertices)[:, :3]
    assert (lm - anchors).norm(dim=-1).max() < 0.05


def test_fixed_cameras_contain_the_canonical_views():
    cams = fixed_cameras(64)
    assert len(cams) == NUM_FIXED_VIEWS == 40
    canon = canonical_cameras(64)
    ring0 = INPUT_VIEW  # the 0° ring: azimuths 0, 45, ..., 315
    for i, offset in enumerate((0, 2, 6, 4)):  # front, left (+90), right (-90 = 270), back (180)
        assert torch.allclose(cams.viewmats[ring0 + offset], canon.viewmats[i], atol=1e-5)
        assert torch.allclose(cams.Ks[ring0 + offset], canon.Ks[i])
    elev = torch.rad2deg(torch.asin(cams.centers[:, 1] / cams.centers.norm(dim=-1)))
    assert sorted(set(elev.round().tolist())) == [-20.0, -10.0, 0.0, 10.0, 20.0]


def test_random_cameras_look_at_the_head():
    cams = random_cameras(7, 40, 64)
    r = cams.centers.norm(dim=-1)
    assert (r > 1.4).all() and (r < 3.6).all()
    # the origin projects inside the image of every camera
    o = cams.viewmats[:, :3, 3]  # camera coordinates of the world origin
    assert (o[:, 2] > 0).all()
    uv = (cams.Ks @ o[..., None])[..., 0]
    uv = uv[:, :2] / uv[:, 2:]
    assert ((uv > 0) & (uv < 64)).all()
    assert torch.equal(random_cameras(7, 40, 64).viewmats, cams.viewmats)


def test_front_view_centres_the_face():
    # no hats here: a wide brim may reach past the top corners of the frame
    gen = SyntheticHeads("cpu", seed=3, num_gaussians=N, image_size=48, num_random_views=0, hat_p=0.0)
    s = gen.sample(1, head_ids=[5])
    out = render_views(s, [s.input_view])
    a = out.alpha[0, 0, ..., 0]
    H = a.shape[0]
    # the head is opaque at the image centre and the background shows at the top corners
    assert a[H // 2, H // 2] > 0.99
    assert a[1, 1] < 0.01 and a[1, -2] < 0.01
    # the eyes and mouth anchors land on the head, and the silhouette is left-right balanced
    for u, v in framing.face_anchors_uv(H).values():
        assert a[int(v), int(u)] > 0.95
    cols = a.sum(0)
    cx = float((cols * (torch.arange(H) + 0.5)).sum() / cols.sum())
    assert abs(cx - H / 2) < 0.08 * H
    # it is a face in colour over the white background
    rgb = out.rgb[0, 0]
    assert rgb[H // 2, H // 2].max() < 0.98 and torch.allclose(rgb[1, 1], torch.ones(3), atol=0.02)


def test_config_validation():
    with pytest.raises(ValueError, match="num_gaussians"):
        SynthConfig(num_gaussians=10)
    with pytest.raises(ValueError, match="hair_style_p"):
        SynthConfig(hair_style_p=(1.0,))
    with pytest.raises(ValueError, match="batch"):
        SyntheticHeads("cpu", num_gaussians=N).sample(0)


def test_select_views():
    assert _select_views(80, 40, 40) == list(range(80))
    few = _select_views(6, 40, 40)
    assert len(few) == 6 and INPUT_VIEW in few and sum(v >= 40 for v in few) == 3
    assert _select_views(1, 40, 40) == [INPUT_VIEW]
    with pytest.raises(ValueError, match="views"):
        _select_views(81, 40, 40)


def test_export_layout(tmp_path):
    root = tmp_path / "heads"
    dirs = export_dataset(root, 2, views=4, size=32, seed=1, device="cpu", num_gaussians=3000, batch=2, progress=False)
    assert [os.path.basename(d) for d in dirs] == ["000000", "000001"]
    assert (root / "README.md").exists()
    for d in dirs:
        cams, names = load_cameras_json(os.path.join(d, "CAMERA_PARAMETERS.json"))
        assert len(cams) == 4 and cams.width == cams.height == 32
        doc = json.load(open(os.path.join(d, "CAMERA_PARAMETERS.json")))
        assert doc["input"] == f"{INPUT_VIEW:03d}" and doc["input"] in names
        files = sorted(f for f in os.listdir(d) if f.endswith(".png"))
        assert files == sorted(f"{n}.png" for n in names)
        img = np.asarray(Image.open(os.path.join(d, files[0])))
        assert img.shape == (32, 32, 4) and img.dtype == np.uint8
        assert img[..., 3].max() == 255 and img[..., 3].min() == 0
        attrs = json.load(open(os.path.join(d, "ATTRIBUTES.json")))
        assert attrs["hair_style"] in HAIR_STYLES and len(attrs["identity"]) == 32
    # the input view's camera is the front canonical camera
    cams, names = load_cameras_json(os.path.join(dirs[0], "CAMERA_PARAMETERS.json"))
    i = names.index(f"{INPUT_VIEW:03d}")
    assert torch.allclose(cams.viewmats[i], canonical_cameras(32).viewmats[0], atol=1e-5)


def test_cli(tmp_path):
    parser = build_parser("synth")
    args = parser.parse_args(["synth", "--out", str(tmp_path / "o"), "--heads", "1", "--views", "2", "--size", "24",
                              "--gaussians", "2000", "--device", "cpu"])
    assert cmd_synth(args) == 0
    assert sorted(os.listdir(tmp_path / "o" / "000000")) == ["016.png", "040.png", "ATTRIBUTES.json",
                                                              "CAMERA_PARAMETERS.json"]


def _check_valid(g):
    for k in ("means", "quats", "scales", "opacities", "colors"):
        assert torch.isfinite(getattr(g, k)).all(), k
    assert (g.scales > 0).all() and (g.opacities > 0).all() and (g.opacities < 1).all()
    assert (g.colors >= 0).all() and (g.colors <= 1).all()


@pytest.mark.parametrize("style", HAIR_STYLES)
def test_every_hair_style_builds(style):
    p = tuple(float(s == style) for s in HAIR_STYLES)
    s = SyntheticHeads("cpu", seed=1, num_gaussians=3000, image_size=32, num_random_views=1, hair_style_p=p,
                       hat_p=0.0).sample(4)
    # (a masculine head turns long hair, buns and ponytails into short hair half of the time)
    assert style in {s.attributes.head(i)["hair_style"] for i in range(4)}
    _check_valid(s.gaussians)


def test_every_accessory_builds():
    gen = SyntheticHeads("cpu", seed=48, num_gaussians=2000, image_size=32, num_random_views=1, glasses_p=1.0,
                         hat_p=0.75, earrings_p=0.5)
    hats, earrings, sunglasses = set(), set(), set()
    for _ in range(8):  # deterministic: a few batches of the stream cover every kind
        s = gen.sample(4)
        _check_valid(s.gaussians)
        heads = [s.attributes.head(i) for i in range(4)]
        hats |= {a["hat"] for a in heads}
        earrings |= {a["earrings"] for a in heads}
        sunglasses |= {a["sunglasses"] for a in heads}
        if hats == set(HATS) and earrings == set(EARRINGS) and len(sunglasses) == 2:
            break
    assert hats == set(HATS) and earrings == set(EARRINGS) and sunglasses == {False, True}


def test_attributes_and_cameras_do_not_depend_on_the_gaussian_count():
    a = SyntheticHeads("cpu", seed=2, num_gaussians=2000, image_size=32, num_random_views=4).sample(2)
    b = SyntheticHeads("cpu", seed=2, num_gaussians=6000, image_size=32, num_random_views=4).sample(2)
    assert torch.equal(a.cameras.viewmats, b.cameras.viewmats)
    assert torch.equal(a.vertices, b.vertices)
    for f in dataclasses.fields(a.attributes):
        assert torch.equal(getattr(a.attributes, f.name), getattr(b.attributes, f.name)), f.name


def test_overrides_change_only_what_they_name():
    gen = SyntheticHeads("cpu", seed=6, num_gaussians=3000, image_size=32, num_random_views=2, hat_p=0.0)
    base = gen.sample(2, head_ids=[0, 1])
    smile = gen.sample(2, head_ids=[0, 1], overrides={"expression": "smile", "glasses": True})
    a, b = base.attributes, smile.attributes
    assert (b.expression == EXPRESSIONS.index("smile")).all() and b.glasses.all()
    assert torch.equal(a.identity, b.identity) and torch.equal(a.skin, b.skin)
    assert torch.equal(a.hair_style, b.hair_style)
    mouth = gen.basis.expressions.index("mouthSmileLeft")
    assert ((b.expression_coeffs[:, mouth] > a.expression_coeffs[:, mouth]) | (a.expression == b.expression)).all()
    assert torch.equal(base.cameras.viewmats, smile.cameras.viewmats)
    with pytest.raises(ValueError, match="overrides"):
        gen.sample(1, overrides={"hat": "crown"})
    with pytest.raises(ValueError, match="unknown attribute"):
        gen.sample(1, overrides={"hair_colour": (1, 0, 0)})


@pytest.mark.parametrize("kind", ["expressions", "accessories"])
def test_export_variants(tmp_path, kind):
    from a3d.data.dataset import HeadDataset

    names = ["neutral", "smile"] if kind == "expressions" else ["none", "sunglasses"]
    dirs = export_dataset(tmp_path, 2, views=3, size=32, device="cpu", num_gaussians=2000, progress=False,
                          **{kind: names})
    assert sorted(os.path.relpath(d, tmp_path) for d in dirs) == sorted(
        os.path.join(f"{h:06d}", n) for h in range(2) for n in names)
    a0 = json.load(open(tmp_path / "000000" / names[0] / "ATTRIBUTES.json"))
    a1 = json.load(open(tmp_path / "000000" / names[1] / "ATTRIBUTES.json"))
    assert a0["identity"] == a1["identity"] and a1["variant"] == names[1]
    if kind == "expressions":
        assert (a0["expression"], a1["expression"]) == ("neutral", "smile")
    else:
        assert (a0["glasses"], a1["sunglasses"]) == (False, True) and a1["hat"] == "none"
    assert len(HeadDataset(tmp_path, size=32, num_views=1)) == 4
    with pytest.raises(ValueError, match="at most one"):
        export_dataset(tmp_path, 1, expressions=["smile"], accessories=["none"])


def test_a_head_does_not_depend_on_its_batch_whatever_its_parts():
    """Heads with different hair, hats, glasses and earrings share a batch; each is the head it is alone."""
    gen = SyntheticHeads("cpu", seed=9, num_gaussians=2500, image_size=32, num_random_views=2, hat_p=0.6,
                         glasses_p=0.6, earrings_p=0.6)
    batch = gen.sample(6, head_ids=range(6))
    assert len({(a["hair_style"], a["hat"], a["glasses"], a["earrings"])
                for a in (batch.attributes.head(i) for i in range(6))}) > 3
    for i in (0, 3, 5):
        alone = gen.sample(1, head_ids=[i])
        for k in ("means", "quats", "scales", "opacities", "colors"):
            assert torch.allclose(getattr(alone.gaussians, k)[0], getattr(batch.gaussians, k)[i], rtol=0, atol=1e-5), \
                (i, k)
        assert torch.equal(alone.cameras.viewmats[0], batch.cameras.viewmats[i])


def test_the_number_of_operations_does_not_grow_with_the_batch():
    """The generator is vectorised over the batch: a batch of 12 runs as many torch operations as one of 2
    (with the same parts present: here face and hair only)."""
    from torch.profiler import ProfilerActivity, profile

    gen = SyntheticHeads("cpu", seed=0, num_gaussians=2000, image_size=32, num_random_views=3,
                         hair_style_p=(0, 0, 1, 0, 0, 0, 0, 0, 0), fringe_p=0.0, glasses_p=0.0, hat_p=0.0,
                         earrings_p=0.0)
    gen.sample(2)  # the first call builds and caches the generator's constant tensors
    counts = []
    for batch in (2, 12):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            gen.sample(batch)
        counts.append(sum(e.count for e in prof.key_averages() if e.key.startswith("aten::")))
    # Not exactly equal: the per-call cache of index ranges hits more or less often depending on which parts'
    # widest counts coincide in a batch (a few dozen arange/mul ops). A loop over heads would multiply the
    # count by about 6 from 2 heads to 12.
    assert counts[0] > 100 and abs(counts[1] - counts[0]) <= 0.05 * counts[0], counts


def test_random_streams():
    from a3d.data.synth.draws import HeadRandom, head_keys

    rng = HeadRandom(head_keys(5, torch.arange(4)))
    u = rng.uniform("a", 2000, 3)
    assert u.shape == (4, 2000, 3) and (u > 0).all() and (u < 1).all()
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.005
    # a draw's first rows do not depend on how many are drawn; names and heads give other numbers
    assert torch.equal(rng.uniform("a", 10, 3), u[:, :10])
    assert not torch.equal(rng.uniform("b", 10, 3), u[:, :10])
    assert not torch.equal(u[0], u[1])
    z = rng.normal("z", 20000)
    assert abs(float(z.mean())) < 0.03 and abs(float(z.std()) - 1) < 0.03
    # the same head's numbers whatever the other heads of its batch
    other = HeadRandom(head_keys(5, torch.tensor([7, 2])))
    assert torch.equal(other.uniform("a", 10, 3)[1], u[2, :10])


@pytest.mark.cuda
def test_cuda_builds_the_heads_the_cpu_builds():
    """The same heads on CUDA as on the CPU (counter-based random numbers in int64 agree to the bit; float
    math agrees to rounding, so a sample point may land in a neighbouring triangle now and then), one
    head is itself in any batch, and every part is built."""
    kw = dict(seed=5, num_gaussians=6000, image_size=32, num_random_views=4, hat_p=0.5, glasses_p=0.5,
              earrings_p=0.5)
    cpu = SyntheticHeads("cpu", **kw).sample(8, head_ids=range(8))
    gpu = SyntheticHeads("cuda", **kw).sample(8, head_ids=range(8))
    for f in dataclasses.fields(cpu.attributes):
        x, y = getattr(cpu.attributes, f.name), getattr(gpu.attributes, f.name).cpu()
        assert torch.equal(x, y) if not x.is_floating_point() else torch.allclose(x, y, atol=1e-4), f.name
    assert torch.allclose(cpu.vertices, gpu.vertices.cpu(), atol=1e-4)
    assert torch.allclose(cpu.cameras.viewmats, gpu.cameras.viewmats.cpu(), atol=1e-4)
    close = (cpu.gaussians.means - gpu.gaussians.means.cpu()).norm(dim=-1) < 1e-3
    assert close.float().mean() > 0.97
    _check_valid(gpu.gaussians)
    alone = SyntheticHeads("cuda", **kw).sample(1, head_ids=[3])
    assert torch.allclose(alone.gaussians.means[0], gpu.gaussians.means[3], atol=1e-4)
    assert torch.allclose(alone.gaussians.colors[0], gpu.gaussians.colors[3], atol=1e-4)
