"""Build a3d and its extension a3d._C (CPU always; CUDA when a CUDA torch and nvcc are present).

A3D_BUILD_CUDA=1 forces the CUDA part (and fails without a toolkit), A3D_BUILD_CUDA=0 skips it.
Release builds carry no debug info (the extension is 18 MB with it, under 1 MB without);
A3D_DEBUG_INFO=1 keeps it (-g, unstripped) for debugging the kernels.
torch must be installed first and the build must see it: ``pip install --no-build-isolation .``; the
package then requires the torch minor version it was built against (the extension's C++ ABI).
Static metadata lives in pyproject.toml; this file adds what depends on the build machine.
"""
import glob
import os

from setuptools import find_namespace_packages, setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError as e:  # pragma: no cover - the message is the point
    raise SystemExit(
        "a3d builds its extension against the installed torch: install torch first, then "
        "`pip install --no-build-isolation .` (see README.md)"
    ) from e

HERE = os.path.dirname(os.path.abspath(__file__))


def want_cuda() -> bool:
    forced = os.environ.get("A3D_BUILD_CUDA")
    if forced is not None:
        return forced == "1"
    return torch.version.cuda is not None and CUDA_HOME is not None


def keep_debug_info() -> bool:
    return os.environ.get("A3D_DEBUG_INFO") == "1"


def extensions():
    cpp = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
    cu = sorted(glob.glob(os.path.join("csrc", "*.cu")))
    cxx = ["-O3", "-std=c++17"]
    link = []
    if os.name != "nt":
        cxx.append("-fopenmp")
        link.append("-fopenmp")
        # Python's own CFLAGS carry -g; the last -g flag wins, and -s strips what the linker keeps.
        cxx.append("-g" if keep_debug_info() else "-g0")
        if not keep_debug_info():
            link.append("-s")
    if want_cuda():
        nvcc = ["-O3", "-std=c++17", "--use_fast_math"] + (["-lineinfo"] if keep_debug_info() else [])
        return [CUDAExtension("a3d._C", cpp + cu, extra_compile_args={"cxx": cxx + ["-DA3D_WITH_CUDA"], "nvcc": nvcc},
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
        "scikit-image>=0.22",  # marching cubes (a3d.mesh)
        "scipy>=1.10",  # connected components, nearest Gaussian (a3d.mesh); scikit-image needs it too
        "trimesh>=4.0",  # GLB export (a3d.mesh_io)
        "fast-simplification>=0.1.7",  # quadric decimation (a3d.mesh)
        "safetensors>=0.4",
        "tqdm>=4.66",
    ],
    extras_require={
        "preprocess": ["ai-edge-litert==2.3.0"],
        "demo": ["gradio==6.31.0"],  # the version the browser test runs against
        # identity metrics (a3d.identity, `a3d eval` on photos): dlib's face-recognition weights, public domain
        "eval": ["face-recognition-models==0.3.0"],
        # ruff pinned (a new release may add findings); plyfile: the tests read a3d's PLYs with an independent
        # reader; nbclient/ipykernel run the example notebook; build: the packaging test; dlib-bin: the check of
        # a3d.identity's port against dlib's own descriptors (tests/test_identity.py)
        "dev": ["pytest>=8", "pytest-timeout", "ruff==0.17.5", "plyfile>=1.0", "nbclient>=0.10", "nbformat>=5.9",
                "ipykernel>=6", "build>=1.2", "dlib-bin==20.0.1.post1"],
    },
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(no_python_abi_suffix=False)},
    zip_safe=False,
)
