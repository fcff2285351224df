"""From denoised Gaussian tokens to Gaussians (the paper's D_gs), and the AVAS image decoder (§3.4).

:class:`GaussianDecoder` turns each canonical view's tokens [B, N, D] into per-pixel features, a
per-pixel MLP (which also sees the pixel's Plücker ray and the given photos' conv features) gives 12 raw
numbers a pixel, and :meth:`GaussianDecoder.activate` -- the one place where raw outputs become
Gaussians -- makes them a depth along the pixel's ray (position = camera centre + depth · unit ray
direction), scales, rotation, opacity and colour. Every pixel of every canonical view owns one Gaussian:
4·H·W Gaussians a portrait.

Two ways from tokens to pixels (``ModelConfig.decoder``): ``"patch"`` expands each token linearly into its
own p × p pixels (the paper's reading) and lets a few 3 × 3 convolutions mix neighbouring tokens'
pixels; ``"upsampler"`` doubles the view's token map stage by stage (bilinear, then convolutions), so
every pixel's features come from the tokens around it and no p-pixel pattern is built in.
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..core import framing
from ..core.gaussians import Gaussians
from .config import NUM_VIEWS, RAW_CHANNELS, ModelConfig
from .given import MAX_OPACITY, MIN_MATTE, facing, surfels
from .layers import modulate

__all__ = ["GaussianDecoder", "TokenUpsampler", "AVASDecoder"]


class _UpStage(nn.Module):
    """×2 bilinear upsampling, then a residual pair of 3 × 3 convolutions: [N, i, h, w] → [N, o, 2h, 2w]."""

    def __init__(self, channels_in: int, channels_out: int):
        super().__init__()
        self.skip = nn.Conv2d(channels_in, channels_out, 1)
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1, padding_mode="replicate")
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, padding_mode="replicate")

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.skip(x) + self.conv2(F.silu(self.conv1(F.silu(x))))


class TokenUpsampler(nn.Module):
    """A view's token map [N, D, h, w] → per-pixel features [N, c, h·p, w·p], log2(p) ×2 stages
    (``ModelConfig.upsampler_channels``)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        chans = [cfg.upsampler_width, *cfg.upsampler_channels()]
        self.proj = nn.Conv2d(cfg.width, chans[0], 1)
        self.stages = nn.ModuleList(_UpStage(i, o) for i, o in zip(chans, chans[1:]))

    def forward(self, x: Tensor) -> Tensor:
        x = self.proj(x)
        for stage in self.stages:
            x = stage(x)
        return x


class GaussianDecoder(nn.Module):
    """Gaussian tokens [B, 4N, D] → 4·H·W pixel-aligned Gaussians."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        p, c = cfg.patch_size, cfg.decoder_width
        self.norm = nn.LayerNorm(cfg.width, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Linear(cfg.width, 2 * cfg.width)  # adaLN shift, scale from t
        if cfg.decoder == "patch":
            self.upsample = nn.Linear(cfg.width, p * p * c)  # one token → its p × p pixels
            layers: list[nn.Module] = []
            for i in range(cfg.decoder_conv):
                layers += [nn.SiLU()] if i else []
                layers.append(nn.Conv2d(c, c, 3, padding=1))
            self.conv = nn.Sequential(*layers) if layers else None
        else:
            self.upsampler = TokenUpsampler(cfg)
        self.pixel_mlp = nn.Sequential(nn.Linear(c + 6 + cfg.input_width, c), nn.SiLU(), nn.Linear(c, RAW_CHANNELS))

    def features(self, tokens: Tensor, temb: Tensor) -> Tensor:
        """Per-pixel features [B, 4, H, W, c] from tokens [B, 4N, D] and the flow time's features [B, D]."""
        cfg = self.cfg
        n = cfg.image_size // cfg.patch_size
        shift, scale = self.modulation(F.silu(temb)).chunk(2, -1)
        h = modulate(self.norm(tokens), shift, scale)
        if cfg.decoder == "upsampler":
            h = rearrange(h, "b (v y x) d -> (b v) d y x", v=NUM_VIEWS, y=n, x=n)
            return rearrange(self.upsampler(h), "(b v) c y x -> b v y x c", v=NUM_VIEWS)
        h = rearrange(self.upsample(h), "b (v h w) (p q c) -> b v (h p) (w q) c", v=NUM_VIEWS, h=n, w=n,
                      p=cfg.patch_size, q=cfg.patch_size)
        if self.conv is not None:  # neighbouring tokens' pixels meet
            mixed = self.conv(rearrange(h, "b v y x c -> (b v) c y x"))
            h = h + rearrange(mixed, "(b v) c y x -> b v y x c", v=NUM_VIEWS)
        return h

    def raw(self, tokens: Tensor, temb: Tensor, rays: Tensor, photo_features: Tensor) -> tuple[Tensor, Tensor]:
        """Raw per-pixel outputs [B, 4, H, W, 12] and the per-pixel input of the MLP [B, 4, H, W, c + 6 + w]
        from tokens [B, 4N, D], t features [B, D], rays [4, H, W, 6] and the given photos' conv features
        [B, 4, H, W, w]."""
        h = self.features(tokens, temb)
        # The last MLP and the activations run in float32: a bf16 depth (8-bit mantissa) would put
        # Gaussians a centimetre off their ray at the paper's resolution.
        with torch.autocast(device_type="cuda" if h.is_cuda else "cpu", enabled=False):
            h = torch.cat([h.float(), rays.expand(h.shape[0], *rays.shape), photo_features.float()], -1)
            return self.pixel_mlp(h), h

    def depth(self, raw: Tensor) -> Tensor:
        """Distance along each pixel's unit ray [B, 4, H, W, 1], in camera_radius ± depth_range."""
        cfg = self.cfg
        return cfg.camera_radius + cfg.depth_range * torch.tanh(raw[..., 0:1].float())

    def activate(self, raw: Tensor, origins: Tensor, dirs: Tensor, residual: Tensor, photos: Tensor, given: Tensor,
                 masks: Optional[Tensor] = None) -> Gaussians:
        """The only place where raw network outputs become Gaussians.

        Args:
            raw: [B, 4, H, W, 12] raw outputs.
            origins: [4, 3] camera centres of the canonical views.
            dirs: [4, H, W, 3] unit ray directions of their pixels (world).
            residual: [B, 4, H, W, 7] the input decoder's residuals (colour 3, opacity 1, log-scale 3) for the
                Gaussians of views without a photo.
            photos: [B, 4, 3, H, W] the given photos in [0, 1] (read where ``given``).
            given: [B, 4] bool, which canonical views have a photo.
            masks: [B, 4, H, W] the given photos' mattes in [0, 1], or None (unknown: the opacity is learned).
        Returns:
            Gaussians [B, 4·H·W] (view-major, then row-major pixels), all values bounded:
            depth along the ray in camera_radius ± depth_range, scales in (scale_min, scale_max),
            unit quaternions, opacities and colours in (0, 1). A given view's Gaussians are its pixels
            (a3d.model.given, point 3): the pixel's foreground colour, the matte as opacity, flat discs of
            ``given_footprint`` of the pixel's width.
        """
        cfg = self.cfg
        raw, residual = raw.float(), residual.float()
        depth = self.depth(raw)
        means = origins[:, None, None, :] + depth * dirs  # [B, 4, H, W, 3]
        g = given[:, :, None, None, None]  # [B, 4, 1, 1, 1]
        pixel = rearrange(photos.float(), "b v c h w -> b v h w c").clamp(1e-3, 1 - 1e-3)
        factor = torch.exp(1.5 * torch.tanh(residual[..., 4:7]))
        scales = cfg.scale_min + (cfg.scale_max - cfg.scale_min) * torch.sigmoid(raw[..., 1:4])
        scales = (scales * factor).clamp(cfg.scale_min, cfg.scale_max)
        quats = raw[..., 4:8] + raw.new_tensor([1.0, 0.0, 0.0, 0.0])  # identity rotation at zero output
        quats = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        # a given view's Gaussian: a disc on the surface its pixel sees, about a pixel wide
        pixel_angle = 2 * math.tan(math.radians(cfg.camera_fov_deg) / 2) / cfg.image_size
        footprint = (cfg.given_footprint * pixel_angle) * depth
        surfel_quats, surfel_scales = surfels(means.detach(), footprint.detach(), cfg.given_footprint)
        quats = torch.where(g, surfel_quats, quats)
        scales = torch.where(g, surfel_scales, scales)
        color_logit = torch.where(g, torch.logit(pixel), raw[..., 9:12]) + residual[..., 0:3]
        opacities = torch.sigmoid(raw[..., 8] + residual[..., 3])
        if masks is not None:
            matte = masks.float()[..., None].clamp(0.0, 1.0)  # [B, 4, H, W, 1]
            if cfg.given_erode > 0:
                k = 2 * cfg.given_erode + 1
                flat = matte.reshape(-1, 1, *matte.shape[2:4])
                matte = (-F.max_pool2d(-flat, k, 1, cfg.given_erode)).reshape(matte.shape)
            opacities = torch.where(g[..., 0], matte[..., 0].clamp(max=MAX_OPACITY), opacities)
            # the photo is composited over the background: an edge pixel's colour is part background,
            # which its Gaussian (opacity = the matte) must not carry to other views
            bg = pixel.new_tensor(framing.BACKGROUND)
            pixel = ((pixel - bg * (1 - matte)) / matte.clamp_min(MIN_MATTE)).clamp(0, 1)
        if cfg.given_grazing > 0:  # what the photo sees edge-on is left to the other sets (ModelConfig)
            low = cfg.given_grazing
            squarely = facing(means.detach(), origins[:, None, None, :], low, 2 * low)  # [B, 4, H, W]
            opacities = torch.where(g[..., 0], opacities * squarely, opacities)
        colors = torch.where(g, pixel, torch.sigmoid(color_logit))
        flat = lambda x: x.reshape(raw.shape[0], -1, *x.shape[4:])  # noqa: E731  [B, 4·H·W, ...]
        return Gaussians(means=flat(means), quats=flat(quats), scales=flat(scales), opacities=flat(opacities),
                         colors=flat(colors))

    def init_output(self) -> None:
        """Zero output weights; biases give a sensible start: Gaussians at the head's distance, one pixel
        wide, faint and grey. Residual branches start at zero."""
        cfg = self.cfg
        last = self.pixel_mlp[-1]
        nn.init.zeros_(last.weight)
        pixel = 2 * cfg.camera_radius * math.tan(math.radians(cfg.camera_fov_deg) / 2) / cfg.image_size
        s = min(max((pixel - cfg.scale_min) / (cfg.scale_max - cfg.scale_min), 1e-3), 1 - 1e-3)
        bias = torch.zeros(RAW_CHANNELS)
        bias[1:4] = math.log(s / (1 - s))
        bias[8] = math.log(0.1 / 0.9)
        with torch.no_grad():
            last.bias.copy_(bias)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)
        if cfg.decoder == "patch" and self.conv is not None:
            nn.init.zeros_(self.conv[-1].weight)
            nn.init.zeros_(self.conv[-1].bias)
        if cfg.decoder == "upsampler":
            for stage in self.upsampler.stages:
                nn.init.zeros_(stage.conv2.weight)
                nn.init.zeros_(stage.conv2.bias)


class AVASDecoder(nn.Module):
    """Auxiliary view-conditioned appearance supervision (§3.4): Gaussian tokens → the 4 canonical
    views [B, 4, 3, H, W] in (0, 1). Training only."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.avas_width
        self.norm = nn.LayerNorm(cfg.width, eps=1e-6)
        self.upsample = nn.Linear(cfg.width, cfg.patch_size * cfg.patch_size * c)
        self.refine = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.SiLU(), nn.Conv2d(c, 3, 3, padding=1))

    def forward(self, tokens: Tensor) -> Tensor:
        cfg = self.cfg
        n = cfg.image_size // cfg.patch_size
        h = self.upsample(self.norm(tokens))
        h = rearrange(h, "b (v h w) (p q c) -> (b v) c (h p) (w q)", v=NUM_VIEWS, h=n, w=n,
                      p=cfg.patch_size, q=cfg.patch_size)
        img = torch.sigmoid(self.refine(h))
        return rearrange(img, "(b v) c h w -> b v c h w", v=NUM_VIEWS)
