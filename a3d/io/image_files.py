"""The photo files a command was given: image files, folders of them and glob patterns, in a stable order.

``a3d reconstruct photos/ "shots/*.png" me.jpg`` reads every image of ``photos/`` (sorted by name, not
descending into sub-folders), every file the pattern matches (sorted; a shell usually expands an
unquoted pattern itself, a quoted one arrives here) and ``me.jpg``. A name that matches nothing is
reported, not fatal: the caller decides (the command line skips it, says so and exits with status 2).
"""
from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Sequence

__all__ = ["IMAGE_SUFFIXES", "expand_image_paths"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
"""The file endings a folder is searched for (any case)."""


def _is_pattern(spec: str) -> bool:
    return any(c in spec for c in "*?[")


def expand_image_paths(specs: Sequence[str | os.PathLike]) -> tuple[list[str], list[tuple[str, str]]]:
    """Files named by ``specs`` (files, folders, glob patterns) -> (the files in order; [(spec, why it gave no
    file)] for a name that is missing, a pattern that matches nothing or a folder without images). A file
    named explicitly is kept whatever its ending (reading it says if it is no image) and as often as it is
    named; a folder or pattern adds only files not already listed."""
    files: list[str] = []
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()

    def add(path: str, explicit: bool = False) -> None:
        key = os.path.normcase(os.path.abspath(path))
        if explicit or key not in seen:
            seen.add(key)
            files.append(path)

    for spec in map(os.fspath, specs):
        if os.path.isdir(spec):
            found = sorted(str(p) for p in Path(spec).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append((spec, f"the folder has no image files ({', '.join(IMAGE_SUFFIXES)})"))
            for path in found:
                add(path)
        elif os.path.isfile(spec):
            add(spec, explicit=True)
        elif _is_pattern(spec):
            found = sorted(p for p in glob.glob(spec) if os.path.isfile(p))
            if not found:
                problems.append((spec, "the pattern matches no file"))
            for path in found:
                add(path)
        else:
            problems.append((spec, "no such file or folder"))
    return files, problems
