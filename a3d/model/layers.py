"""The transformer trunk's layers: patch tokenizers, DiT blocks with adaLN and joint self-attention, and the
fixed embeddings (2D sin-cos positions, sinusoidal flow time).

Two departures from a literal DiT: the adaLN modulation is computed once from t and shared by all blocks
plus a learned per-block table ("adaLN-single" of PixArt-α; the gates start at zero as in adaLN-Zero), which
saves a quarter of the parameters so the tiny preset ships under 16 MiB; and queries/keys are RMS-normalised
per head, which keeps bf16 attention stable.
"""
import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

__all__ = ["sincos_2d", "timestep_features", "modulate", "PatchTokenizer", "Block"]


def sincos_2d(grid: int, width: int) -> Tensor:
    """Fixed 2D sin-cos position embedding [grid², width] (half the channels for y, half for x)."""
    quarter = width // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                            indexing="ij")
    out = []
    for pos in (ys.reshape(-1), xs.reshape(-1)):
        ang = pos[:, None] * omega[None]
        out += [ang.sin(), ang.cos()]
    return torch.cat(out, 1).float()


def timestep_features(t: Tensor, dim: int = 256) -> Tensor:
    """Sinusoidal features [B, dim] of t [B] in [0, 1] (scaled by 1000, as DiT does with integer steps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    ang = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([ang.cos(), ang.sin()], -1)


def _rms(norm: nn.RMSNorm, x: Tensor) -> Tensor:
    """RMSNorm in the input's dtype (under bf16 autocast a float32 weight would force the slow path)."""
    return F.rms_norm(x, norm.normalized_shape, norm.weight.to(x.dtype), norm.eps)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """x · (1 + scale) + shift, per sample (one fused kernel over x)."""
    return torch.addcmul(shift[:, None], x, 1 + scale[:, None])


class PatchTokenizer(nn.Module):
    """p × p patches of a [B, V, 9, H, W] input → MLP → tokens [B, V·Nh·Nw, D] (view-major)."""

    def __init__(self, channels: int, patch: int, width: int):
        super().__init__()
        self.patch = patch
        self.mlp = nn.Sequential(nn.Linear(channels * patch * patch, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, x: Tensor) -> Tensor:
        p = self.patch
        x = rearrange(x, "b v c (h p) (w q) -> b (v h w) (c p q)", p=p, q=p)
        return self.mlp(x)


class Block(nn.Module):
    """DiT block: adaLN-modulated joint self-attention and MLP, gated residuals."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(width, 3 * width)
        self.q_norm = nn.RMSNorm(width // heads, eps=1e-6)
        self.k_norm = nn.RMSNorm(width // heads, eps=1e-6)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))
        # per-block offsets of the shared modulation (shift, scale, gate) × (attention, MLP)
        self.modulation = nn.Parameter(torch.zeros(6, width))

    def forward(self, x: Tensor, mod: Tensor) -> Tensor:  # x [B, T, D], mod [B, 6, D]
        shift1, scale1, gate1, shift2, scale2, gate2 = (mod + self.modulation).unbind(1)
        h = modulate(self.norm1(x), shift1, scale1)
        q, k, v = rearrange(self.qkv(h), "b t (three h d) -> three b h t d", three=3, h=self.heads)
        q, k = _rms(self.q_norm, q), _rms(self.k_norm, k)
        h = F.scaled_dot_product_attention(q, k, v)  # [B, heads, T, D/heads]
        x = torch.addcmul(x, gate1[:, None], self.proj(rearrange(h, "b h t d -> b t (h d)")))
        h = modulate(self.norm2(x), shift2, scale2)
        return torch.addcmul(x, gate2[:, None], self.mlp(h))
