"""Building a3d's extension on first use: when no prebuilt ``a3d._C`` imports, compile csrc/ with ninja.

:func:`load_or_build` compiles the C++ sources (and the CUDA ones when torch has CUDA and nvcc exists)
through ``torch.utils.cpp_extension.load`` into a per-user cache, one folder per build key (torch version,
Python, platform, the sources' hash, the flags), then loads the library, which registers the ``a3d::``
operators exactly as the prebuilt ``a3d._C`` does. A second process waits on a file lock instead of building
the same thing twice; a later process loads the cached library without compiling.

The compile flags here are the single copy: setup.py imports them, so the prebuilt and the JIT library are
compiled the same way (tests/test_jit.py checks that their outputs agree bit for bit).

Environment:
    A3D_JIT=0: never build (a3d then runs the pure-PyTorch reference when no prebuilt extension imports).
    A3D_JIT_CACHE: the cache folder (default: $XDG_CACHE_HOME/a3d/extensions, else ~/.cache/a3d/extensions).
    A3D_BUILD_CUDA: 1 insists on the CUDA kernels, 0 skips them (as for setup.py).
    CXX: the C++ compiler (default c++, as torch.utils.cpp_extension); MAX_JOBS: ninja's parallel jobs.

This module imports nothing from a3d (setup.py loads it from its file path before a3d is installed).
"""
from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

JIT_ENV = "A3D_JIT"
CACHE_ENV = "A3D_JIT_CACHE"
CUDA_ENV = "A3D_BUILD_CUDA"
LIBRARY_NAME = "a3d_C"  # the JIT library's file stem; it registers the same ops as a3d._C
LOCK_TIMEOUT_S = 3600.0  # how long to wait for another process's build before giving up

# Compile flags of the extension, prebuilt (setup.py) and JIT alike.
CXX_FLAGS = ["-O3", "-std=c++17"] + (["-fopenmp"] if os.name != "nt" else [])
LD_FLAGS = ["-fopenmp"] if os.name != "nt" else []
NVCC_FLAGS = ["-O3", "-std=c++17", "--use_fast_math"]
CUDA_DEFINE = "-DA3D_WITH_CUDA"  # the C++ side of a CUDA build is compiled with it
SOURCE_SUFFIXES = (".cpp", ".cu")
HEADER_SUFFIXES = (".h", ".cuh")
_DONE = "BUILD_OK"  # written after a complete build; a folder without it is rebuilt


class BuildError(RuntimeError):
    """The extension could not be built or loaded; the message names the cause."""


@dataclass(frozen=True)
class Build:
    """A loaded JIT build: ``path`` the shared library, ``cuda`` whether it has the CUDA kernels,
    ``compiled`` whether this process compiled it (False: loaded from the cache), ``seconds`` spent."""

    path: Path
    cuda: bool
    compiled: bool
    seconds: float


def enabled() -> bool:
    """False when ``A3D_JIT=0`` (or false/no/off) turns the first-use build off."""
    return os.environ.get(JIT_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def source_dir(package_dir: Path | None = None) -> Path | None:
    """The folder with the extension's sources: ``a3d/csrc`` in an installed package or a Space copy,
    ``csrc/`` beside the package in a source checkout; None if neither has ``ops.cpp``."""
    package_dir = Path(__file__).resolve().parents[1] if package_dir is None else package_dir
    for d in (package_dir / "csrc", package_dir.parent / "csrc"):
        if (d / "ops.cpp").is_file():
            return d
    return None


def source_files(directory: Path, cuda: bool) -> list[Path]:
    """The translation units to compile: every .cpp, plus every .cu when ``cuda``; sorted."""
    suffixes = (".cpp", ".cu") if cuda else (".cpp",)
    return sorted(p for p in directory.iterdir() if p.suffix in suffixes)


def want_cuda() -> bool:
    """Whether to build the CUDA kernels: A3D_BUILD_CUDA=1/0 decides; otherwise yes when torch was built
    with CUDA and a CUDA toolkit (nvcc) is found."""
    forced = os.environ.get(CUDA_ENV)
    if forced is not None:
        return forced == "1"
    import torch
    from torch.utils.cpp_extension import CUDA_HOME

    return torch.version.cuda is not None and CUDA_HOME is not None


def cache_root() -> Path:
    """The per-user folder that holds one sub-folder per build key."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "a3d" / "extensions"


def _cuda_arches() -> str:
    """The GPU architectures a CUDA build targets (torch reads TORCH_CUDA_ARCH_LIST, else the visible GPUs)."""
    import torch

    if os.environ.get("TORCH_CUDA_ARCH_LIST"):
        return os.environ["TORCH_CUDA_ARCH_LIST"]
    caps = sorted({torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())})
    return "+".join(f"sm{a}{b}" for a, b in caps) or "none"


def build_key(directory: Path, cuda: bool) -> str:
    """The cache folder's name: torch and Python versions, platform, CPU or CUDA, and a hash of every
    source and header file and of the flags, so any change to them gets a build of its own."""
    import torch

    h = hashlib.sha256()
    for p in sorted(p for p in directory.iterdir() if p.suffix in SOURCE_SUFFIXES + HEADER_SUFFIXES):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    h.update(repr((CXX_FLAGS, LD_FLAGS, NVCC_FLAGS if cuda else None, _cuda_arches() if cuda else None)).encode())
    device = f"cu{torch.version.cuda}" if cuda else "cpu"
    name = f"torch{torch.__version__}-{sys.implementation.cache_tag}-{platform.machine()}-{device}-{h.hexdigest()[:16]}"
    return re.sub(r"[^A-Za-z0-9._+-]", "_", name)


def _library_path(folder: Path) -> Path:
    from torch.utils.cpp_extension import LIB_EXT

    return folder / f"{LIBRARY_NAME}{LIB_EXT}"


def _missing_tools(cuda: bool) -> str | None:
    """Why a build cannot start (no compiler, no ninja, no nvcc), or None."""
    from torch.utils.cpp_extension import CUDA_HOME, is_ninja_available

    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        return f"no C++ compiler found (looked for {cxx!r} on PATH; install g++ or set CXX)"
    if not is_ninja_available():
        return "ninja not found (pip install ninja)"
    if cuda and (CUDA_HOME is None or not os.path.exists(os.path.join(CUDA_HOME, "bin", "nvcc"))):
        return f"the CUDA kernels were asked for but nvcc was not found (CUDA_HOME={CUDA_HOME})"
    return None


def _put_ninja_on_path() -> None:
    """Make the ninja of the `ninja` Python package findable when its bin/ folder is not on PATH
    (a virtual environment run without activating it)."""
    if shutil.which("ninja"):
        return
    folders = [os.path.dirname(sys.executable)]
    try:
        import ninja

        folders.insert(0, ninja.BIN_DIR)
    except (ImportError, AttributeError):
        pass
    for folder in folders:
        if os.path.isfile(os.path.join(folder, "ninja")) or os.path.isfile(os.path.join(folder, "ninja.exe")):
            os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")
            return


def _first_error(log: str) -> str:
    """The line of a build log that says what went wrong: the compiler's first ``file:line: error:`` line,
    else the first other ``error:`` line (linker, ninja), else the last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for pattern in (r":\d+(:\d+)?: (fatal )?error:", r"error:"):
        for line in lines:
            if re.search(pattern, line, re.I) and not line.startswith("Error building extension"):
                return line[:300]
    return lines[-1][:300] if lines else "no output"


class _Progress:
    """A progress bar over the build's steps (one object file per source, then the link), read from the
    build folder while ninja runs, since torch's loader reports nothing until it is done."""

    def __init__(self, folder: Path, sources: int, desc: str):
        from tqdm.auto import tqdm

        self.folder, self._stop = folder, threading.Event()
        self.bar = tqdm(total=sources + 1, desc=desc, unit="step", file=sys.stderr, dynamic_ncols=True)
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _done_steps(self) -> int:
        return len(list(self.folder.glob("*.o"))) + int(_library_path(self.folder).exists())

    def _advance(self) -> None:
        done = min(self._done_steps(), self.bar.total)
        if done > self.bar.n:  # redraw only on progress: a Space's log gets a line per redraw
            self.bar.update(done - self.bar.n)

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            self._advance()

    def __enter__(self) -> _Progress:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join()
        self._advance()
        self.bar.close()


def _compile(directory: Path, folder: Path, cuda: bool) -> None:
    """Run torch's ninja build of the sources into ``folder`` and load the result (raises BuildError)."""
    from torch.utils.cpp_extension import load

    sources = [str(p) for p in source_files(directory, cuda)]
    cxx = CXX_FLAGS + ([CUDA_DEFINE] if cuda else [])
    what = "C++ and CUDA" if cuda else "C++"
    print(f"a3d: compiling the {what} kernels once for this torch ({len(sources)} files; a few minutes on a "
          f"small CPU) into {folder}", file=sys.stderr, flush=True)
    try:
        with _Progress(folder, len(sources), "a3d: building kernels"):
            load(name=LIBRARY_NAME, sources=sources, extra_cflags=cxx, extra_cuda_cflags=NVCC_FLAGS if cuda else None,
                 extra_ldflags=LD_FLAGS, extra_include_paths=[str(directory)], build_directory=str(folder),
                 with_cuda=cuda, is_python_module=False, verbose=False)
    except (RuntimeError, OSError, ImportError, SystemExit) as e:  # SystemExit: distutils' way of failing
        log = folder / "build.log"
        log.write_text(str(e), encoding="utf-8")
        raise BuildError(f"compiling the kernels failed: {_first_error(str(e))} (full log: {log})") from e


def load_or_build(package_dir: Path | None = None) -> Build:
    """Load the JIT extension from the cache, compiling it first if this build key has none yet.

    Registers the ``a3d::`` operators in this process (as importing the prebuilt ``a3d._C`` does), so it
    must not be called when a3d._C has been imported. Raises BuildError naming the cause when the sources
    are missing, a tool is missing, the compiler fails or the library does not load.
    """
    import torch

    t0 = time.perf_counter()
    directory = source_dir(package_dir)
    if directory is None:
        raise BuildError("the extension's sources (csrc/) are not in this installation of a3d")
    cuda = want_cuda()
    folder = cache_root() / build_key(directory, cuda)
    library = _library_path(folder)
    compiled = False
    if not (folder / _DONE).is_file():
        _put_ninja_on_path()
        missing = _missing_tools(cuda)
        if missing:
            raise BuildError(missing)
        from filelock import FileLock, Timeout

        lock = FileLock(str(folder) + ".lock")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            try:
                lock.acquire(timeout=0)
            except Timeout:  # (a TimeoutError, hence an OSError: caught before the clause below)
                print(f"a3d: another process is building the kernels; waiting for it (lock {lock.lock_file})",
                      file=sys.stderr, flush=True)
                lock.acquire(timeout=LOCK_TIMEOUT_S)
        except Timeout:
            raise BuildError(f"timed out after {LOCK_TIMEOUT_S:.0f} s waiting for the build lock "
                             f"{lock.lock_file}") from None
        except OSError as e:
            raise BuildError(f"cannot write the build cache {folder} ({e}); set {CACHE_ENV} to a writable "
                             "folder") from e
        try:
            if not (folder / _DONE).is_file():  # the process we waited for may have built it
                # torch's own lock file in the folder can only be left over from a killed build: we hold ours.
                (folder / "lock").unlink(missing_ok=True)
                _compile(directory, folder, cuda)
                (folder / _DONE).write_text(f"{LIBRARY_NAME} for torch {torch.__version__}\n", encoding="utf-8")
                compiled = True
        finally:
            lock.release()
    if not compiled:
        try:
            torch.ops.load_library(str(library))
        except OSError as e:
            raise BuildError(f"the cached build {library} does not load ({e}); delete {folder} to rebuild") from e
    return Build(path=library, cuda=cuda, compiled=compiled, seconds=time.perf_counter() - t0)
