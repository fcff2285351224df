"""Build a3d and its extension a3d._C (CPU always; CUDA when a CUDA torch and nvcc are present).

A3D_BUILD_CUDA=1 forces the CUDA part (and fails without a toolkit), A3D_BUILD_CUDA=0 skips it.
torch must be installed first and the build must see it: ``pip install --no-build-isolation .``
The sources also ship inside the package (a3d/csrc/), for the first-use build of a3d/_jit.py.
"""
import glob
import importlib.util
import os
import shutil
import sys

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

try:
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension
except ImportError as e:  # pragma: no cover - the message is the point
    raise SystemExit(
        "a3d builds its extension against the installed torch: install torch first, then "
        "`pip install --no-build-isolation .` (see README.md)"
    ) from e

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_jit_module():
    """a3d/_jit.py from its file (a3d itself is not importable before it is installed): the compile flags."""
    spec = importlib.util.spec_from_file_location("a3d_jit_flags", os.path.join(HERE, "a3d", "_jit.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks the module up there
    spec.loader.exec_module(module)
    return module


JIT = _load_jit_module()


class BuildPyWithSources(build_py):
    """Also copies csrc/ into the package as a3d/csrc/, so an installation without the prebuilt extension
    can compile it on first use (a3d/_jit.py looks there)."""

    def run(self):
        super().run()
        dest = os.path.join(self.build_lib, "a3d", "csrc")
        os.makedirs(dest, exist_ok=True)
        for path in sorted(glob.glob(os.path.join(HERE, "csrc", "*"))):
            if path.endswith(JIT.SOURCE_SUFFIXES + JIT.HEADER_SUFFIXES):
                shutil.copy2(path, dest)


def extensions():
    cpp = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
    cu = sorted(glob.glob(os.path.join("csrc", "*.cu")))
    cxx = list(JIT.CXX_FLAGS)  # one copy of the flags for the prebuilt and the first-use (JIT) build
    if JIT.want_cuda():
        return [CUDAExtension("a3d._C", cpp + cu, extra_compile_args={"cxx": cxx + [JIT.CUDA_DEFINE],
                                                                      "nvcc": list(JIT.NVCC_FLAGS)},
                              extra_link_args=list(JIT.LD_FLAGS))]
    return [CppExtension("a3d._C", cpp, extra_compile_args={"cxx": cxx}, extra_link_args=list(JIT.LD_FLAGS))]


def read(path):
    with open(os.path.join(HERE, path), encoding="utf-8") as f:
        return f.read()


def version():
    for line in read("a3d/__init__.py").splitlines():
        if line.startswith("__version__"):
            return line.split("=")[1].strip().strip("\"'")
    raise RuntimeError("a3d/__init__.py has no __version__")


setup(
    name="a3d",
    version=version(),
    description="One portrait in, a full 360° 3D Gaussian-splat head out (Any3DAvatar), with fast rasterizer kernels",
    long_description=read("README.md"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_namespace_packages(include=["a3d", "a3d.*"]),  # asset folders ship as data packages
    include_package_data=True,
    package_data={"a3d": ["assets/*", "assets/**/*"]},
    install_requires=[
        "torch>=2.4",
        "numpy>=1.24",
        "pillow>=10",
        "einops>=0.7",
        "huggingface-hub>=0.25",
        "imageio>=2.31",
        "imageio-ffmpeg>=0.5",
        "plyfile>=1.0",
        "safetensors>=0.4",
        "tqdm>=4.66",
        "ninja>=1.11",  # compiles the extension on first use where no prebuilt one is installed (a3d/_jit.py)
        "filelock>=3.12",  # one build at a time across processes
    ],
    extras_require={
        "preprocess": ["ai-edge-litert==2.3.0"],
        "demo": ["gradio==6.31.0"],  # the version the browser test runs against
        "dev": ["pytest>=8", "pytest-timeout"],
    },
    entry_points={"console_scripts": ["a3d=a3d.cli:main"]},
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(no_python_abi_suffix=False), "build_py": BuildPyWithSources},
    zip_safe=False,
)
