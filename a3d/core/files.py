"""Files a3d reads from users and writes for them: a bounded JSON reader and an atomic writer.

:func:`read_json` is how every JSON file a3d reads is parsed (camera files, ``config.json`` of a
model, training configs): the size is checked before reading, the bytes must be UTF-8, the nesting
depth is measured before parsing (so a hostile file cannot exhaust the parser's stack), and NaN /
Infinity, which JSON does not have, are refused. Every failure is an :class:`a3d.errors.InputError`
naming the file.

:func:`atomic_write` is how every file a3d writes is written (PLY, .splat, camera files,
checkpoints, logs): into a temporary file beside the target, renamed over it only once complete,
so a crash or a full disk never leaves a half-written file under the real name.
"""
from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager, suppress
from typing import IO, Any, Iterator

import numpy as np

from ..errors import InputError

__all__ = ["read_json", "atomic_write", "MAX_JSON_DEPTH"]

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


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing (``mode`` 'wb' or 'w'); when the block ends
    without an error it replaces ``path`` in one step, otherwise it is removed.

    Example::

        with atomic_write("head.ply") as f:
            f.write(header)
    """
    if mode not in ("wb", "w"):
        raise InputError(f"mode: expected 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, mode) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.remove(tmp)
        raise
