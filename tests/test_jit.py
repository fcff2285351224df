"""The first-use build of the extension (a3d/core/_jit.py): it compiles, and computes bit for bit what the prebuilt
a3d._C computes; a second process waits on the lock instead of building again; without a compiler, or with
A3D_JIT=0, a3d falls back to the reference backend (with one warning naming the cause, or none when asked).

The JIT library is compiled once per test session into a cache under pytest's base temp folder, shared with
tests/test_space.py (`jit_cache_dir`). Each JIT process hides the prebuilt a3d._C (`HIDE_PREBUILT`): the two
register the same operators, so one process can hold only one of them.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from a3d.core import _jit, ops

REPO = Path(__file__).resolve().parents[1]
HIDE_PREBUILT = "import sys; sys.modules['a3d._C'] = None\n"  # `import a3d._C` now raises ImportError

# Runs in a subprocess: loads inputs.safetensors, computes every op (forward and backward) with whatever
# extension this process gets, saves outputs.safetensors and prints which build ran.
COMPUTE = """
import sys
import torch
from safetensors.torch import load_file, save_file
from a3d.core import ops
t = load_file(sys.argv[1])
assert ops.backend("cpu", "rasterize_fwd") == "cpu", ops.info()
print("BUILD", ops.info()["extension_build"].split()[0], ops.info()["extension_path"])
out = {"rays": ops.plucker_rays(t["viewmats"][0], t["Ks"][0], 37, 29)}
params = {k: t[k].clone().requires_grad_(True) for k in ("means", "quats", "scales", "opacities", "colors")}
bg = t["backgrounds"].clone().requires_grad_(True)
rgb, alpha, depth = ops.rasterize_compiled(*params.values(), t["viewmats"], t["Ks"], 37, 29, bg)
out.update(rgb=rgb, alpha=alpha, depth=depth)
loss = (rgb * t["w_rgb"]).sum() + (alpha * t["w_alpha"]).sum() + (depth * t["w_depth"]).sum()
loss.backward()
out.update({"v_" + k: p.grad for k, p in params.items()}, v_backgrounds=bg.grad)
save_file({k: v.detach().contiguous() for k, v in out.items()}, sys.argv[2])
"""


def jit_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's JIT cache: the same folder for every test module, so the kernels compile once."""
    return tmp_path_factory.getbasetemp() / "a3d-jit-cache"


def run_python(code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 900,
               cwd: Path = REPO) -> subprocess.CompletedProcess:
    """`python -c code args` with this checkout first on the path and one OpenMP thread (results are then
    independent of the machine's core count)."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", PYTHONWARNINGS="default")
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def needs_compiler() -> None:
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler on this machine (CI has one)")


@pytest.fixture(scope="module")
def jit_cache(tmp_path_factory) -> Path:
    """The session's cache with the CPU build in it (compiled here unless an earlier module did)."""
    needs_compiler()
    cache = jit_cache_dir(tmp_path_factory)
    r = run_python(HIDE_PREBUILT + "from a3d.core import ops; print(ops.info())", env={_jit.CACHE_ENV: str(cache)})
    assert r.returncode == 0 and "'extension_build': 'jit" in r.stdout, r.stdout + r.stderr[-4000:]
    return cache


def _inputs(seed: int, path: Path) -> None:
    from test_rasterize_kernels import random_scene

    gen = torch.Generator().manual_seed(seed)
    names = ("means", "quats", "scales", "opacities", "colors", "viewmats", "Ks")
    t = dict(zip(names, random_scene(gen, 2, 300, 3, (37, 29), dtype=torch.float32)))
    t["backgrounds"] = torch.rand(2, 3, 3, generator=gen)
    t["w_rgb"] = torch.randn(2, 3, 29, 37, 3, generator=gen)
    t["w_alpha"] = torch.randn(2, 3, 29, 37, 1, generator=gen)
    t["w_depth"] = torch.randn(2, 3, 29, 37, 1, generator=gen)
    save_file({k: v.contiguous() for k, v in t.items()}, str(path))


def test_jit_build_matches_prebuilt_bit_for_bit(jit_cache, tmp_path, seed):
    if ops.info()["extension_build"] != "prebuilt":
        pytest.skip(f"no prebuilt a3d._C to compare with ({ops.extension_error()}); `make setup` builds it")
    _inputs(seed, tmp_path / "inputs.safetensors")
    results = {}
    for build, prefix in (("prebuilt", ""), ("jit", HIDE_PREBUILT)):
        out = tmp_path / f"{build}.safetensors"
        r = run_python(prefix + COMPUTE, str(tmp_path / "inputs.safetensors"), str(out),
                       env={_jit.CACHE_ENV: str(jit_cache)})
        assert r.returncode == 0, r.stderr[-4000:]
        line = next(line for line in r.stdout.splitlines() if line.startswith("BUILD"))
        assert line.split()[1] == build, line
        if build == "jit":
            assert Path(line.split()[2]).parent.parent == jit_cache
        results[build] = load_file(str(out))
    assert results["prebuilt"].keys() == results["jit"].keys()
    assert float(results["prebuilt"]["alpha"].amax()) > 0.5  # the scene is in view: the comparison means something
    for name, expected in results["prebuilt"].items():
        got = results["jit"][name]
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        assert torch.equal(got, expected), f"{name}: the JIT build differs from the prebuilt extension"


def test_cached_build_loads_without_compiling(jit_cache):
    code = HIDE_PREBUILT + ("from a3d.core import _jit, ops\nb = _jit.load_or_build()\n"
                            "print('COMPILED', b.compiled, b.path)\n")
    # Without a compiler on PATH a cached build still loads: nothing is compiled.
    r = run_python(code, env={_jit.CACHE_ENV: str(jit_cache), "CXX": "no-such-compiler"})
    assert r.returncode == 0, r.stderr[-4000:]
    assert "COMPILED False" in r.stdout and "compiling" not in r.stderr


def test_second_process_waits_for_the_build_lock(jit_cache, tmp_path):
    """A process that finds the lock taken waits, then loads what the lock holder built."""
    from filelock import FileLock

    cache = tmp_path / "cache"
    (built,) = [p for p in jit_cache.iterdir() if p.is_dir()]
    folder = cache / built.name
    shutil.copytree(built, folder)
    (folder / _jit._DONE).unlink()  # as if the build were still running
    lock = FileLock(str(folder) + ".lock")
    lock.acquire()
    code = HIDE_PREBUILT + "from a3d.core import _jit\nb = _jit.load_or_build()\nprint('COMPILED', b.compiled)\n"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", **{_jit.CACHE_ENV: str(cache)})
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()  # blocks until the waiting process says so (or exits)
        assert "another process is building the kernels; waiting" in first, first
        time.sleep(1)
        assert proc.poll() is None  # still waiting
        (folder / _jit._DONE).write_text("built by the lock holder\n")
    finally:
        lock.release()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-4000:]
    assert "COMPILED False" in out and "compiling the" not in err


FALLBACK = HIDE_PREBUILT + """
import warnings
import torch
from a3d.core import ops
from a3d.core.rays import plucker_rays_reference
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    backends = [ops.backend("cpu", op) for op in ("plucker_rays", "rasterize_fwd", "plucker_rays")]
    vm, K = torch.eye(4)[None], torch.tensor([[[20.0, 0, 8], [0, 20, 6], [0, 0, 1]]])
    assert torch.equal(ops.plucker_rays(vm, K, 16, 12), plucker_rays_reference(vm, K, 16, 12))
print("BACKENDS", *backends)
print("INFO", ops.info())
for w in caught:
    print("WARNING", w.category.__name__, w.message)
"""


def test_without_a_compiler_the_reference_runs_with_one_warning(tmp_path):
    r = run_python(FALLBACK, env={_jit.CACHE_ENV: str(tmp_path / "cache"), "CXX": "no-such-compiler"})
    assert r.returncode == 0, r.stderr[-4000:]
    assert "BACKENDS torch torch torch" in r.stdout
    warnings = [line for line in r.stdout.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, r.stdout
    assert "ExtensionBuildWarning" in warnings[0] and "no C++ compiler found" in warnings[0]
    assert "no-such-compiler" in warnings[0] and "A3D_JIT=0" in warnings[0]
    assert "'extension_build': 'none'" in r.stdout and "no C++ compiler found" in r.stdout
    assert not (tmp_path / "cache").exists()  # nothing was started


def test_jit_off_runs_the_reference_without_building_or_warning(tmp_path):
    r = run_python(FALLBACK, env={_jit.CACHE_ENV: str(tmp_path / "cache"), _jit.JIT_ENV: "0"})
    assert r.returncode == 0, r.stderr[-4000:]
    assert "BACKENDS torch torch torch" in r.stdout and "WARNING" not in r.stdout
    assert "not loaded (import of a3d._C halted" in r.stdout
    assert not (tmp_path / "cache").exists()


def test_a_compile_error_names_the_line_and_keeps_the_log(tmp_path, monkeypatch):
    needs_compiler()
    package = tmp_path / "a3d"
    (package / "csrc").mkdir(parents=True)
    (package / "csrc" / "ops.cpp").write_text("int broken( { return 0; }\n")
    monkeypatch.setenv(_jit.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(_jit.CUDA_ENV, "0")
    with pytest.raises(_jit.BuildError, match=r"compiling the kernels failed: .*ops\.cpp.*error.*full log: ") as e:
        _jit.load_or_build(package)
    log = Path(str(e.value).rsplit("full log: ", 1)[1].rstrip(")"))
    assert log.is_file() and "ops.cpp" in log.read_text()
    assert not list((tmp_path / "cache").glob(f"*/{_jit._DONE}"))  # a failed build is never taken for done


def test_unwritable_cache_is_a_build_error(tmp_path, monkeypatch):
    needs_compiler()
    (tmp_path / "a_file").write_text("not a folder\n")
    monkeypatch.setenv(_jit.CACHE_ENV, str(tmp_path / "a_file" / "cache"))
    monkeypatch.setenv(_jit.CUDA_ENV, "0")
    with pytest.raises(_jit.BuildError, match=r"cannot write the build cache .*A3D_JIT_CACHE"):
        _jit.load_or_build()


def test_missing_sources_are_a_build_error(tmp_path):
    with pytest.raises(_jit.BuildError, match=r"sources \(csrc/\) are not in this installation"):
        _jit.load_or_build(tmp_path / "a3d")


def test_build_key_follows_sources_headers_and_flags(tmp_path, monkeypatch):
    src = tmp_path / "csrc"
    src.mkdir()
    for name in ("ops.cpp", "rasterize.h", "notes.txt"):
        (src / name).write_text(f"// {name}\n")
    key = _jit.build_key(src, cuda=False)
    assert key.startswith(f"torch{torch.__version__}-{sys.implementation.cache_tag}-") and "-cpu-" in key
    assert _jit.build_key(src, cuda=False) == key
    (src / "notes.txt").write_text("not a source\n")
    assert _jit.build_key(src, cuda=False) == key
    (src / "rasterize.h").write_text("// changed\n")
    assert _jit.build_key(src, cuda=False) != key
    key2 = _jit.build_key(src, cuda=False)
    monkeypatch.setattr(_jit, "CXX_FLAGS", _jit.CXX_FLAGS + ["-DSOMETHING"])
    assert _jit.build_key(src, cuda=False) != key2
    assert _jit.source_files(src, cuda=False) == [src / "ops.cpp"]


def test_cache_root_and_switch(tmp_path, monkeypatch):
    monkeypatch.setenv(_jit.CACHE_ENV, str(tmp_path / "mine"))
    assert _jit.cache_root() == tmp_path / "mine"
    monkeypatch.delenv(_jit.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _jit.cache_root() == tmp_path / "xdg" / "a3d" / "extensions"
    for value, on in (("0", False), ("off", False), ("1", True), ("", True)):
        monkeypatch.setenv(_jit.JIT_ENV, value)
        assert _jit.enabled() is on


def test_installed_package_ships_the_sources(tmp_path):
    """setup.py's build_py puts csrc/ into the package (a3d/csrc), where an installed a3d finds it."""
    r = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    shipped = tmp_path / "a3d" / "csrc"
    expected = sorted(p.name for p in (REPO / "csrc").iterdir() if p.suffix in (".cpp", ".cu", ".h", ".cuh"))
    assert sorted(p.name for p in shipped.iterdir()) == expected
    assert _jit.source_dir(tmp_path / "a3d") == shipped
    assert _jit.source_dir(REPO / "a3d") == REPO / "csrc"


@pytest.mark.cuda
def test_jit_cuda_build_matches_prebuilt(tmp_path, seed):
    """On a GPU machine: the JIT build has CUDA kernels and agrees with the prebuilt one (forward bit for bit;
    the backward sums with atomics, so its float32 order of additions varies run to run)."""
    if ops.info()["extension_build"] != "prebuilt":
        pytest.skip("no prebuilt a3d._C to compare with")
    code = COMPUTE.replace('"cpu"', '"cuda"').replace('t = load_file(sys.argv[1])',
                                                    't = {k: v.cuda() for k, v in load_file(sys.argv[1]).items()}')
    _inputs(seed, tmp_path / "inputs.safetensors")
    results = {}
    for build, prefix in (("prebuilt", ""), ("jit", HIDE_PREBUILT)):
        out = tmp_path / f"{build}.safetensors"
        r = run_python(prefix + code, str(tmp_path / "inputs.safetensors"), str(out),
                       env={_jit.CACHE_ENV: str(tmp_path / "cache")}, timeout=1800)
        assert r.returncode == 0, r.stderr[-4000:]
        assert f"BUILD {build}" in r.stdout, r.stdout
        results[build] = load_file(str(out))
    for name, expected in results["prebuilt"].items():
        got = results["jit"][name]
        if name.startswith("v_"):
            torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5, msg=name)
        else:
            assert torch.equal(got, expected), f"{name}: the JIT CUDA build differs from the prebuilt extension"
