"""The rasterizer's constants agree between C++ (csrc/rasterize.h) and Python (a3d/core/contract.py).

The kernels and the reference must take the same per-pixel decisions; a threshold changed on one side
only would show up as rare parity failures far from the cause. This reads the header's ``constexpr``
lines and compares them with the Python values exactly.
"""
from __future__ import annotations

import ast
import operator
import re
from pathlib import Path

import pytest

from a3d.core import contract

HEADER = Path(__file__).resolve().parents[1] / "csrc" / "rasterize.h"

# C++ name -> Python name in a3d/core/contract.py
PAIRS = {
    "kTile": "TILE_SIZE", "kProj": "PROJ_FIELDS", "kNear": "NEAR_PLANE", "kEps2d": "EPS2D",
    "kAlphaMin": "ALPHA_MIN", "kAlphaMax": "ALPHA_MAX", "kTMin": "T_MIN", "kExtentMax": "EXTENT_SIGMA_MAX",
    "kFovMargin": "FOV_CLAMP_MARGIN", "kDepthEps": "DEPTH_ALPHA_EPS", "kMaxSide": "MAX_IMAGE_SIDE",
}
CPP_ONLY = {"kVProj"}  # the backward's record length: no Python code reads it

_CONSTEXPR = re.compile(r"^\s*constexpr\s+(int|double|float)\s+(k\w+)\s*=\s*([^;]+);", re.MULTILINE)


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _eval_literal(expr: str, ctype: str) -> float | int:
    """Evaluate a constant expression of numeric literals (``1.0 / 255.0``) as C++ would for this type."""

    def value(node: ast.AST) -> float | int:
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -value(node.operand)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.left), value(node.right))
        raise ValueError(f"not a literal expression: {expr!r}")

    result = value(ast.parse(expr.strip().removesuffix("f"), mode="eval").body)
    return int(result) if ctype == "int" else float(result)


def header_constants() -> dict[str, float | int]:
    found = {name: _eval_literal(expr, ctype) for ctype, name, expr in _CONSTEXPR.findall(HEADER.read_text())}
    if not found:
        raise AssertionError(f"no constexpr constants found in {HEADER}: did the header's layout change?")
    return found


def test_every_header_constant_is_paired_or_declared_cpp_only():
    names = set(header_constants())
    assert names - set(PAIRS) - CPP_ONLY == set(), "a new constant in csrc/rasterize.h: add it to a3d/core/contract.py"
    assert set(PAIRS) - names == set(), "a constant left csrc/rasterize.h: remove it from a3d/core/contract.py"


@pytest.mark.parametrize("cpp_name", sorted(PAIRS))
def test_header_and_python_agree(cpp_name):
    cpp = header_constants()[cpp_name]
    py = getattr(contract, PAIRS[cpp_name])
    assert type(py) is type(cpp) and py == cpp, f"{cpp_name} = {cpp!r} in C++, {PAIRS[cpp_name]} = {py!r} in Python"


def test_parser_reads_expressions_like_cpp():
    assert _eval_literal("1.0 / 255.0", "double") == 1.0 / 255.0
    assert _eval_literal("16", "int") == 16
    with pytest.raises(ValueError):
        _eval_literal("kTile * 2", "int")
