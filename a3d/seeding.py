"""Deriving independent random seeds from (seed, index) pairs.

Nearby seeds give correlated streams in torch's Mersenne twister, so every place that needs a seed per
head, per step, per epoch or per rank mixes the pair through splitmix64 here instead of adding them.
"""
from __future__ import annotations

_MASK64 = 2**64 - 1


def mix_seed(seed: int, index: int, bits: int = 63) -> int:
    """A ``bits``-bit seed for item ``index`` of stream ``seed``: splitmix64 of both, so nearby
    (seed, index) pairs do not give nearby seeds. 63 bits fit ``torch.Generator.manual_seed``; 31 bits
    fit the places that take a seed below 2^31 (``SyntheticHeads``)."""
    if not 1 <= bits <= 63:
        raise ValueError(f"bits: expected an int in [1, 63], got {bits!r}")
    x = (seed * 0x9E3779B97F4A7C15 + index * 0xD1B54A32D192ED03 + 0x632BE59BD9B4E019) & _MASK64
    for shift, mul in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        x = ((x ^ (x >> shift)) * mul) & _MASK64
    return (x ^ (x >> 31)) & ((1 << bits) - 1)
