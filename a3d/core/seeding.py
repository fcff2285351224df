"""Deriving independent random seeds and keys with splitmix64.

Nearby seeds give correlated streams in torch's Mersenne twister, and the synthetic-head generator
needs per-head keys that do not depend on batching, so every place that derives a seed from
(seed, index) pairs, or a key from a constant, mixes it through splitmix64's finaliser here. The
generator's tensor form of the same finaliser (:func:`a3d.data.synth.draws._mix64`, int64 on any device) gives
the same bits; tests/test_seeding.py checks that.
"""
from __future__ import annotations

_MASK64 = 2**64 - 1
GOLDEN = 0x9E3779B97F4A7C15  # 2^64 / golden ratio: splitmix64's increment
INDEX_MUL = 0xD1B54A32D192ED03  # multiplies the index of (seed, index) pairs
OFFSET = 0x632BE59BD9B4E019  # keeps (0, 0) away from the fixed point 0
MUL1, MUL2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB  # the finaliser's multipliers (after shifts 30 and 27)


def splitmix64(x: int) -> int:
    """splitmix64's finaliser: a bijection of 64-bit ints in which every input bit moves every output bit."""
    x &= _MASK64
    for shift, mul in ((30, MUL1), (27, MUL2)):
        x = ((x ^ (x >> shift)) * mul) & _MASK64
    return x ^ (x >> 31)


def mix_seed(seed: int, index: int, bits: int = 63) -> int:
    """A ``bits``-bit seed for item ``index`` of stream ``seed``, so nearby (seed, index) pairs do not give
    nearby seeds. 63 bits fit ``torch.Generator.manual_seed``; 31 bits fit the places that take a seed
    below 2^31 (``SyntheticHeads``)."""
    if not 1 <= bits <= 63:
        raise ValueError(f"bits: expected an int in [1, 63], got {bits!r}")
    return splitmix64(seed * GOLDEN + index * INDEX_MUL + OFFSET) & ((1 << bits) - 1)
