"""Files a3d reads from users and writes for them: a bounded JSON reader and the one writing rule.

:func:`read_json` is how every JSON file a3d reads is parsed (camera files, ``config.json`` of a
model, training configs): the size is checked before reading, the bytes must be UTF-8, the nesting
depth is measured before parsing (so a hostile file cannot exhaust the parser's stack), and NaN /
Infinity, which JSON does not have, are refused. Every failure is an :class:`a3d.errors.InputError`
naming the file.

The writing rule: every file a3d produces (PLY, .splat and the web formats, MP4/WebM/GIF, GLB/OBJ,
PNG, JSON, checkpoints, exported weights) is written through :func:`atomic_write` (a file object)
or :func:`atomic_path` (a name, for writers that open files themselves: Pillow, ffmpeg,
safetensors). Either one

* writes to a unique hidden temporary beside the target (``.<stem>.<random>.tmp<ext>``: same
  folder, hence same file system, and the target's extension, for writers that pick the format by
  it), created exclusively, so two writers of one target never share a temporary;
* moves it over the target in one step (``os.replace``) only when the block ends without an error,
  keeping an existing target's permission bits;
* removes it on any error, on Ctrl-C (``KeyboardInterrupt``) and on SIGTERM / SIGHUP: while a
  write is under way in the main thread and those signals have their default action, a handler
  removes every live temporary, kills every live :func:`writer_process`, and then lets the signal
  end the process as it would have (exit status 128 + signal).

An existing file at the target therefore survives a failed or interrupted write byte for byte, and
no file under a real name is ever incomplete. A child encoder started with :func:`writer_process`
(ffmpeg) runs in its own session, so a terminal's Ctrl-C does not make it finish a partial file,
and on Linux it is killed when the process that started it dies, even by SIGKILL. What no program
can do: after ``kill -9`` (or a power cut) the hidden temporary stays behind; the target is intact.
A write from a thread other than the main one gets the error and Ctrl-C cleanup, not the SIGTERM
handler (Python runs signal handlers in the main thread only).

Example (any new writer, e.g. a web format)::

    from a3d.core.files import atomic_write, atomic_path

    with atomic_write("head.spz") as f:      # a binary file object ('w' for text)
        f.write(header)
        f.write(payload)

    with atomic_path("head.png") as tmp:     # a name with the same extension
        Image.fromarray(rgb).save(tmp)

Validate arguments before entering either block, so that a refused call creates nothing.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager, suppress
from typing import IO, Any, Iterator, Sequence

import numpy as np

from ..errors import InputError

__all__ = ["read_json", "atomic_write", "atomic_path", "writer_process", "check_writable", "MAX_JSON_DEPTH"]

MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects :func:`read_json` accepts by default (a3d's files need 4)."""

# A complete JSON string literal (the unrolled form of "(?:[^"\\]|\\.)*", which never backtracks).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def read_json(path: str | os.PathLike, max_bytes: int, max_depth: int = MAX_JSON_DEPTH, what: str = "JSON file") -> Any:
    """Parse the JSON file ``path`` within bounds (see the module docstring).

    Args:
        path: the file.
        max_bytes: larger files are refused before a byte is read.
        max_depth: deeper nesting of arrays/objects is refused before parsing.
        what: what the file is, for messages ("camera file", "model config").
    Raises:
        InputError naming the file for a file too large, not UTF-8, too deeply nested or not valid JSON;
        OSError (as ``open`` raises it, naming the file) when it cannot be read at all.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"{path}: expected a {what}, found a folder")
    size = os.path.getsize(path)
    if size > max_bytes:
        raise InputError(f"{path}: the {what} is {size:,} bytes; at most {max_bytes:,} are accepted")
    with open(path, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew since the size check
        raise InputError(f"{path}: the {what} is over {max_bytes:,} bytes")
    try:
        text = data.decode("utf-8-sig")  # a leading byte-order mark is tolerated
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: the {what} is not UTF-8 text (invalid byte at offset {e.start})") from None
    depth = _nesting_depth(text)
    if depth > max_depth:
        raise InputError(f"{path}: the {what} nests arrays/objects {depth} levels deep; at most {max_depth} "
                         f"are accepted")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: the {what} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") \
            from None
    except (ValueError, RecursionError) as e:  # NaN/Infinity, an integer of over 4,300 digits
        raise InputError(f"{path}: the {what} holds a value a3d does not accept ({' '.join(str(e).split())})") \
            from None


def _nesting_depth(text: str) -> int:
    """The deepest nesting of [ ] and { } outside string literals (an upper bound for invalid JSON)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    if not brackets:
        return 0
    b = np.frombuffer(brackets.encode("ascii"), np.uint8)
    step = np.where((b == ord("[")) | (b == ord("{")), 1, -1)
    return int(np.cumsum(step).max())


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    v = float(text)
    if v in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:40]} overflows a float")
    return v


def check_writable(path: str | os.PathLike, name: str = "path") -> str:
    """``path`` as a string if a file could be written there: not a folder, and its folder, if it
    exists, is a folder. InputError naming ``name`` otherwise; creates nothing. Writers call it while
    validating, so that a bad target is refused before any work."""
    path = os.fspath(path)
    if not path or path.endswith(os.sep) or os.path.isdir(path):
        raise InputError(f"{name}: {path!r} is a folder; expected a file name")
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):  # a folder still to be made is fine; a file in its place is not
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise InputError(f"{name}: {path!r} cannot be written: {folder} is a file, not a folder")
    return path


# The write machinery: the live temporaries and child encoders, which the signal handler cleans up.
_live_temps: dict[str, str] = {}  # token -> temporary path
_live_children: dict[str, subprocess.Popen] = {}
_guard_lock = threading.Lock()
_guard_depth = 0  # writes under way in the main thread that installed the handlers
_installed: dict[int, Any] = {}  # signal -> the handler it had before
_CLEANUP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


def _clean_up_and_die(signum: int, frame) -> None:
    """SIGTERM / SIGHUP during a write: kill child encoders, remove temporaries, then let the signal
    do what it would have done without a3d (end the process)."""
    for child in list(_live_children.values()):
        with suppress(OSError):
            child.kill()
    for child in list(_live_children.values()):
        with suppress(Exception):
            child.wait(timeout=5)
    for tmp in list(_live_temps.values()):
        with suppress(OSError):
            os.remove(tmp)
    signal.signal(signum, _installed.get(signum, signal.SIG_DFL))
    os.kill(os.getpid(), signum)


@contextmanager
def _signals_guarded() -> Iterator[None]:
    """Install :func:`_clean_up_and_die` for the outermost write of the main thread, over default actions only."""
    global _guard_depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with _guard_lock:
        if _guard_depth == 0:
            for sig in _CLEANUP_SIGNALS:
                if signal.getsignal(sig) is signal.SIG_DFL:
                    _installed[sig] = signal.signal(sig, _clean_up_and_die)
        _guard_depth += 1
    try:
        yield
    finally:
        with _guard_lock:
            _guard_depth -= 1
            if _guard_depth == 0:
                for sig, before in list(_installed.items()):
                    if signal.getsignal(sig) is _clean_up_and_die:
                        signal.signal(sig, before)
                    del _installed[sig]


def _new_temporary(path: str) -> tuple[str, str, int]:
    """Create a unique temporary beside ``path``: (token, its name, an open descriptor)."""
    folder, base = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(base)
    for _ in range(100):
        token = secrets.token_hex(6)
        tmp = os.path.join(folder, f".{stem}.{token}.tmp{ext}")
        _live_temps[token] = tmp  # registered before it exists: a signal now removes nothing of anyone else's
        try:
            return token, tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            del _live_temps[token]
        except BaseException:
            del _live_temps[token]
            raise
    raise FileExistsError(f"{path}: no free temporary name beside it")  # pragma: no cover


def _commit(tmp: str, path: str) -> None:
    with suppress(OSError):  # an existing target keeps its permission bits
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
    os.replace(tmp, path)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """A temporary file name beside ``path`` (same extension) for a writer that opens the file
    itself; when the block ends without an error the file is moved over ``path``, otherwise it is
    removed (the writing rule: see the module docstring).

    Raises InputError, before creating anything, when ``path`` is a folder.

    Example::

        with atomic_path("grid.png") as tmp:
            image.save(tmp)
    """
    path = check_writable(path)
    with _signals_guarded():
        token, tmp, fd = _new_temporary(path)
        try:
            os.close(fd)
            yield tmp
            _commit(tmp, path)
        except BaseException:
            with suppress(OSError):
                os.remove(tmp)
            raise
        finally:
            _live_temps.pop(token, None)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing (``mode`` 'wb' or 'w', UTF-8); when the
    block ends without an error it replaces ``path`` in one step, otherwise it is removed (the
    writing rule: see the module docstring).

    Raises InputError, before creating anything, for another mode or when ``path`` is a folder.

    Example::

        with atomic_write("head.ply") as f:
            f.write(header)
    """
    if mode not in ("wb", "w"):
        raise InputError(f"mode: expected 'wb' or 'w', got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": ""})) as f:
            yield f


def _die_with_parent(parent: int):
    """For Popen's preexec_fn on Linux: the child gets SIGKILL when its parent dies (prctl
    PR_SET_PDEATHSIG), so an orphaned encoder never goes on writing."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before the fork: the child only calls it

    def in_child() -> None:
        prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return in_child


@contextmanager
def writer_process(args: Sequence[str], **popen) -> Iterator[subprocess.Popen]:
    """Start a child process that writes a file for a3d (an encoder fed through its stdin) so that it
    never outlives a3d's write: it runs in its own session (a terminal's Ctrl-C reaches a3d, which
    kills it, not the child, which would finish a partial file), it is killed when a3d dies (Linux),
    and the SIGTERM handler of :func:`atomic_path` kills it too.

    When the block ends without an error, its stdin is closed and a3d waits for it; an exit status
    other than 0 raises OSError quoting the end of its stderr. On an error in the block the child is
    killed. Use it inside :func:`atomic_path`, writing to the temporary.
    """
    import tempfile

    popen.setdefault("stdin", subprocess.PIPE)
    errors = popen["stderr"] = tempfile.TemporaryFile()  # a file, not a pipe: a chatty child never blocks
    if sys.platform.startswith("linux"):
        popen["preexec_fn"] = _die_with_parent(os.getpid())
    if os.name == "posix":
        popen["start_new_session"] = True
    child = subprocess.Popen(list(args), **popen)
    token = secrets.token_hex(6)
    _live_children[token] = child
    try:
        yield child
        if child.stdin:
            child.stdin.close()
        if child.wait() != 0:
            errors.seek(0)
            tail = " ".join(errors.read().decode("utf-8", "replace").split())[-400:]
            raise OSError(f"{os.path.basename(args[0])} failed (exit status {child.returncode})"
                          f"{': ' + tail if tail else ''}")
    except BaseException:
        with suppress(OSError):
            child.kill()
        child.wait()
        raise
    finally:
        for pipe in (child.stdin, child.stdout, errors):
            if pipe:
                with suppress(OSError):
                    pipe.close()
        _live_children.pop(token, None)
