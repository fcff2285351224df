"""The Any3DAvatar network: one portrait in, 4·H·W pixel-aligned 3D Gaussians out.

Paper §3.1, §3.3, §3.4 and Algorithm 1, read as follows (shapes for batch B, image H × W, patch p,
Nh = H/p, Nw = W/p, N = Nh·Nw tokens a view, D the token width):

1. Image branch: the portrait (the front canonical view) ⊕ its Plücker rays, 9 × H × W, cut into
   p × p patches, each patch → MLP → one context token: [B, N, D] (:mod:`a3d.model.layers`).
2. Gaussian branch: for each of the 4 canonical views (front, left, right, back), the noisy state
   g_t (3 channels, the image part of that view; :mod:`a3d.model.flow`) ⊕ that view's Plücker rays → the
   same kind of tokenizer (its own weights) → [B, 4N, D]. A view with a photo enters as its clean state
   and gets a learned "given" embedding.
3. Position embeddings (fixed 2D sin-cos over the Nh × Nw grid) and a learned view embedding
   (context, front, left, right, back) are added; the sequence [context; Gaussian] of 5N tokens goes
   through DiT blocks with joint self-attention and adaLN conditioned on the flow time t.
4. Gaussian decoder (:mod:`a3d.model.decoder`): the denoised Gaussian tokens → per-pixel features → a
   per-pixel MLP → Gaussians, with the given photos wired in (:mod:`a3d.model.given`): their pixels are
   their own Gaussians, their colours reach the other views' Gaussians where they see the surface, and
   what would cover them is carved away.
5. AVAS (§3.4): a light image decoder on the same Gaussian tokens predicts the 4 canonical views. It
   exists only when the model is built with ``with_avas=True`` (training); inference never builds it.

Weights on disk: :mod:`a3d.model.weights` (safetensors, float or int8); the configuration:
:mod:`a3d.model.config`.
"""
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple, Optional, Union

import torch
import torch.nn.functional as F
from einops import rearrange
from huggingface_hub import PyTorchModelHubMixin
from torch import Tensor, nn

from ..core.cameras import canonical_cameras
from ..core.files import atomic_path, atomic_write
from ..core.gaussians import Gaussians
from ..core.ops import plucker_rays
from ..errors import InputError, check_int
from .config import NUM_VIEWS, ModelConfig
from .decoder import AVASDecoder, GaussianDecoder
from .flow import images_to_state, velocity
from .given import InputDecoder, fit_given_colours
from .layers import Block, PatchTokenizer, sincos_2d, timestep_features
from .weights import load_weights_and_format

__all__ = ["A3DModel", "ModelOutput"]


class ModelOutput(NamedTuple):
    """What one network call returns.

    gaussians: Gaussians [B, 4·H·W] (float32).
    state: [B, 4, 3, H, W] the predicted clean state ĝ1 (the Gaussians' colours as 4 images, in [-1, 1]).
    views: [B, 4, 3, H, W] AVAS images in (0, 1), or None (no AVAS decoder, or called with views=False).
    """

    gaussians: Gaussians
    state: Tensor
    views: Optional[Tensor]


class A3DModel(nn.Module, PyTorchModelHubMixin, library_name="a3d", license="apache-2.0", pipeline_tag="image-to-3d",
               tags=["gaussian-splatting", "3d", "avatar", "head"]):
    """The Any3DAvatar denoiser with its Gaussian decoder (and, for training, its AVAS decoder).

    ``A3DModel(get_config("tiny"))``; ``A3DModel.from_pretrained(folder)`` loads ``config.json`` +
    ``model.safetensors`` strictly (a missing or unexpected weight fails, and so does an unknown
    config key), except that AVAS weights in the file are dropped when the model is built without
    AVAS (inference). ``save_pretrained(folder)`` writes both files, the weights in the dtype they were
    loaded from (fp16 stays fp16, int8 stays int8; a model built in code saves its own dtype, and one
    whose ``stored_dtype`` is set to ``torch.int8`` saves int8 weights with per-channel scales,
    :mod:`a3d.model.quantize`), plus ``metrics.json`` when the weights came with one and the model card
    README.md (:mod:`a3d.model.card`); weights saved from a ``.half()`` model load into a float32 model.

    Args:
        config: the architecture.
        with_avas: build the AVAS image decoder (training only).
    """

    def __init__(self, config: ModelConfig, with_avas: bool = False):
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise InputError(f"config: expected a ModelConfig, got {type(config).__name__}")
        self.config = config
        cfg = config
        n = cfg.image_size // cfg.patch_size
        self.image_tokenizer = PatchTokenizer(9, cfg.patch_size, cfg.width)
        self.gaussian_tokenizer = PatchTokenizer(9, cfg.patch_size, cfg.width)
        self.view_embed = nn.Parameter(torch.zeros(1 + NUM_VIEWS, cfg.width))  # context, front, left, right, back
        self.t_embed = nn.Sequential(nn.Linear(256, cfg.width), nn.SiLU(), nn.Linear(cfg.width, cfg.width))
        self.t_modulation = nn.Linear(cfg.width, 6 * cfg.width)  # shared by all blocks (adaLN-single)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.decoder = GaussianDecoder(cfg)
        self.input_decoder = InputDecoder(cfg)
        self.given_embed = nn.Parameter(torch.zeros(cfg.width))  # added to the tokens of views with a photo
        self.avas = AVASDecoder(cfg) if with_avas else None

        # Fixed tensors derived from the config, not saved with the weights; computed on the CPU
        # and then moved to the ambient default device (which may be 'meta' for shape checks).
        here = torch.empty(0).device
        with torch.device("cpu"):
            cams = canonical_cameras(cfg.image_size, radius=cfg.camera_radius, fov=cfg.camera_fov_deg)
            rays = plucker_rays(cams.viewmats, cams.Ks, cfg.image_size, cfg.image_size)  # [4, H, W, 6]
            pos = sincos_2d(n, cfg.width)
        self.register_buffer("rays", rays.to(here), persistent=False)
        self.register_buffer("ray_origins", cams.centers.to(here), persistent=False)  # [4, 3]
        self.register_buffer("canonical_viewmats", cams.viewmats.to(here), persistent=False)  # [4, 4, 4]
        self.register_buffer("canonical_Ks", cams.Ks.to(here), persistent=False)  # [4, 3, 3]
        self.register_buffer("pos_embed", pos.to(here), persistent=False)  # [N, D]
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """DiT initialisation in one place: xavier linears, zeroed modulation (adaLN-Zero gates) and
        zeroed output layers."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.view_embed, std=0.02)
        for m in self.t_embed:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        nn.init.zeros_(self.t_modulation.weight)
        nn.init.zeros_(self.t_modulation.bias)
        for b in self.blocks:
            nn.init.zeros_(b.modulation)
        self.decoder.init_output()
        self.input_decoder.init_output()
        if self.avas is not None:
            nn.init.zeros_(self.avas.refine[-1].weight)
            nn.init.zeros_(self.avas.refine[-1].bias)

    # ---- the network ------------------------------------------------------------------------------
    def forward(self, image: Tensor, g_t: Tensor, t: Tensor, views: bool = True, photos: Optional[Tensor] = None,
                given: Optional[Tensor] = None, masks: Optional[Tensor] = None) -> ModelOutput:
        """One denoising call ĝ1 = f(g_t, t, x̃) (Eq. 1).

        Args:
            image: [B, 3, H, W] the framed portrait, RGB in [0, 1] (the front canonical view).
            g_t: [B, 4, 3, H, W] the noisy state of the 4 canonical views (front, left, right, back).
            t: [B] flow time in [0, 1) (0 = noise).
            views: run the AVAS decoder when the model has one (the sampling paths pass False:
                AVAS never runs at inference).
            photos: [B, 4, 3, H, W] photos of the canonical views in [0, 1], read where ``given``
                (multi-view input; the front one is ``image`` whatever this holds).
            given: [B, 4] bool, which views have a photo (the front always does); default front only.
                A given view enters the DiT as its clean state.
            masks: [B, 4, H, W] the photos' foreground mattes in [0, 1] (the front one belongs to ``image``),
                or None. A given view's opacities are its matte; without mattes they are learned.
        """
        cfg = self.config
        S = cfg.image_size
        B = image.shape[0]
        if image.dim() != 4 or image.shape[1:] != (3, S, S):
            raise ValueError(f"image: expected [B, 3, {S}, {S}] in [0, 1], got {tuple(image.shape)}")
        if g_t.shape != (B, NUM_VIEWS, 3, S, S):
            raise ValueError(f"g_t: expected [{B}, {NUM_VIEWS}, 3, {S}, {S}], got {tuple(g_t.shape)}")
        if t.shape != (B,):
            raise ValueError(f"t: expected [{B}], got {tuple(t.shape)}")
        photos, given = self._photos(image, photos, given)
        if masks is not None and masks.shape != (B, NUM_VIEWS, S, S):
            raise ValueError(f"masks: expected [{B}, {NUM_VIEWS}, {S}, {S}] in [0, 1], got {tuple(masks.shape)}")
        g_t = torch.where(given[:, :, None, None, None], images_to_state(photos).to(g_t.dtype), g_t)
        rays = rearrange(self.rays, "v h w c -> v c h w")  # [4, 6, H, W]
        x = torch.cat([image * 2 - 1, rays[:1].expand(B, -1, -1, -1)], 1)[:, None]  # [B, 1, 9, H, W]
        g = torch.cat([g_t, rays.expand(B, -1, -1, -1, -1).to(g_t.dtype)], 2)  # [B, 4, 9, H, W]
        ctx = self.image_tokenizer(x.to(g.dtype)) + self.pos_embed + self.view_embed[0]  # [B, N, D]
        gs = self.gaussian_tokenizer(g)  # [B, 4N, D]
        gs = rearrange(gs, "b (v n) d -> b v n d", v=NUM_VIEWS) + self.pos_embed + self.view_embed[1:, None]
        gs = gs + given[:, :, None, None].to(gs.dtype) * self.given_embed.to(gs.dtype)
        s = torch.cat([ctx, rearrange(gs, "b v n d -> b (v n) d")], 1)  # [B, 5N, D] = [ĉ; ĝ]
        temb = self.t_embed(timestep_features(t))  # [B, D]
        mod = rearrange(self.t_modulation(F.silu(temb)), "b (six d) -> b six d", six=6)
        for block in self.blocks:
            s = block(s, mod)
        z = s[:, ctx.shape[1]:]  # denoised Gaussian tokens z̃_g [B, 4N, D]
        feats = self.input_decoder.features(photos.to(z.dtype), given)
        raw, pixel_input = self.decoder.raw(z, temb, self.rays, feats)
        with torch.autocast(device_type="cuda" if z.is_cuda else "cpu", enabled=False):  # float32, as in raw()
            photos = photos.float()
            depth = self.decoder.depth(raw)
            means = self.ray_origins[:, None, None, :] + depth * self.rays[..., 3:]
            # geometry is detached here: the gather reads colours, the losses on depth teach geometry
            seen = self.input_decoder.gather(means.detach(), depth.detach(), photos, given,
                                             self.canonical_viewmats, self.canonical_Ks)
            residual = self.input_decoder.residual(pixel_input, seen)
            gaussians = self.decoder.activate(raw, self.ray_origins, self.rays[..., 3:], residual, photos, given,
                                              masks)
            if cfg.carve_depth > 0:
                alpha = gaussians.opacities.reshape(B, NUM_VIEWS, S, S)
                keep = self.input_decoder.carve(means, depth, alpha, given, self.canonical_viewmats,
                                                self.canonical_Ks, cfg.carve_depth, cfg.carve_window)
                gaussians = replace(gaussians, opacities=gaussians.opacities * keep.reshape(B, -1))
            if cfg.given_fit > 0 and masks is not None and z.device.type != "meta":
                # a constant added (zero outside the given views, whose colours keep their gradients)
                fit = fit_given_colours(gaussians, photos, given, masks, self.canonical_viewmats, self.canonical_Ks,
                                        self.ray_origins, cfg.given_fit)
                gaussians = replace(gaussians, colors=gaussians.colors + fit)
        state = images_to_state(rearrange(gaussians.colors, "b (v h w) c -> b v c h w", v=NUM_VIEWS, h=S, w=S))
        avas = self.avas(z) if views and self.avas is not None else None
        return ModelOutput(gaussians, state, avas)

    def _photos(self, image: Tensor, photos: Optional[Tensor], given: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        """Checked (photos [B, 4, 3, H, W] with the front = image, given [B, 4] bool)."""
        B, S = image.shape[0], self.config.image_size
        if given is None:  # the front photo only (no data-dependent check: shapes run on 'meta' too)
            given = torch.zeros(B, NUM_VIEWS, dtype=torch.bool, device=image.device)
        elif given.shape != (B, NUM_VIEWS) or given.dtype != torch.bool:
            raise ValueError(f"given: expected a bool tensor [{B}, {NUM_VIEWS}], "
                             f"got {given.dtype} {tuple(given.shape)}")
        elif photos is None and bool(given[:, 1:].any()):
            raise ValueError("photos: views are marked given but no photos were passed")
        given = given.clone()
        given[:, 0] = True
        if photos is None:
            photos = image.new_zeros(B, NUM_VIEWS, 3, S, S)
        elif photos.shape != (B, NUM_VIEWS, 3, S, S):
            raise ValueError(f"photos: expected [{B}, {NUM_VIEWS}, 3, {S}, {S}], got {tuple(photos.shape)}")
        photos = torch.cat([image[:, None].to(photos.dtype), photos[:, 1:]], 1)
        return photos, given

    # ---- sampling ---------------------------------------------------------------------------------
    def noise(self, batch: int, generator: Optional[torch.Generator] = None) -> Tensor:
        """g0 [batch, 4, 3, H, W] ~ N(0, 1), drawn on the generator's device (CPU without one) and
        moved to the model's device. A seeded generator gives the same noise on every device of its
        type (a CPU generator: everywhere; a CUDA one: on any CUDA device)."""
        S = self.config.image_size
        dev = generator.device if generator is not None else torch.device("cpu")
        g0 = torch.randn(batch, NUM_VIEWS, 3, S, S, generator=generator, device=dev)
        return g0.to(self.rays.device)

    def one_step(self, image: Tensor, g0: Tensor, photos: Optional[Tensor] = None,
                 given: Optional[Tensor] = None, masks: Optional[Tensor] = None) -> Gaussians:
        """The default inference path (Eq. 4-5): one call at t = 0 from the noise g0 [B, 4, 3, H, W];
        ``photos``/``given``/``masks``: extra canonical views and the mattes, as in :meth:`forward`."""
        t = torch.zeros(image.shape[0], device=image.device)
        return self(image, g0, t, views=False, photos=photos, given=given, masks=masks).gaussians

    def sample(self, image: Tensor, g0: Tensor, steps: int = 1, photos: Optional[Tensor] = None,
               given: Optional[Tensor] = None, masks: Optional[Tensor] = None) -> Gaussians:
        """The N-step sampler of Eq. 3 from the noise g0; returns the Gaussians of the last call.

        t_k = k/N; each call predicts ĝ1 and the state moves by (1/N)·(ĝ1 − g_{t_k})/(1 − t_k).
        ``steps=1`` computes exactly :meth:`one_step`.
        """
        check_int(steps, "steps", 1, 1000)
        g = g0
        out = None
        for k in range(steps):
            t = torch.full((image.shape[0],), k / steps, device=image.device)
            out = self(image, g, t, views=False, photos=photos, given=given, masks=masks)
            if k + 1 < steps:
                g = g + velocity(out.state.to(g.dtype), g, t) / steps
        return out.gaussians

    # ---- loading ----------------------------------------------------------------------------------
    @classmethod
    def _decode_arg(cls, expected_type, value):  # the Hub mixin's config.json → ModelConfig
        if expected_type is ModelConfig:
            return ModelConfig.from_dict(value)
        return super()._decode_arg(expected_type, value)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Union[str, os.PathLike], *, map_location: str = "cpu",
                        strict: bool = True, with_avas: bool = False, **hub_kwargs) -> "A3DModel":
        """Load ``config.json`` + ``model.safetensors`` from a folder or a Hub repo id (``hub_kwargs``:
        revision, cache_dir, force_download, local_files_only, token). The config is read with
        :meth:`ModelConfig.from_json` (bounded) and the weights strictly (see the class docstring);
        a missing file, a malformed config, weights that do not fit it or hold NaN/inf raise
        :class:`a3d.errors.InputError` naming the file."""
        source = os.fspath(pretrained_model_name_or_path)
        hub = {k: hub_kwargs.pop(k, None) for k in ("revision", "cache_dir", "token")}
        hub.update(force_download=hub_kwargs.pop("force_download", False),
                   local_files_only=hub_kwargs.pop("local_files_only", False))
        if hub_kwargs:
            raise InputError(f"from_pretrained: unexpected arguments {sorted(hub_kwargs)}")
        if Path(source).is_dir():
            config_file = Path(source) / "config.json"
            if not config_file.is_file():
                raise InputError(f"{source}: no config.json in this folder (a model folder holds config.json and "
                                 f"model.safetensors, as save_pretrained and the trainer write them)")
        else:
            from huggingface_hub import hf_hub_download
            config_file = hf_hub_download(repo_id=source, filename="config.json", **hub)
        config = ModelConfig.from_json(config_file)
        return cls._from_pretrained(model_id=source, **hub, map_location=map_location, strict=strict,
                                    config=config, with_avas=with_avas)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, revision, cache_dir, force_download, local_files_only, token,
                         map_location: str = "cpu", strict: bool = True, **model_kwargs):
        if not strict:
            raise InputError("strict: a3d loads weights strictly; strict=False is not supported")
        if Path(model_id).is_dir():
            model_file = Path(model_id) / "model.safetensors"
            if not model_file.is_file():
                raise InputError(f"{model_id}: no model.safetensors in this folder")
        else:
            from huggingface_hub import hf_hub_download
            model_file = hf_hub_download(repo_id=model_id, filename="model.safetensors", revision=revision,
                                         cache_dir=cache_dir, force_download=force_download, token=token,
                                         local_files_only=local_files_only)
        model = cls(**model_kwargs)
        state, quantization = load_weights_and_format(model_file)
        if model.avas is None:  # training-only weights are not needed for inference
            state = {k: v for k, v in state.items() if not k.startswith("avas.")}
        expected = model.state_dict()
        missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        if missing or unexpected:
            raise InputError(f"{model_file}: weights do not match the config "
                             f"(missing: {missing[:8]}{' ...' if len(missing) > 8 else ''}, "
                             f"unexpected: {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''})")
        bad = [k for k in expected if expected[k].shape != state[k].shape]
        if bad:
            raise InputError(f"{model_file}: weights of the wrong shape for the config: {bad[:8]}")
        model.load_state_dict(state, strict=True)
        model.to(map_location)
        model.eval()
        dtypes = {v.dtype for v in state.values() if v.is_floating_point()}
        model.stored_dtype = dtypes.pop() if len(dtypes) == 1 else None
        if quantization is not None:  # int8 (a3d.model.quantize): saved as int8 again
            model.stored_dtype = torch.int8
        if Path(model_id).is_dir():
            from .card import read_metrics
            model.evaluation = read_metrics(model_id)
            model.source_dir = Path(model_id)  # where the card's example picture, if any, is copied from
        return model

    def save_pretrained(self, save_directory: str | Path, *, push_to_hub: bool = False, **kwargs):
        """Write config.json, model.safetensors, metrics.json (with an evaluation) and README.md (the model card,
        unless the folder has one) to ``save_directory`` by a3d's writing rule (:mod:`a3d.core.files`): an
        interrupted or failed save leaves the files already there as they were. (The Hub mixin's own version
        deletes config.json first.) ``push_to_hub`` goes through the mixin."""
        if push_to_hub:
            return super().save_pretrained(save_directory, push_to_hub=True, **kwargs)
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_pretrained(folder)
        if not (folder / "README.md").exists():
            card = self.generate_model_card(**(kwargs.get("model_card_kwargs") or {}))
            with atomic_write(folder / "README.md", "w") as f:
                f.write(str(card))
        return None

    def _save_pretrained(self, save_directory: Path) -> None:
        """The weights in the dtype they were loaded from (see :meth:`_from_pretrained`; ``stored_dtype``
        torch.int8: :mod:`a3d.model.quantize`'s int8 with per-channel scales), config.json and metrics.json."""
        from safetensors.torch import save_file

        from .quantize import INT8_FORMAT, METADATA_KEY, quantize_state

        dtype = getattr(self, "stored_dtype", None)
        metadata = {"format": "pt"}
        if dtype == torch.int8:
            state = quantize_state(self.state_dict())
            metadata[METADATA_KEY] = INT8_FORMAT
        else:
            state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v).detach().contiguous().cpu()
                     for k, v in self.state_dict().items()}
        folder = Path(save_directory)
        # the writing rule (a3d.core.files): the weights and config.json move into place together, once both are
        # complete; config.json is written here, with its version, so that the Hub mixin does not write the
        # dataclass without it
        with atomic_path(folder / "model.safetensors") as weights, atomic_write(folder / "config.json", "w") as f:
            save_file(state, weights, metadata=metadata)
            f.write(json.dumps(self.config.to_dict(), sort_keys=True, indent=2))
        if getattr(self, "evaluation", None) is not None:
            from .card import METRICS_FILE
            with atomic_write(folder / METRICS_FILE, "w") as f:
                f.write(json.dumps(self.evaluation, indent=1))
            # the picture the card shows (metrics.json names it) travels with the folder it came from
            example = self.evaluation.get("example")
            source = getattr(self, "source_dir", None)
            if isinstance(example, str) and source is not None and Path(example).name == example \
                    and (source / example).is_file() and (source / example).resolve() != (folder / example).resolve():
                with atomic_write(folder / example, "wb") as f:
                    f.write((source / example).read_bytes())

    def generate_model_card(self, *args, **kwargs):
        """The Hub model card: see :mod:`a3d.model.card`."""
        from .card import build_model_card

        dtype = getattr(self, "stored_dtype", None) or next(self.parameters()).dtype
        return build_model_card(self.config.to_dict(), self.num_parameters(), str(dtype).replace("torch.", ""),
                                getattr(self, "evaluation", None), kwargs.get("repo_id"))

    def compile_blocks(self) -> "A3DModel":
        """torch.compile each DiT block (one compiled code shared by all blocks: a few seconds on
        the first call). Worth it at the paper's scale on a GPU (about 17% faster on an H100, see
        BENCHMARKS.md); the small preset gains nothing. Returns self."""
        for block in self.blocks:
            block.compile()
        return self

    def num_parameters(self, inference: bool = True) -> int:
        """Parameter count (without the AVAS decoder when ``inference``)."""
        return sum(p.numel() for n, p in self.named_parameters() if not (inference and n.startswith("avas.")))
