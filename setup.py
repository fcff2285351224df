"""Build a3d and its extension a3d._C (CPU always; CUDA when a CUDA torch and nvcc are present).

A3D_BUILD_CUDA=1 forces the CUDA part (and fails without a toolkit), A3D_BUILD_CUDA=0 skips it.
torch must be installed first and the build must see it: ``pip install --no-build-isolation .``
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


def extensions():
    cpp = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
    cu = sorted(glob.glob(os.path.join("csrc", "*.cu")))
    cxx = ["-O3", "-std=c++17"]
    if os.name != "nt":
        cxx.append("-fopenmp")
    if want_cuda():
        nvcc = ["-O3", "-std=c++17", "--use_fast_math", "-lineinfo"]
        return [CUDAExtension("a3d._C", cpp + cu, extra_compile_args={"cxx": cxx + ["-DA3D_WITH_CUDA"], "nvcc": nvcc},
                              extra_link_args=["-fopenmp"] if os.name != "nt" else [])]
    return [CppExtension("a3d._C", cpp, extra_compile_args={"cxx": cxx},
                         extra_link_args=["-fopenmp"] if os.name != "nt" else [])]


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
    ],
    extras_require={
        "preprocess": ["ai-edge-litert==2.3.0"],
        "demo": ["gradio==6.31.0"],  # the version the browser test runs against
        # identity metrics (a3d.identity, `a3d eval` on photos): dlib's face-recognition weights, public domain
        "eval": ["face-recognition-models==0.3.0"],
        # dlib itself only checks the PyTorch port against dlib's own descriptors (tests/test_identity.py)
        "dev": ["pytest>=8", "pytest-timeout", "dlib-bin==20.0.1.post1"],
    },
    entry_points={"console_scripts": ["a3d=a3d.cli:main"]},
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(no_python_abi_suffix=False)},
    zip_safe=False,
)
