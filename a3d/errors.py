"""What a3d raises when it refuses something, the argument checks that raise it, and the exit code
the command line gives each kind of failure (the policy is written out in docs/errors.md).

Two kinds of refusal, each with its own class so that callers can tell them apart:

* :class:`InputError` (a ``ValueError``): the caller gave something a3d cannot use: an argument
  out of range, a file whose content is malformed, a config that would not fit in memory. The
  message names the argument or file and says what was expected. The command line exits with
  :data:`EXIT_INPUT`.
* :class:`SetupError` (an ``OSError``): the machine lacks something a3d needs: a CUDA device, the
  trained weights, an optional package. The message says what is missing and how to get it. The
  command line exits with :data:`EXIT_SETUP`.

Anything else escaping a3d is a bug: the command line exits with :data:`EXIT_INTERNAL`.

This module imports nothing heavy (``a3d --help`` imports it); :func:`check_device` imports torch
when called.
"""
from __future__ import annotations

import math
from typing import Any

__all__ = ["InputError", "SetupError", "check_int", "check_number", "check_device", "exit_code",
           "one_line", "EXIT_OK", "EXIT_INTERNAL", "EXIT_INPUT", "EXIT_SETUP", "EXIT_INTERRUPTED"]

EXIT_OK = 0
EXIT_INTERNAL = 1
"""An error a3d did not anticipate (a bug): report it with the traceback of ``--debug``."""
EXIT_INPUT = 2
"""Bad input: an argument, an input file or a config (argparse's usage errors exit 2 too)."""
EXIT_SETUP = 3
"""Bad environment: no CUDA device, no weights, a missing package, an unwritable or full disk, no memory."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT, the shell's convention)."""


class InputError(ValueError):
    """Input a3d cannot use: the message names the argument or file and what was expected."""


class SetupError(OSError):
    """Something a3d needs is missing from this machine: the message says what and how to get it."""


def check_int(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` if it is an int (bool is not) in [lo, hi] (either bound may be None); else InputError.

    Example: ``steps = check_int(steps, "steps", 1, 1000)``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or (lo is not None and value < lo) \
            or (hi is not None and value > hi):
        raise InputError(f"{name}: expected {_int_range(lo, hi)}, got {value!r}")
    return value


def _int_range(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"an int in [{lo}, {hi}]"
    if lo == 1:
        return "a positive int"
    if lo == 0:
        return "a non-negative int"
    if lo is not None:
        return f"an int >= {lo}"
    return "an int" if hi is None else f"an int <= {hi}"


def check_number(value: Any, name: str, lo: float | None = None, hi: float | None = None, *,
                 positive: bool = False) -> float:
    """``value`` as a float if it is a finite real number (int or float, not bool) in [lo, hi], and
    above 0 when ``positive``; else InputError naming ``name``."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) \
        and (lo is None or value >= lo) and (hi is None or value <= hi) and (not positive or value > 0)
    if not ok:
        if positive:
            want = "a positive number" if hi is None else f"a number in (0, {hi}]"
        elif lo is not None and hi is not None:
            want = f"a number in [{lo}, {hi}]"
        elif lo is not None:
            want = f"a finite number >= {lo}"
        else:
            want = "a finite number" if hi is None else f"a finite number <= {hi}"
        raise InputError(f"{name}: expected {want}, got {value!r}")
    return float(value)


def check_device(device: Any, name: str = "device"):
    """A ``torch.device`` for ``device`` ('cpu', 'cuda', 'cuda:1', 'mps', a torch.device) that this
    machine can run on. InputError for a name torch does not know; SetupError for a device this
    machine lacks (for example 'cuda' on a computer without a CUDA GPU or with a CPU-only torch)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"{name}: expected a torch device such as 'cpu', 'cuda' or 'cuda:0', got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = ("this torch is a CPU-only build" if torch.version.cuda is None
                   else "torch finds no CUDA GPU on this machine")
            raise SetupError(f"{name} {str(device)!r}: CUDA is not available ({why}); use 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SetupError(f"{name} {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise SetupError(f"{name} {str(device)!r}: Apple's MPS backend is not available here; use 'cpu'")
    elif dev.type != "cpu":
        raise InputError(f"{name}: expected 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")
    return dev


def exit_code(error: BaseException) -> int:
    """The command line's exit status for an exception that ended a command (see the module docstring)."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, SetupError):
        return EXIT_SETUP
    # A path the user named that does not exist or has the wrong kind is bad input; other OS
    # failures (permissions, a full disk) and running out of memory are the environment's.
    if isinstance(error, (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError)):
        return EXIT_INPUT
    if isinstance(error, (OSError, MemoryError, ImportError)):
        return EXIT_SETUP
    return EXIT_INTERNAL


def one_line(error: BaseException) -> str:
    """The error's message on one line (what the command line prints): its text with line breaks
    folded, or the class name when the message is empty. OSErrors keep their file name."""
    text = str(error).strip() or type(error).__name__
    if isinstance(error, KeyboardInterrupt):  # files being written were left as they were (a3d.core.files)
        text = "interrupted; any file being written was left as it was before"
    elif isinstance(error, MemoryError):
        text = f"out of memory{': ' + str(error) if str(error) else ''}"
    elif isinstance(error, ImportError) and not isinstance(error, SetupError):
        text = f"{text} (a package a3d needs is missing: see the README's install section)"
    return " ".join(text.split())
