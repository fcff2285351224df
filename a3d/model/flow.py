"""Flow matching in the paper's convention (Eq. 1-5), which is the reverse of the rectified-flow habit:
**t = 0 is pure noise, t = 1 is clean**; g_t = (1 − t)·g0 + t·g1, the network predicts the clean target
ĝ1 = f(g_t, t, x̃), the velocity is v_t = (ĝ1 − g_t) / (1 − t), and the N-step sampler walks t_k = k/N,
g_{t_{k+1}} = g_{t_k} + (1/N)·v_{t_k} (Eq. 3). One step (t = 0, Eq. 5) gives ĝ1 directly.

What the state g is: the paper builds g0 from "3-channel image noise" per canonical view and decodes ĝ1
as Gaussian parameters without saying how the two spaces meet in Eq. 3. Here the state is the 3-channel
image of each canonical view, scaled to [-1, 1]: for training its clean value g1 is the ground-truth
canonical view (:func:`images_to_state`), and the network's prediction of it is the colour of the view's
pixel-aligned Gaussians (each canonical pixel owns one Gaussian). So the sampler's state update uses the
predicted Gaussian colours, and the returned Gaussians are those of the last network call. With one step
(the default) the state is only the input noise.
"""
from typing import Optional, Union

import torch
from torch import Tensor

__all__ = ["sample_t", "interpolate", "velocity", "images_to_state", "state_to_images"]


def sample_t(batch: int, *, one_step_prob: float = 0.0, device: Union[torch.device, str, None] = None,
             generator: Optional[torch.Generator] = None) -> Tensor:
    """Training times t [batch]: U(0, 1) (the multi-step objective, Eq. 1), except that a fraction
    ``one_step_prob`` of the samples gets exactly t = 0 (the one-step objective, Eq. 4)."""
    if not 0.0 <= one_step_prob <= 1.0:
        raise ValueError(f"one_step_prob: expected a probability in [0, 1], got {one_step_prob}")
    gen_device = generator.device if generator is not None else device
    t = torch.rand(batch, generator=generator, device=gen_device)
    zero = torch.rand(batch, generator=generator, device=gen_device) < one_step_prob
    return torch.where(zero, torch.zeros_like(t), t).to(device)


def interpolate(g0: Tensor, g1: Tensor, t: Tensor) -> Tensor:
    """g_t = (1 − t)·g0 + t·g1 with t [B] broadcast over the other dims of g0, g1 [B, ...]."""
    t = t.reshape(t.shape + (1,) * (g0.dim() - t.dim())).to(g0.dtype)
    return (1 - t) * g0 + t * g1


def velocity(g1_hat: Tensor, g_t: Tensor, t: Tensor) -> Tensor:
    """v_t = (ĝ1 − g_t) / (1 − t) (Eq. 2); t [B] in [0, 1)."""
    t = t.reshape(t.shape + (1,) * (g_t.dim() - t.dim())).to(g_t.dtype)
    return (g1_hat - g_t) / (1 - t)


def images_to_state(images: Tensor) -> Tensor:
    """Canonical view images [B, 4, 3, H, W] in [0, 1] → the flow state (same shape, in [-1, 1])."""
    return images * 2 - 1


def state_to_images(state: Tensor) -> Tensor:
    """Inverse of :func:`images_to_state`."""
    return (state + 1) / 2
