"""The given photos in the Gaussians: what carries each photo into the output, and the Gaussians that
are its own pixels.

The paper's decoder sees a photo only through its p × p-pixel tokens, so the photo comes out blurred and
generic. Here:

1. :class:`InputDecoder` features: a light full-resolution conv over each canonical view's photo (zeros
   and a 0 flag where that view has none) → [B, 4, H, W, w], appended to the per-pixel MLP's input.
2. :meth:`InputDecoder.gather`: each Gaussian's 3D position is projected into every canonical camera;
   where that view is given, its photo's colour there and a visibility weight exp(−|distance − that
   view's own depth there| / τ) feed a second per-pixel MLP whose output (zero at initialisation) adds
   residuals to the colour, opacity and scale logits: the photo's detail reaches the side views'
   Gaussians where the photo sees their surface.
3. A given view's own Gaussians are its pixels (:meth:`a3d.model.decoder.GaussianDecoder.activate`):
   colour = the pixel's foreground colour, opacity = the photo's matte, flat discs tangent to the surface
   the pixels see (:func:`surfels`); only their depth is learned (the trainer's loss makes it the visible
   surface). Learned residuals on a given pixel's colour, opacity or size generalise badly from synthetic
   heads to photos (a speckle over real faces), so there are none.
4. :meth:`InputDecoder.carve`: the other views' Gaussians that would cover a given photo's surface are
   made transparent, so the photo comes back in its own view; :func:`fit_given_colours` then fits the
   given views' colours so that their own Gaussians render the photo back.
"""
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..core import framing
from ..core.cameras import Cameras
from ..core.gaussians import Gaussians
from ..core.rotations import rotmat_to_quat
from ..core.rendering import render
from .config import NUM_VIEWS, ModelConfig

__all__ = ["InputDecoder", "surfels", "facing", "fit_given_colours", "MAX_OPACITY", "MIN_MATTE"]

def _surface_steps(means: Tensor) -> tuple[Tensor, Tensor]:
    """The surface's steps between neighbouring pixels: [..., H, W, 3] centres of a view's pixel grid ->
    (du, dv), each [..., H, W, 3], to the neighbour along a row and along a column, whichever of the two
    (before, after) is shorter, so a step never crosses a depth edge that the other side does not; at the
    image's border the one neighbour there is."""
    def shorter(dim: int) -> Tensor:
        fwd = torch.diff(means, dim=dim, append=means.narrow(dim, means.shape[dim] - 1, 1))
        bwd = torch.diff(means, dim=dim, prepend=means.narrow(dim, 0, 1))
        n = means.shape[dim]
        idx = torch.arange(n, device=means.device).reshape((n,) + (1,) * (-dim - 2))
        inf = torch.tensor(float("inf"), device=means.device)
        fwd_len = torch.where(idx == n - 1, inf, fwd.norm(dim=-1))[..., None]  # no neighbour after the last
        bwd_len = torch.where(idx == 0, inf, bwd.norm(dim=-1))[..., None]
        return torch.where(fwd_len <= bwd_len, fwd, bwd)

    return shorter(-2), shorter(-3)


def surfels(means: Tensor, footprint: Tensor, fraction: float, max_stretch: float = 3.0) -> tuple[Tensor, Tensor]:
    """Flat Gaussians tangent to the surface that a view's pixels see: [..., H, W, 3] centres (a view's
    pixel grid) and each pixel's isotropic footprint [..., H, W, 1] -> (quats [..., H, W, 4], scales
    [..., H, W, 3]). The tangents are the smaller one-sided differences to the neighbours (a depth edge
    is not bridged); in the tangent plane σ is ``fraction`` of the spacing to the neighbours, between
    the footprint and ``max_stretch`` times it (a surface seen edge-on spreads its pixels apart: from
    other views the discs now meet instead of streaking); across it σ is half the footprint."""
    du, dv = _surface_steps(means)
    t1 = F.normalize(du, dim=-1)
    normal = F.normalize(torch.cross(du, dv, dim=-1), dim=-1)
    t2 = torch.cross(normal, t1, dim=-1)
    ok = (normal.norm(dim=-1, keepdim=True) > 0.5) & (t1.norm(dim=-1, keepdim=True) > 0.5)
    R = torch.stack([t1, t2, normal], -1)  # columns: the Gaussian's axes in the world
    quats = torch.where(ok, rotmat_to_quat(torch.where(ok[..., None], R, torch.eye(3, device=R.device))),
                        means.new_tensor([1.0, 0.0, 0.0, 0.0]))
    along = lambda d: (fraction * d.norm(dim=-1, keepdim=True)).clamp(footprint, max_stretch * footprint)  # noqa: E731
    dv_across = dv - (dv * t1).sum(-1, keepdim=True) * t1
    scales = torch.cat([along(du), along(dv_across), 0.5 * footprint], -1)
    return quats, torch.where(ok, scales, footprint.expand_as(scales))


def facing(means: Tensor, origin: Tensor, low: float = 0.5, high: float = 0.8) -> Tensor:
    """How squarely a view sees the surface through each pixel: [..., H, W, 3] Gaussian centres of a view's
    pixels and its camera centre (broadcast against them: [3], or [V, 1, 1, 3] for V views) -> [..., H, W] in
    [0, 1], linear in the cosine between the surface's normal (from the smaller one-sided difference to a
    neighbour in each image direction, so that a depth edge is not bridged) and the ray: 1 from ``high`` (by
    default within 37° of the ray), 0 at ``low`` and below (by default beyond 60°: the surface is seen edge-on
    there, what the photo shows of it is squeezed into a pixel, and another view sees those Gaussians spread
    apart)."""
    du, dv = _surface_steps(means)
    normal = F.normalize(torch.cross(du, dv, dim=-1), dim=-1)
    ray = F.normalize(means - origin, dim=-1)
    cos = (normal * ray).sum(-1).abs()
    return ((cos - low) / (high - low)).clamp(0, 1)


MAX_OPACITY = 0.99  # a matte's 1 as an opacity (the rasterizer's alpha stays below 1)
MIN_MATTE = 0.05  # below this matte a pixel's foreground colour is noise: it is divided by no less
_CARVE_TAU = 0.02  # head units: how soft the carve's "in front of the given surface" edge is
_GATHER_TAU = 0.05  # head units: how far a point may sit off a given view's surface and still count as seen
_GATHER_CHANNELS = 4 * NUM_VIEWS  # per canonical view: visibility-weighted colour (3) and the weight (1)


def _seen_from_canonical(means: Tensor, src: Tensor, viewmats: Tensor, Ks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Every Gaussian seen from every canonical camera u: the maps ``src`` [B, 4, C, H, W] sampled
    (bilinear) where it projects [B, u, C, 4·H·W], its distance from u's centre [B, u, 4·H·W], and whether
    it projects inside u's image [B, u, 4·H·W] (bool), for positions ``means`` [B, 4, H, W, 3] and the
    canonical cameras viewmats [4, 4, 4], Ks [4, 3, 3]."""
    B, V, H, W, _ = means.shape
    pts = means.reshape(B, 1, -1, 3).expand(B, V, -1, 3)
    cam = torch.einsum("uij,bunj->buni", viewmats[:, :3, :3], pts) + viewmats[:, None, :3, 3]
    z = cam[..., 2:3].clamp_min(1e-3)
    uv = torch.einsum("uij,bunj->buni", Ks[:, :2, :2], cam[..., :2] / z) + Ks[:, None, :2, 2]  # pixels
    grid = torch.stack([uv[..., 0] / W, uv[..., 1] / H], -1) * 2 - 1  # align_corners=False coordinates
    C = src.shape[2]
    seen = F.grid_sample(src.flatten(0, 1), grid.reshape(B * V, 1, -1, 2), mode="bilinear", padding_mode="border",
                         align_corners=False).reshape(B, V, C, -1)
    return seen, cam.norm(dim=-1), (grid.abs() <= 1).all(-1)


class InputDecoder(nn.Module):
    """The learned part of wiring the given photos in (see the module docstring): their conv
    features, the gather of their colours at every Gaussian, the residual head, and the carve."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w, c = cfg.input_width, cfg.decoder_width
        self.conv = nn.Sequential(nn.Conv2d(4, w, 3, padding=1), nn.SiLU(), nn.Conv2d(w, w, 3, padding=1))
        self.mlp = nn.Sequential(nn.Linear(c + 6 + w + _GATHER_CHANNELS, c), nn.SiLU(), nn.Linear(c, 7))

    def features(self, photos: Tensor, given: Tensor) -> Tensor:
        """Conv features [B, 4, H, W, w] of the photos [B, 4, 3, H, W] where ``given`` [B, 4]."""
        flag = given[:, :, None, None, None].to(photos.dtype)
        x = torch.cat([photos * flag, flag.expand(-1, -1, 1, *photos.shape[-2:])], 2)
        f = self.conv(x.flatten(0, 1))
        return rearrange(f, "(b v) c h w -> b v h w c", v=NUM_VIEWS)

    def gather(self, means: Tensor, depth: Tensor, photos: Tensor, given: Tensor, viewmats: Tensor, Ks: Tensor
               ) -> Tensor:
        """What the given photos see at each Gaussian: [B, 4, H, W, 16].

        Args:
            means: [B, 4, H, W, 3] positions; depth: [B, 4, H, W, 1] each view's distances along its rays.
            photos: [B, 4, 3, H, W]; given: [B, 4] bool; viewmats [4, 4, 4], Ks [4, 3, 3]: the canonical cameras.
        """
        B, V, H, W, _ = means.shape
        src = torch.cat([photos, rearrange(depth, "b v h w c -> b v c h w")], 2)  # [B, 4, 4, H, W]
        seen, dist, inside = _seen_from_canonical(means, src, viewmats, Ks)
        weight = torch.exp(-(dist - seen[:, :, 3]).abs() / _GATHER_TAU) * inside * given[:, :, None]
        out = torch.cat([seen[:, :, :3] * weight[:, :, None], weight[:, :, None]], 2)  # [B, u, 4, 4·H·W]
        return rearrange(out, "b u c (v h w) -> b v h w (u c)", v=V, h=H, w=W)

    @staticmethod
    def carve(means: Tensor, depth: Tensor, alpha: Tensor, given: Tensor, viewmats: Tensor, Ks: Tensor,
              margin: float, window: int = 1) -> Tensor:
        """How much of each Gaussian's opacity survives the given views: [B, 4, H, W] in [0, 1].

        A Gaussian of a view v without a photo that projects where a given view u sees its foreground,
        and lies in front of u's surface or less than ``margin`` behind it, would cover what the photo
        shows there; its opacity is scaled by 1 − alpha_u · sigmoid((depth_u + margin − distance) / τ),
        the product over the given views. The given views' own Gaussians are never carved (they are
        their photos' pixels). The given surface (depth, alpha) is read detached: the carve moves
        the other sets' Gaussians (through their positions), never the photo's own surface.

        Args:
            means: [B, 4, H, W, 3] positions; depth: [B, 4, H, W, 1] each view's distances along its rays.
            alpha: [B, 4, H, W] each view's own opacities (read where ``given`` [B, 4]).
            viewmats [4, 4, 4], Ks [4, 3, 3]: the canonical cameras.
            window: the surface a Gaussian is tested against is the farthest one among the foreground
                (alpha > 0.5) pixels of a ``window`` × ``window`` neighbourhood (``ModelConfig.carve_window``).
        """
        B, V, H, W, _ = means.shape
        surface = depth[..., 0]
        if window > 1:
            # background pixels must not lend their depth (a ray past the silhouette may end anywhere)
            fg = torch.where(alpha > 0.5, surface, torch.full_like(surface, -1e4))
            pooled = F.max_pool2d(fg, window, stride=1, padding=window // 2)
            surface = torch.maximum(surface, pooled)
        src = torch.stack([surface, alpha], 2).detach()  # [B, 4, 2, H, W]
        seen, dist, inside = _seen_from_canonical(means, src, viewmats, Ks)
        in_front = torch.sigmoid((seen[:, :, 0] + margin - dist) / _CARVE_TAU)
        unseen = (~given).repeat_interleave(H * W, 1)[:, None]  # [B, 1, 4·H·W]: Gaussian n's view has no photo
        cover = seen[:, :, 1].clamp(0, 1) * in_front * inside * unseen * given[:, :, None]  # [B, u, 4·H·W]
        return (1 - cover).prod(1).reshape(B, V, H, W)

    def residual(self, pixel_input: Tensor, gathered: Tensor) -> Tensor:
        """Residual logits [B, 4, H, W, 7] from the first MLP's input and the gathered colours."""
        return self.mlp(torch.cat([pixel_input, gathered], -1))

    def init_output(self) -> None:
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)


@torch.no_grad()
def fit_given_colours(gaussians: Gaussians, photos: Tensor, given: Tensor, masks: Tensor, viewmats: Tensor,
                      Ks: Tensor, origins: Tensor, iterations: int) -> Tensor:
    """The change [B, 4·S², 3] that ``iterations`` Jacobi steps (``ModelConfig.given_fit``) make to each
    given view's colours: its own set [B, S²] rendered from its camera, the residual against the photo
    added to the colour of each pixel's Gaussian inside the matte (> 0.5), weighted by how squarely the
    view sees the surface (:func:`facing`); zero for the other views. Computed without autograd: the
    caller adds it as a constant (a given view's colours are its pixels', which have no parameters).

    Args:
        gaussians: [B, 4·S²] the decoded Gaussians (view-major); photos: [B, 4, 3, S, S] in [0, 1];
        given: [B, 4] bool; masks: [B, 4, S, S] mattes in [0, 1].
        viewmats: [4, 4, 4], Ks: [4, 3, 3], origins: [4, 3]: the canonical cameras.
    """
    B, S = photos.shape[0], photos.shape[-1]
    colors = gaussians.colors.reshape(B, NUM_VIEWS, S * S, 3).clone()
    fields = ("means", "quats", "scales", "opacities")
    own = {k: getattr(gaussians, k).reshape(B, NUM_VIEWS, S * S, *getattr(gaussians, k).shape[2:])
           for k in fields}
    any_given = given.any(0).tolist()  # one device sync for the four views
    views = [v for v in range(NUM_VIEWS) if v == 0 or any_given[v]]  # the front is always given
    for v in views:
        cam = Cameras(viewmats[v].expand(B, 1, 4, 4), Ks[v].expand(B, 1, 3, 3), S, S)
        inside = ((masks[:, v] > 0.5) & given[:, v, None, None]).reshape(B, S * S, 1)
        step = inside * facing(own["means"][:, v].reshape(B, S, S, 3), origins[v]).reshape(B, S * S, 1)
        target = rearrange(photos[:, v].float(), "b c h w -> b (h w) c")
        for _ in range(iterations):
            g = Gaussians(**{k: own[k][:, v] for k in fields}, colors=colors[:, v])
            rgb = render(g, cam, framing.BACKGROUND).rgb[:, 0].reshape(B, S * S, 3)
            colors[:, v] = (colors[:, v] + step * (target - rgb)).clamp(0, 1)
    return (colors.reshape(B, -1, 3) - gaussians.colors).to(gaussians.colors.dtype)
