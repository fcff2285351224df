"""PLY / .splat I/O: exact layout, round trips, files written independently, malformed files."""
from __future__ import annotations

import math
import os
import struct
import time
import tracemalloc

import numpy as np
import pytest
import torch

from a3d.core.gaussians import SH_C0, Gaussians
from a3d.io.ply import MAX_HEADER_BYTES, OPACITY_EPS, load_ply, load_splat, save_ply, save_splat

INRIA_ORDER_K0 = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                  "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]


def random_gaussians(n: int, k: int = 0, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.randn(n, 3, generator=g),
        quats=torch.randn(n, 4, generator=g),
        scales=torch.exp(torch.empty(n, 3).uniform_(-7, 1, generator=g)),
        opacities=torch.rand(n, generator=g).clamp(1e-3, 1 - 1e-3),
        colors=torch.rand(n, 3, generator=g),
        sh_rest=torch.randn(n, k, 3, generator=g) if k else None,
    )


def inria_names(k: int) -> list[str]:
    rest = [f"f_rest_{i}" for i in range(3 * k)]
    return INRIA_ORDER_K0[:9] + rest + INRIA_ORDER_K0[9:]


def write_ply_by_hand(path, names: list[str], rows: list[list[float]], fmt: str = "binary_little_endian 1.0",
                      ptype: str = "float", count: int | None = None, extra: bytes = b"") -> None:
    """Header text and struct-packed rows, independent of a3d.io.ply."""
    count = len(rows) if count is None else count
    header = "ply\n" f"format {fmt}\n" "comment hand-written test file\n" f"element vertex {count}\n"
    header += "".join(f"property {ptype} {n}\n" for n in names) + "end_header\n"
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        for r in rows:
            f.write(struct.pack("<" + "f" * len(names), *r))
        f.write(extra)


def read_header(path) -> tuple[list[str], int]:
    data = open(path, "rb").read()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    return data[:end].decode("ascii").splitlines(), end


# ---- round trips -------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [0, 3, 8, 15])
def test_round_trip(tmp_path, k):
    g = random_gaussians(257, k, seed=k)
    path = tmp_path / "g.ply"
    save_ply(g, path)
    h = load_ply(path)
    # stored as given: bit exact
    assert torch.equal(h.means, g.means)
    assert torch.equal(h.quats, g.quats)
    if k:
        assert h.sh_rest is not None and torch.equal(h.sh_rest, g.sh_rest)
    else:
        assert h.sh_rest is None
    # through float64 encodings: float32 rounding only
    torch.testing.assert_close(h.colors, g.colors, rtol=0, atol=1e-7)
    torch.testing.assert_close(h.opacities, g.opacities, rtol=2e-6, atol=0)
    torch.testing.assert_close(h.scales, g.scales, rtol=2e-6, atol=0)
    # saving what was loaded gives the same bytes for every field stored as given
    save_ply(h, tmp_path / "h.ply")
    a, b = (np.fromfile(p, dtype=np.dtype([(n, "<f4") for n in inria_names(k)]), offset=read_header(p)[1])
            for p in (path, tmp_path / "h.ply"))
    for name in ["x", "y", "z", "rot_0", "rot_1", "rot_2", "rot_3"] + [f"f_rest_{i}" for i in range(3 * k)]:
        assert a[name].tobytes() == b[name].tobytes(), name


def test_header_and_layout_exact(tmp_path):
    g = random_gaussians(5, 3)
    path = tmp_path / "g.ply"
    save_ply(g, path, up="+y")  # a3d's world as it is: the bytes are the fields
    lines, end = read_header(path)
    assert lines[0] == "ply" and lines[1] == "format binary_little_endian 1.0"
    assert [line for line in lines if line.startswith("element")] == ["element vertex 5"]
    props = [line.split() for line in lines if line.startswith("property")]
    assert all(p[1] == "float" for p in props)
    assert [p[2] for p in props] == inria_names(3)
    data = open(path, "rb").read()[end:]
    stride = 4 * len(props)
    assert len(data) == 5 * stride
    row = struct.unpack("<" + "f" * len(props), data[2 * stride: 3 * stride])  # vertex 2, unpacked by hand
    v = dict(zip(inria_names(3), row))
    assert (v["x"], v["y"], v["z"]) == tuple(g.means[2].tolist())
    assert (v["nx"], v["ny"], v["nz"]) == (0.0, 0.0, 0.0)
    assert [v[f"rot_{i}"] for i in range(4)] == g.quats[2].tolist()
    for c in range(3):
        assert math.isclose(0.5 + SH_C0 * v[f"f_dc_{c}"], g.colors[2, c].item(), abs_tol=1e-6)
        for j in range(3):  # channel-major
            assert v[f"f_rest_{c * 3 + j}"] == g.sh_rest[2, j, c].item()
        assert math.isclose(math.exp(v[f"scale_{c}"]), g.scales[2, c].item(), rel_tol=1e-6)
    assert math.isclose(1 / (1 + math.exp(-v["opacity"])), g.opacities[2].item(), rel_tol=1e-6)


def test_plyfile_reads_our_files(tmp_path):
    import plyfile  # an independent reader (the dev extra installs it)

    g = random_gaussians(7, 3)
    save_ply(g, tmp_path / "g.ply", up="+y")
    ply = plyfile.PlyData.read(str(tmp_path / "g.ply"))
    assert [e.name for e in ply.elements] == ["vertex"]
    v = ply["vertex"]
    assert [p.name for p in v.properties] == inria_names(3)
    assert np.array_equal(v["y"], g.means[:, 1].numpy())
    assert np.array_equal(v["f_rest_5"], g.sh_rest[:, 2, 1].numpy())  # channel G (c=1), coefficient 2


def test_opacity_clamped_before_logit(tmp_path):
    g = random_gaussians(4)
    g.opacities = torch.tensor([0.0, 1.0, 0.5, 1e-9])
    save_ply(g, tmp_path / "g.ply")
    h = load_ply(tmp_path / "g.ply")
    expect = torch.tensor([OPACITY_EPS, 1 - OPACITY_EPS, 0.5, OPACITY_EPS])
    torch.testing.assert_close(h.opacities, expect, rtol=1e-5, atol=0)


def test_empty_scene_round_trips(tmp_path):
    g = random_gaussians(0)
    save_ply(g, tmp_path / "g.ply")
    h = load_ply(tmp_path / "g.ply")
    assert h.means.shape == (0, 3) and h.opacities.shape == (0,)


# ---- files written by other tools (independent writer) -----------------------------------------

@pytest.mark.parametrize("k", [0, 3, 8, 15])
def test_load_independent_inria_file(tmp_path, k):
    rng = np.random.default_rng(k)
    n = 6
    names = inria_names(k)
    raw = rng.normal(size=(n, len(names))).astype(np.float32)
    raw[:, 3:6] = 0.0
    path = tmp_path / "inria.ply"
    write_ply_by_hand(path, names, raw.tolist())
    g = load_ply(path, up="+y")  # as stored (by default a foreign file is read as y-down, see test_default_up_*)
    col = {name: raw[:, i].astype(np.float64) for i, name in enumerate(names)}
    np.testing.assert_array_equal(g.means.numpy(), raw[:, 0:3])
    np.testing.assert_array_equal(g.quats.numpy(), np.stack([col[f"rot_{i}"] for i in range(4)], -1))
    np.testing.assert_allclose(g.colors.numpy(), 0.5 + SH_C0 * np.stack([col[f"f_dc_{i}"] for i in range(3)], -1),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(g.opacities.numpy(), 1 / (1 + np.exp(-col["opacity"])), rtol=1e-6)
    np.testing.assert_allclose(g.scales.numpy(), np.exp(np.stack([col[f"scale_{i}"] for i in range(3)], -1)),
                               rtol=1e-6)
    if k == 0:
        assert g.sh_rest is None
    else:
        assert g.sh_rest.shape == (n, k, 3)
        for c in range(3):
            for j in range(k):
                np.testing.assert_array_equal(g.sh_rest[:, j, c].numpy(), raw[:, names.index(f"f_rest_{c * k + j}")])


def test_load_accepts_other_order_and_no_normals(tmp_path):
    names = ["opacity", "rot_0", "rot_1", "rot_2", "rot_3", "x", "y", "z", "scale_0", "scale_1", "scale_2",
             "f_dc_0", "f_dc_1", "f_dc_2"]
    row = [0.0, 1.0, 0.0, 0.0, 0.0, 1.5, -2.0, 3.0, math.log(0.5), 0.0, math.log(2.0), 0.0, 1.0, -1.0]
    path = tmp_path / "other.ply"
    write_ply_by_hand(path, names, [row])
    g = load_ply(path, up="+y")
    assert g.means.tolist() == [[1.5, -2.0, 3.0]]
    assert g.quats.tolist() == [[1.0, 0.0, 0.0, 0.0]]
    torch.testing.assert_close(g.opacities, torch.tensor([0.5]))
    torch.testing.assert_close(g.scales, torch.tensor([[0.5, 1.0, 2.0]]))
    torch.testing.assert_close(g.colors, torch.tensor([[0.5, 0.5 + SH_C0, 0.5 - SH_C0]]))


def test_crlf_header_and_float32_type_name(tmp_path):
    names = INRIA_ORDER_K0
    header = ("ply\r\nformat binary_little_endian 1.0\r\nelement vertex 1\r\n"
              + "".join(f"property float32 {n}\r\n" for n in names) + "end_header\r\n")
    path = tmp_path / "crlf.ply"
    path.write_bytes(header.encode() + struct.pack("<17f", *range(17)))
    g = load_ply(path, up="+y")
    assert g.means.tolist() == [[0.0, 1.0, 2.0]]


# ---- malformed files ---------------------------------------------------------------------------

def _row(names):
    return [[0.1 * i for i in range(len(names))]]


@pytest.mark.parametrize("case, match", [
    ("missing", r"missing vertex properties \['scale_1'\]"),
    ("extra", r"unknown vertex properties \['red'\]"),
    ("bad_rest", r"7 f_rest_\* properties"),
    ("double", r"'x' has type 'double'"),
    ("uchar", r"'x' has type 'uchar'"),
    ("ascii", r"format 'ascii 1.0' is not supported"),
    ("big", r"format 'binary_big_endian 1.0' is not supported"),
    ("truncated", r"truncated"),
    ("trailing", r"unexpected bytes after"),
    ("nan", r"'opacity' holds NaN or inf \(first at vertex 1\)"),
    ("inf", r"'scale_2' holds NaN or inf"),
    ("not_ply", r"not a PLY file"),
    ("no_end", r"no 'end_header'"),
    ("two_elements", r"element 'face'"),
    ("duplicate", r"'opacity' appears twice"),
    ("list", r"not supported"),
    ("bad_count", r"vertex count '-3'"),
])
def test_malformed_raise(tmp_path, case, match):
    names = list(INRIA_ORDER_K0)
    rows = [list(r) for r in _row(names) * 2]  # two distinct rows
    path = tmp_path / f"{case}.ply"
    if case == "missing":
        names.remove("scale_1")
        write_ply_by_hand(path, names, _row(names))
    elif case == "extra":
        names.append("red")
        write_ply_by_hand(path, names, _row(names))
    elif case == "bad_rest":
        names[9:9] = [f"f_rest_{i}" for i in range(7)]
        write_ply_by_hand(path, names, _row(names))
    elif case in ("double", "uchar"):
        header = ("ply\nformat binary_little_endian 1.0\nelement vertex 1\n" + f"property {case} x\n"
                  + "".join(f"property float {n}\n" for n in names[1:]) + "end_header\n")
        path.write_bytes(header.encode() + b"\0" * (8 + 4 * 16))
    elif case == "ascii":
        write_ply_by_hand(path, names, [], fmt="ascii 1.0", count=1, extra=(" ".join(["0"] * 17) + "\n").encode())
    elif case == "big":
        write_ply_by_hand(path, names, [], fmt="binary_big_endian 1.0", count=1, extra=struct.pack(">17f", *[0] * 17))
    elif case == "truncated":
        write_ply_by_hand(path, names, rows, count=3)
    elif case == "trailing":
        write_ply_by_hand(path, names, rows, extra=b"\0" * 4)
    elif case == "nan":
        rows[1][names.index("opacity")] = float("nan")
        write_ply_by_hand(path, names, rows)
    elif case == "inf":
        rows[0][names.index("scale_2")] = float("inf")
        write_ply_by_hand(path, names, rows)
    elif case == "not_ply":
        path.write_bytes(b"\x89PNG\r\n" + b"\0" * 100)
    elif case == "no_end":
        path.write_bytes(b"ply\nformat binary_little_endian 1.0\n" + b"comment " + b"x" * (MAX_HEADER_BYTES + 10))
    elif case == "two_elements":
        write_ply_by_hand(path, names, [], count=1, extra=b"")
        data = path.read_bytes().replace(b"end_header\n", b"element face 0\nproperty list uchar int vertex_indices\n"
                                                          b"end_header\n")
        path.write_bytes(data + struct.pack("<17f", *[0] * 17))
    elif case == "duplicate":
        write_ply_by_hand(path, names + ["opacity"], [[0.0] * 18])
    elif case == "list":
        header = ("ply\nformat binary_little_endian 1.0\nelement vertex 0\nproperty list uchar float x\n"
                  "end_header\n")
        path.write_bytes(header.encode())
    elif case == "bad_count":
        write_ply_by_hand(path, names, [], count=-3)
    with pytest.raises(ValueError, match=match):
        load_ply(path)


def test_huge_vertex_count_fails_fast_without_allocating(tmp_path):
    path = tmp_path / "huge.ply"
    write_ply_by_hand(path, INRIA_ORDER_K0, _row(INRIA_ORDER_K0), count=10**12)
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="exceed max_vertices"):
        load_ply(path)
    with pytest.raises(ValueError, match="truncated"):
        load_ply(path, max_vertices=10**13)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 4 * MAX_HEADER_BYTES + 2**20  # the header buffer, never the declared vertex data


def test_header_over_limit_refused_even_if_terminated(tmp_path):
    path = tmp_path / "long.ply"
    comments = "".join(f"comment {'y' * 100}\n" for _ in range(MAX_HEADER_BYTES // 100 + 5))
    header = "ply\nformat binary_little_endian 1.0\n" + comments + "element vertex 0\n" + \
        "".join(f"property float {n}\n" for n in INRIA_ORDER_K0) + "end_header\n"
    path.write_bytes(header.encode())
    with pytest.raises(ValueError, match="end_header"):
        load_ply(path)


def test_max_vertices_argument_checked(tmp_path):
    with pytest.raises(ValueError, match="max_vertices"):
        load_ply(tmp_path / "x.ply", max_vertices=-1)


# ---- save errors -------------------------------------------------------------------------------

def test_save_refuses_batched_gaussians(tmp_path):
    g = random_gaussians(6)
    batched = Gaussians(*(t.reshape(2, 3, *t.shape[1:]) for t in (g.means, g.quats, g.scales, g.opacities, g.colors)))
    for fn in (save_ply, save_splat):
        with pytest.raises(ValueError, match="batch"):
            fn(batched, tmp_path / "b.out")
    save_ply(batched.scene(1), tmp_path / "one.ply")  # the hint works
    assert torch.equal(load_ply(tmp_path / "one.ply").means, g.means[3:])


@pytest.mark.parametrize("field, value, match", [
    ("means", float("nan"), "gaussians.means"),
    ("colors", float("inf"), "gaussians.colors"),
    ("scales", 0.0, "gaussians.scales: must be positive"),
])
def test_save_refuses_bad_values(tmp_path, field, value, match):
    g = random_gaussians(3)
    getattr(g, field)[1, 0] = value
    with pytest.raises(ValueError, match=match):
        save_ply(g, tmp_path / "g.ply")
    assert not os.path.exists(tmp_path / "g.ply")


def test_save_refuses_non_gaussians(tmp_path):
    with pytest.raises(ValueError, match="gaussians: expected"):
        save_ply({"means": torch.zeros(1, 3)}, tmp_path / "g.ply")


# ---- .splat ------------------------------------------------------------------------------------

def test_splat_byte_layout(tmp_path):
    g = Gaussians(
        means=torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.25], [0.0, 0.0, 0.0]]),
        quats=torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, -3.0, 4.0], [1.0, 1.0, 1.0, 1.0]]),
        scales=torch.tensor([[0.1, 0.1, 0.1], [1.0, 2.0, 0.5], [0.2, 0.3, 0.4]]),
        opacities=torch.tensor([0.8, 0.6, 1.0]),
        colors=torch.tensor([[1.2, 0.5, -0.1], [0.0, 1.0, 0.25], [0.1, 0.2, 0.3]]),
    )
    path = tmp_path / "g.splat"
    save_splat(g, path, up="+y")
    data = path.read_bytes()
    assert len(data) == 3 * 32
    recs = [struct.unpack("<3f3f4B4B", data[32 * i: 32 * (i + 1)]) for i in range(3)]
    # order: descending volume * opacity: [1] 1.0*0.6=0.6, [2] 0.024, [0] 0.0008
    assert [r[:3] for r in recs] == [(-1.0, 0.5, 0.25), (0.0, 0.0, 0.0), (1.0, 2.0, 3.0)]
    first = recs[0]
    assert first[3:6] == (1.0, 2.0, 0.5)
    assert first[6:10] == (0, 255, 64, 153)  # colour 0, 1, 0.25 and alpha 0.6, times 255, rounded
    assert first[10:14] == (128, 128, round(128 - 0.6 * 128), round(128 + 0.8 * 128))  # q/|q| = (0, 0, -.6, .8)
    last = recs[2]
    assert last[6:10] == (255, 128, 0, 204)  # colours clamped to [0, 1]
    assert last[10:14] == (255, 128, 128, 128)  # w = 1 -> 256 clamped to 255
    assert recs[1][10:14] == (192, 192, 192, 192)


def test_splat_round_trip_quantised(tmp_path):
    g = random_gaussians(100)
    save_splat(g, tmp_path / "g.splat")
    h = load_splat(tmp_path / "g.splat")
    key = (g.scales.prod(-1) * g.opacities).double()
    order = torch.argsort(key, descending=True)
    assert torch.equal(h.means, g.means[order])
    assert torch.equal(h.scales, g.scales[order])
    torch.testing.assert_close(h.colors, g.colors[order], rtol=0, atol=0.5 / 255 + 1e-6)
    torch.testing.assert_close(h.opacities, g.opacities[order], rtol=0, atol=0.5 / 255 + 1e-6)
    q = torch.nn.functional.normalize(g.quats[order], dim=-1)
    torch.testing.assert_close(h.quats, q.clamp(max=127 / 128), rtol=0, atol=0.5 / 128 + 1e-6)


def test_splat_malformed(tmp_path):
    (tmp_path / "bad.splat").write_bytes(b"\0" * 33)
    with pytest.raises(ValueError, match="multiple of the 32-byte"):
        load_splat(tmp_path / "bad.splat")
    (tmp_path / "big.splat").write_bytes(b"\0" * 64)
    with pytest.raises(ValueError, match="max_vertices"):
        load_splat(tmp_path / "big.splat", max_vertices=1)
    g = random_gaussians(2)
    g.quats[0] = 0.0
    with pytest.raises(ValueError, match="gaussians.quats"):
        save_splat(g, tmp_path / "z.splat")


# ---- the bundled example head ------------------------------------------------------------------

def test_example_head_asset_loads_and_matches_its_script():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    asset = root / "a3d" / "assets" / "example_head.ply"
    assert asset.stat().st_size < 3 * 2**20
    g = load_ply(asset)
    assert 20_000 <= g.num_gaussians <= 50_000 and g.sh_rest is None
    # framing convention: centred, y up, face toward +z (the nose is the frontmost point)
    lo, hi = g.means.min(0).values, g.means.max(0).values
    assert (hi[0] + lo[0]).abs() < 0.02 and 0.45 < hi[0] < 0.55 and 0.5 < hi[2] < 0.6 and -0.6 < lo[2] < -0.5
    front = g.means[g.means[:, 2].argmax()]
    assert front[0].abs() < 0.02 and -0.2 < front[1] < 0.0
    spec = importlib.util.spec_from_file_location("make_example_head", root / "scripts" / "make_example_head.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    fresh = mod.make_head()
    assert fresh.num_gaussians == g.num_gaussians
    torch.testing.assert_close(g.means, fresh.means, atol=1e-6, rtol=0)
    torch.testing.assert_close(g.colors, fresh.colors, atol=1e-6, rtol=0)
    torch.testing.assert_close(g.scales, fresh.scales, atol=0, rtol=1e-5)


# ---- SH degree on save, up axis ------------------------------------------------------------------

@pytest.mark.parametrize("have,want", [(0, 3), (3, 3), (15, 1), (8, 0), (3, None)])
def test_save_sh_degree_pads_or_drops(tmp_path, have, want):
    import plyfile

    g = random_gaussians(9, have, seed=have)
    save_ply(g, tmp_path / "g.ply", sh_degree=want)
    k = have if want is None else (want + 1) ** 2 - 1
    v = plyfile.PlyData.read(str(tmp_path / "g.ply"))["vertex"]  # an independent reader sees the Inria layout
    assert [p.name for p in v.properties] == inria_names(k)
    h = load_ply(tmp_path / "g.ply")
    if k == 0:
        assert h.sh_rest is None
        return
    assert h.sh_rest.shape == (9, k, 3)
    kept = min(have, k)
    if kept:
        assert torch.equal(h.sh_rest[:, :kept], g.sh_rest[:, :kept])
    assert not h.sh_rest[:, kept:].any()  # padded with zeros


def test_save_sh_degree_checked(tmp_path):
    for bad in (5, -1, 1.0, True):
        with pytest.raises(ValueError, match="sh_degree"):
            save_ply(random_gaussians(2), tmp_path / "g.ply", sh_degree=bad)


def test_up_minus_y_turns_about_x_and_reads_back(tmp_path):
    from a3d.core.rotations import quat_to_rotmat

    g = random_gaussians(11, 8, seed=3)
    save_ply(g, tmp_path / "down.ply", up="-y")
    raw = load_ply(tmp_path / "down.ply", up="+y")  # as stored: y and z negated
    torch.testing.assert_close(raw.means, g.means * torch.tensor([1.0, -1.0, -1.0]), rtol=0, atol=0)
    turn = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    torch.testing.assert_close(quat_to_rotmat(raw.quats), turn @ quat_to_rotmat(g.quats), rtol=0, atol=1e-6)
    back = load_ply(tmp_path / "down.ply", up="-y")
    assert torch.equal(back.means, g.means) and torch.equal(back.sh_rest, g.sh_rest)
    assert torch.equal(back.quats, g.quats)  # the reader turns back by -180°: bit for bit
    save_splat(g, tmp_path / "down.splat", up="-y")
    s = load_splat(tmp_path / "down.splat", up="+y")
    assert sorted(s.means[:, 1].tolist()) == sorted((-g.means[:, 1]).tolist())  # y negated in the .splat too
    with pytest.raises(ValueError, match="up"):
        save_ply(g, tmp_path / "x.ply", up="z")
    with pytest.raises(ValueError, match="up"):
        load_ply(tmp_path / "down.ply", up="+z")


@pytest.mark.parametrize("degree", [1, 2, 3])
def test_plyfile_written_scene_of_any_degree_loads(tmp_path, degree):
    """A degree-1..3 file as other tools write it (through plyfile, normals included, extra comment)."""
    import plyfile

    rng = np.random.default_rng(degree)
    n, k = 13, (degree + 1) ** 2 - 1
    names = inria_names(k)
    rec = np.zeros(n, dtype=[(p, "<f4") for p in names])
    for p in names:
        rec[p] = rng.normal(size=n)
    plyfile.PlyData([plyfile.PlyElement.describe(rec, "vertex")], byte_order="<",
                    comments=["written by plyfile"]).write(str(tmp_path / "scene.ply"))
    g = load_ply(tmp_path / "scene.ply", up="+y")
    assert g.sh_rest.shape == (n, k, 3)
    for c in range(3):
        assert np.array_equal(g.sh_rest[:, k - 1, c].numpy(), rec[f"f_rest_{c * k + k - 1}"])
    np.testing.assert_array_equal(g.means.numpy(), np.stack([rec["x"], rec["y"], rec["z"]], -1))


def test_default_up_is_y_down_and_recorded(tmp_path):
    """The default file is the y-down 3DGS world, says so in its header, and reads back into a3d's world."""
    g = random_gaussians(9, 3, seed=5)
    save_ply(g, tmp_path / "d.ply")
    lines, _ = read_header(tmp_path / "d.ply")
    assert "comment up -y" in lines
    assert torch.equal(load_ply(tmp_path / "d.ply", up="+y").means, g.means * torch.tensor([1.0, -1.0, -1.0]))
    back = load_ply(tmp_path / "d.ply")  # follows the comment
    assert torch.equal(back.means, g.means) and torch.equal(back.quats, g.quats)
    save_ply(g, tmp_path / "u.ply", up="+y")
    assert "comment up +y" in read_header(tmp_path / "u.ply")[0]
    assert torch.equal(load_ply(tmp_path / "u.ply").means, g.means)
    save_splat(g, tmp_path / "d.splat")  # no header: the reader assumes the same default
    assert torch.allclose(load_splat(tmp_path / "d.splat").means.sort(0).values, g.means.sort(0).values)


def test_default_up_of_files_without_the_comment(tmp_path):
    """A PLY of an older a3d (its comment, no axis) is a3d's world; any other PLY is the 3DGS convention."""
    g = random_gaussians(4, 0, seed=6)
    save_ply(g, tmp_path / "new.ply", up="+y")
    data = (tmp_path / "new.ply").read_bytes()
    (tmp_path / "old.ply").write_bytes(data.replace(b"comment up +y\n", b""))
    assert torch.equal(load_ply(tmp_path / "old.ply").means, g.means)
    (tmp_path / "foreign.ply").write_bytes(data.replace(b"comment up +y\n", b"").replace(b"comment written by a3d\n",
                                                                                          b"comment trained\n"))
    assert torch.equal(load_ply(tmp_path / "foreign.ply").means, g.means * torch.tensor([1.0, -1.0, -1.0]))
    assert torch.equal(load_ply(tmp_path / "foreign.ply", up="+y").means, g.means)  # an explicit axis wins
