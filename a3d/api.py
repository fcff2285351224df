"""The one-call API: ``a3d.reconstruct(image) -> Avatar``, its batched form, model loading, and the
``a3d reconstruct`` command.

    import a3d
    avatar = a3d.reconstruct("portrait.jpg")
    avatar.save("out/")     # head.ply, head.splat, orbit.mp4, grid.png, input.png, a3d_cameras.json, metadata.json

Outputs follow the conventions of :mod:`a3d.core.cameras` and :mod:`a3d.core.framing`: OpenCV cameras,
world with the head at the origin, y up, face toward +z, lengths in head units (crown to chin ≈ 1.1).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence, Union

import torch
from PIL import Image
from torch import Tensor

from .core import framing
from .core.assets import ASSET_DIR
from .core.cameras import Cameras, canonical_cameras, orbit_cameras, save_cameras_json
from .core.gaussians import Gaussians
from .io.ply import DEFAULT_UP, save_ply, save_splat
from . import limits
from .errors import InputError, SetupError, check_device, check_int
from .inference.refinement import RefineSettings
from .inference.preprocess import EmptyMatteError, ImageLike, Preprocessed, frame_like, preprocess as _preprocess
from .version import __version__

with warnings.catch_warnings():
    # The model imports huggingface_hub, which imports tqdm.auto: in a notebook without ipywidgets that prints a
    # TqdmWarning ("IProgress not found") into the user's output. a3d's own bars fall back to text there
    # (a3d.core.progress), so the warning tells the user nothing.
    warnings.filterwarnings("ignore", message="IProgress not found")
    from .model.network import A3DModel

__all__ = ["Avatar", "NoWeightsError", "load_model", "reconstruct", "reconstruct_many", "refine", "DEFAULT_MODEL_DIR"]

DEFAULT_MODEL_DIR = ASSET_DIR / "models" / "tiny"
"""The bundled default model: ``config.json`` + ``model.safetensors`` (the trainer's output folder)."""

ModelLike = Union[None, str, os.PathLike, A3DModel]
# One portrait, or photos of several canonical views of one head: {"front": a, "left": b, ...}.
ViewsLike = Union[ImageLike, Mapping[str, ImageLike]]


class NoWeightsError(SetupError, FileNotFoundError):
    """No trained weights are installed where the default model should be."""


# ---- models -----------------------------------------------------------------------------------------

_cache: dict[tuple[str, str, bool], A3DModel] = {}


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model(name_or_path: str | os.PathLike | None = None, *, device: str | torch.device | None = None,
               compile: bool = False) -> A3DModel:
    """Load a model for inference (cached per source, device and ``compile``).

    Args:
        name_or_path: None or ``"tiny"`` for the bundled default (:data:`DEFAULT_MODEL_DIR`); a
            folder with ``config.json`` + ``model.safetensors`` (what ``save_pretrained`` and the
            trainer write); or a Hugging Face Hub repo id (downloads; needs network).
        device: where to put it (default: CUDA if available, else CPU).
        compile: torch.compile the DiT blocks (:meth:`A3DModel.compile_blocks`): a few seconds
            once, then about 17% faster at the paper's scale on a GPU; needs a working triton.
    Returns:
        An :class:`A3DModel` in eval mode, with ``model.source`` (where it came from) and
        ``model.weights_sha256`` set.
    Raises:
        NoWeightsError when the default model has no trained weights installed.
    """
    device = check_device(device) if device is not None else _default_device()
    if name_or_path is None or str(name_or_path) == "tiny":
        folder = DEFAULT_MODEL_DIR
        if not (folder / "model.safetensors").is_file() or not (folder / "config.json").is_file():
            raise NoWeightsError(
                f"no trained weights are installed for a3d's default model (expected config.json and "
                f"model.safetensors in {folder}). Pass model=<folder written by save_pretrained or the "
                f"trainer> (CLI: --model DIR), or train one with `a3d train`.")
        source = "a3d/tiny"
    else:
        folder = Path(name_or_path)
        source = str(name_or_path)
        if not folder.is_dir():
            if os.path.exists(folder) or str(name_or_path).count("/") != 1:
                raise FileNotFoundError(f"model: {name_or_path!r} is neither a model folder (config.json + "
                                        f"model.safetensors) nor a Hub repo id 'owner/name'")
    key = (str(folder.resolve()) if folder.is_dir() else source, str(device), bool(compile))
    if key not in _cache:
        model = A3DModel.from_pretrained(str(folder) if folder.is_dir() else source, map_location=str(device))
        model.source = source
        weights = folder / "model.safetensors"
        model.weights_sha256 = _sha256(weights) if weights.is_file() else None
        model = model.eval().requires_grad_(False)
        _cache[key] = model.compile_blocks() if compile else model
    return _cache[key]


# ---- the avatar -------------------------------------------------------------------------------------

@dataclass
class Avatar:
    """One reconstructed head.

    Attributes:
        gaussians: Gaussians [N] (N = 4·H·W, one scene, float32), head units, world y up / face +z.
        cameras: the 4 canonical cameras (front, left, right, back) of the model's resolution, OpenCV.
        input_image: [3, S, S] the model's input after preprocessing, RGB in [0, 1].
        metadata: conventions, model id and version, settings, and per-stage timings in seconds.
        photos: [4, 3, S, S] the preprocessed photos of the canonical views (front = input_image;
            zeros where none was given), or None; what :func:`refine` fits.
        given: [4] bool, which canonical views had a photo, or None (the front only).
        masks: [4, S, S] their foreground mattes in [0, 1] (ones where unknown), or None.
    """

    gaussians: Gaussians
    cameras: Cameras
    input_image: Tensor
    metadata: dict = field(default_factory=dict)
    photos: Tensor | None = None
    given: Tensor | None = None
    masks: Tensor | None = None

    def __repr__(self) -> str:
        """One line (Gaussians, device, dtype, bounds, source, seed, model), not the tensors."""
        from .io.display import avatar_summary
        return avatar_summary(self)

    def _repr_html_(self) -> str:
        """Notebooks: the input, a looping turntable and eight views (rendered when displayed)."""
        from .io.display import avatar_html
        return avatar_html(self)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """Notebooks: the HTML of :meth:`_repr_html_`, a PNG of the input and views for renderers without
        HTML or video (GitHub), and the summary line; IPython uses this before ``_repr_html_``."""
        from .io.display import avatar_mimebundle
        return avatar_mimebundle(self)

    def show(self, frames: int = 36, size: int = 224) -> None:
        """Display the input, turntable and views inline in a notebook (needs IPython)."""
        from IPython.display import display

        from .io.display import avatar_mimebundle
        display(avatar_mimebundle(self, frames=frames, size=size), raw=True)

    @property
    def confidence(self) -> Tensor:
        """[N] in [0, 1] per Gaussian: 1 where the given photos showed it, 0 where the network guessed it
        (a depth test against the head's own render from each given camera, :mod:`a3d.inference.confidence`).
        Computed on first use (about a second on a CPU) and cached while ``gaussians`` stays the same object."""
        from .inference.confidence import gaussian_confidence

        cached = self.__dict__.get("_confidence")
        if cached is None or cached[0] is not self.gaussians:
            cached = (self.gaussians, gaussian_confidence(self.gaussians, self.cameras, self.given, self.masks))
            self.__dict__["_confidence"] = cached
        return cached[1]

    def save_ply(self, path: str | os.PathLike, sh_degree: int | None = None, up: str = DEFAULT_UP,
                 confidence: bool = True) -> None:
        """Inria 3DGS PLY; ``sh_degree=3`` pads for Inria-style loaders; ``up``: the default ``"-y"`` (the
        3DGS convention) shows upright in SuperSplat, gsplat.js and gradio's Model3D, ``"+y"`` in Spark and
        gaussian-splats-3d (see :func:`a3d.io.ply.save_ply`); ``confidence`` adds :attr:`confidence` as an
        extra vertex property (viewers ignore it; :func:`a3d.io.ply.load_confidence` reads it)."""
        save_ply(self.gaussians.detach().to("cpu"), path, sh_degree=sh_degree, up=up,
                 confidence=self.confidence if confidence else None)

    def save_splat(self, path: str | os.PathLike, up: str = DEFAULT_UP) -> None:
        """``.splat`` (32 bytes a splat) for web viewers; ``up`` as in :meth:`save_ply`."""
        save_splat(self.gaussians.detach().to("cpu"), path, up=up)

    def export(self, path: str | os.PathLike, *, up: str = DEFAULT_UP, sh_degree: int | None = None,
               min_opacity: float | None = None) -> str:
        """Write the Gaussians in the format the file's name asks for: ``.ply``, ``.compressed.ply``,
        ``.splat``, ``.spz``, ``.sog`` or ``.glb`` (glTF KHR_gaussian_splatting, in metres;
        :func:`a3d.io.splat_files.save_splats`; the web formats leave out Gaussians under 1/255 opacity unless
        ``min_opacity=0``). Returns the path written."""
        from .io.splat_files import save_splats

        return save_splats(self.gaussians.detach().to("cpu"), path, up=up, sh_degree=sh_degree,
                           min_opacity=min_opacity)

    def export_cameras(self, folder: str | os.PathLike, format: str = "nerfstudio", views: int | str = 24,
                       size: int = 512, elevation: float = 10.0, up: str = DEFAULT_UP) -> dict[str, str]:
        """A project other 3DGS tools open as it is: renders from ``views`` cameras (a number for an orbit
        at ``elevation`` degrees, or ``"canonical"`` for the four canonical views) as ``images/*.png``,
        ``head.ply``, and the cameras as nerfstudio's ``transforms.json`` (``format="nerfstudio"``) or
        COLMAP's text model in ``sparse/0/`` (``"colmap"``), all in the world of ``up``
        (:mod:`a3d.io.camera_files`). Returns name → path."""
        from .io.camera_files import export_camera_set

        limits.check("video_size", size, "size")
        if views == "canonical":
            cams = canonical_cameras(size, radius=self.cameras.centers.norm(dim=-1).mean().item())
            names = list(framing.CANONICAL_VIEWS)
        else:
            check_int(views, "views", 1, 1000)
            cams = orbit_cameras(views, elevation=elevation, size=size)
            names = [f"orbit_{i:03d}" for i in range(views)]
        return export_camera_set(self.gaussians.detach(), cams, names, folder, format, up=up,
                                 background=framing.BACKGROUND)

    def save_mesh(self, path: str | os.PathLike, resolution: int = 256, faces: int = 100_000,
                  texture_size: int | None = 1024, scale: float | None = None, views: int = 24,
                  progress: bool = False):
        """Extract the head's surface as a watertight triangle mesh with a baked texture and write it (.glb in
        metres with normals and a PBR material, .obj + .mtl + .png, or .ply; see :func:`a3d.io.mesh.extract`
        (``views``: how many renders are fused; ``texture_size``: the atlas' texels a side, None for vertex
        colours only; ``progress``: a bar over its stages) and :mod:`a3d.io.mesh_file` (``scale``: None for
        the format's unit)). Returns the :class:`a3d.io.mesh.Mesh`."""
        from .core.files import check_writable
        from .io.mesh import extract
        from .io.mesh_file import MESH_FORMATS

        if not os.fspath(path).lower().endswith(MESH_FORMATS):  # the output is checked before minutes of work
            raise InputError(f"path: expected a file ending in {', '.join(MESH_FORMATS)}, got {os.fspath(path)!r}")
        check_writable(path)
        if scale is not None:  # None: the format's own unit (a3d.io.mesh_file)
            limits.check("mesh_scale", scale, "scale")
        mesh = extract(self.gaussians.detach(), resolution=resolution, faces=faces, texture_size=texture_size,
                       views=views, progress=progress)
        mesh.save(path, scale=scale)
        return mesh

    def render(self, cameras: Cameras | None = None, background: Sequence[float] = framing.BACKGROUND):
        """Render from ``cameras`` (default: the canonical views) → :class:`a3d.core.rendering.RenderOutput`
        with rgb [C, H, W, 3], alpha and depth."""
        from .core.rendering import render

        if not isinstance(background, Tensor):
            background = limits.check_color(background, "background")
        if cameras is not None and not (torch.isfinite(cameras.viewmats).all() and torch.isfinite(cameras.Ks).all()):
            raise InputError("cameras: viewmats or Ks hold NaN or inf")
        with torch.no_grad():
            return render(self.gaussians, self.cameras if cameras is None else cameras, background)

    def rig(self):
        """The head's animation rig (:class:`a3d.animation.drive.Rig`): the morphable head fitted to these
        Gaussians, each Gaussian bound to its triangles, and the mouth's interior. Built on first use
        (3-6 s on one thread of a 2-core CPU) and cached while ``gaussians`` stays the same object."""
        from .animation.drive import build_rig

        cached = self.__dict__.get("_rig")
        if cached is None or cached[0] is not self.gaussians:
            cached = (self.gaussians, build_rig(self.gaussians))
            self.__dict__["_rig"] = cached
        return cached[1]

    def animate(self, expressions=None, head_pose=None) -> "Avatar | list[Avatar]":
        """The head with an expression: ``expressions`` is a dict of ARKit blendshape weights
        (``{"jawOpen": 0.6, "mouthSmileLeft": 0.8}``; names in :func:`a3d.animation.drive.arkit_names`), a
        [52] tensor in that order, or [F, 52] for F frames; ``head_pose`` is (yaw, pitch, roll) in degrees,
        [3] or [F, 3] (:mod:`a3d.animation.pose`). Returns a new Avatar (a list of F for frames) whose
        Gaussians carry the mouth's interior too (transparent while the lips are closed)."""
        moved = self.rig().deform(expressions, head_pose)
        meta = {**self.metadata, "animation": {"frames": moved.means.shape[0]}}
        out = [replace(self, gaussians=moved.scene(f), metadata=meta) for f in range(moved.means.shape[0])]
        batched = (not isinstance(expressions, Mapping) and expressions is not None
                   and torch.as_tensor(expressions).dim() == 2) or (head_pose is not None
                                                                   and torch.as_tensor(head_pose).dim() == 2)
        return out if batched else out[0]

    def orbit_video(self, path: str | os.PathLike, frames: int = 120, fps: int = 30, size: int = 512,
                    elevation: float = 10.0, progress: bool = True) -> str:
        """A 360° turntable (.mp4 or .gif) around the head; returns the path written."""
        from .io.video import orbit_video

        return orbit_video(self.gaussians, path, frames=frames, fps=fps, size=size, elevation=elevation,
                           background=framing.BACKGROUND, progress=progress)

    def grid(self, views: int = 8, size: int = 256, elevation: float = 10.0, columns: int = 4) -> Image.Image:
        """``views`` renders evenly spaced around the head (front first), tiled ``columns`` wide."""
        from .core.rendering import to_uint8

        check_int(views, "views", 1, 64)
        check_int(columns, "columns", 1)
        limits.check("video_size", size, "size")
        limits.check("elevation", elevation, "elevation")
        cams = orbit_cameras(views, elevation=elevation, size=size)
        imgs = to_uint8(self.render(cams).rgb)  # [V, size, size, 3]
        cols = min(columns, views)
        rows = -(-views // cols)
        sheet = Image.new("RGB", (cols * size, rows * size), tuple(int(255 * c) for c in framing.BACKGROUND))
        for i, img in enumerate(imgs):
            sheet.paste(Image.fromarray(img), ((i % cols) * size, (i // cols) * size))
        return sheet

    def save(self, folder: str | os.PathLike, *, ply: bool = True, splat: bool = True, video: bool = True,
             grid: bool = True, video_frames: int = 120, video_size: int = 512, grid_size: int = 256,
             mesh: bool = False, up: str = DEFAULT_UP, sh_degree: int | None = None,
             progress: bool = False) -> dict[str, str]:
        """Write the outputs into ``folder`` (created): head.ply, head.splat, orbit.mp4, grid.png,
        input.png, a3d_cameras.json (the canonical cameras, a3d's camera file; not the Inria code's
        cameras.json, see :meth:`export_cameras` for other tools) and metadata.json, and with ``mesh`` head.glb
        (:meth:`save_mesh`); ``grid_size`` is the side of each of the grid's 8 views; ``up`` and
        ``sh_degree`` as :meth:`save_ply` (``up`` for the .splat too); ``progress``: bars for the video and
        the mesh. Returns name → path."""
        from .core.files import atomic_path, atomic_write
        from .core.rendering import to_uint8

        if video:  # every number is checked before the first file is written
            limits.check("video_frames", video_frames, "video_frames")
            limits.check("video_size", video_size, "video_size")
            if video_size % 2:
                raise InputError(f"video_size: an MP4 needs an even frame size, got {video_size}")
        if grid:
            limits.check("video_size", grid_size, "grid_size")
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise InputError(f"folder: {folder} is a file; expected a folder (it is created if missing)")
        folder.mkdir(parents=True, exist_ok=True)
        out: dict[str, str] = {}
        if ply:
            self.save_ply(folder / "head.ply", sh_degree=sh_degree, up=up)
            out["ply"] = str(folder / "head.ply")
        if splat:
            self.save_splat(folder / "head.splat", up=up)
            out["splat"] = str(folder / "head.splat")
        if grid:
            with atomic_path(folder / "grid.png") as tmp:
                self.grid(size=grid_size).save(tmp, format="PNG")
            out["grid"] = str(folder / "grid.png")
        if video:
            out["video"] = self.orbit_video(folder / "orbit.mp4", frames=video_frames, size=video_size,
                                            progress=progress)
        if mesh:
            self.save_mesh(folder / "head.glb", progress=progress)
            out["mesh"] = str(folder / "head.glb")
        with atomic_path(folder / "input.png") as tmp:
            Image.fromarray(to_uint8(self.input_image.permute(1, 2, 0))).save(tmp, format="PNG")
        out["input"] = str(folder / "input.png")
        save_cameras_json(folder / "a3d_cameras.json", self.cameras.to("cpu"), names=list(framing.CANONICAL_VIEWS))
        out["cameras"] = str(folder / "a3d_cameras.json")
        with atomic_write(folder / "metadata.json", "w") as f:
            f.write(json.dumps(self.metadata, indent=1))
        out["metadata"] = str(folder / "metadata.json")
        return out


# ---- reconstruction ---------------------------------------------------------------------------------

def _resolve(model: ModelLike, device) -> tuple[A3DModel, torch.device, float]:
    start = time.perf_counter()
    if isinstance(model, A3DModel):
        dev = check_device(device) if device is not None else next(model.parameters()).device
        model = model.to(dev)  # no .eval(): the network behaves the same in both modes
    else:
        dev = check_device(device) if device is not None else _default_device()
        model = load_model(model, device=dev)
    return model, dev, time.perf_counter() - start


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def reconstruct(image: ViewsLike, model: ModelLike = None, *, steps: int = 1, seed: int | None = None,
                device: str | torch.device | None = None, preprocess: bool = True,
                refine: bool | int | RefineSettings = False, face: int | None = None) -> Avatar:
    """One portrait (or a few photos of one head) → a 3D Gaussian head.

    Args:
        image: a path, PIL image, numpy array or tensor (see :func:`a3d.inference.preprocess.load_image`); or a
            dict of photos of the canonical views, ``{"front": a, "left": b, "right": c, "back": d}``
            (front required; "left" is the subject's left side, seen by the camera on +x). Extra
            views go into the network (models with the input decoder) and into refinement. Side
            and back photos are framed like the front one (:func:`a3d.inference.preprocess.frame_like`).
        model: None for the bundled default, a model folder or Hub id (see :func:`load_model`), or
            an :class:`A3DModel` (moved to ``device`` if one is given).
        steps: denoising steps (1, the paper's default, is one network call; Eq. 3 for more).
        seed: seed of the initial noise (None: a random seed, recorded in the metadata).
        device: torch device (default: the model's for an A3DModel, else CUDA if available).
        preprocess: find and frame the face and remove the background; False for an image that is
            already framed like the model's input (see :mod:`a3d.core.framing`).
        refine: fit the Gaussians to the photos afterwards (:func:`refine`): True for the default
            settings, an int for that many steps, or a :class:`a3d.inference.refinement.RefineSettings`.
        face: which face to reconstruct when the photo holds several: an index into the metadata's
            ``preprocess.candidates`` (plausible faces first, largest first: 0, the default, is the largest).
    Returns:
        An :class:`Avatar`. Inference runs under bf16 autocast on CUDA and in float32 on CPU.
    """
    return reconstruct_many([image], model, batch_size=1, steps=steps, seed=seed, device=device,
                            preprocess=preprocess, progress=False, refine=refine, face=face)[0]


def refine(avatar: Avatar, settings: bool | int | RefineSettings = True, *, progress: bool = True) -> Avatar:
    """Fit ``avatar``'s Gaussians to its photos in seconds (HQ-Head's per-subject stage; see
    :mod:`a3d.inference.refinement` for the objective): returns a new Avatar whose metadata gains a "refine" report
    and a "refine" timing. ``settings``: True (defaults), a number of steps, or a RefineSettings."""
    from .inference.refinement import settings_from

    if not isinstance(avatar, Avatar):
        raise InputError(f"avatar: expected an a3d.Avatar, got {type(avatar).__name__}")
    if not isinstance(avatar.input_image, Tensor) and avatar.photos is None:
        raise InputError("avatar: it carries no photo to fit (input_image and photos are None, as for an Avatar "
                         "built from a PLY); refine an Avatar that reconstruct() returned")
    if len(avatar.cameras) != 4 or avatar.cameras.width != avatar.cameras.height:
        raise InputError(f"avatar: refine needs the 4 square canonical cameras, got {len(avatar.cameras)} of "
                         f"{avatar.cameras.width}x{avatar.cameras.height}")
    return _refine_avatar(avatar, settings_from(settings, avatar.gaussians.device), progress)


def _refine_avatar(avatar: Avatar, s: RefineSettings | None, progress: bool) -> Avatar:
    from .inference.refinement import refine_gaussians

    if s is None:
        return avatar
    S = avatar.cameras.width
    photos = avatar.photos if avatar.photos is not None else torch.cat(
        [avatar.input_image[None], avatar.input_image.new_zeros(3, 3, S, S)])
    given = avatar.given if avatar.given is not None else torch.tensor([True, False, False, False])
    g, report = refine_gaussians(avatar.gaussians, avatar.cameras, photos, given, avatar.masks, s, progress)
    meta = dict(avatar.metadata)
    meta["refine"] = report
    meta["timings_s"] = {**meta.get("timings_s", {}), "refine": report["seconds"]}
    return replace(avatar, gaussians=g, metadata=meta)


def _prepare(item: ViewsLike, size: int, align: bool, face: int | None, name: str
             ) -> tuple[Preprocessed, Tensor, Tensor, Tensor, bool]:
    """Preprocess one head's photo(s) → (the front's Preprocessed, photos [4, 3, S, S], masks [4, S, S]
    (ones where unknown), given [4] bool, whether every given photo has a matte). Views that fail the
    multi-view checks (:mod:`a3d.inference.view_checks`) are left out with a warning."""
    from .inference.view_checks import describe, unusable_views

    views = dict(item) if isinstance(item, Mapping) else {"front": item}
    unknown = [k for k in views if k not in framing.CANONICAL_VIEWS]
    if unknown or "front" not in views:
        keys = ", ".join(repr(k) for k in views)[:200]
        raise InputError(f"{name}: expected photos keyed by {', '.join(framing.CANONICAL_VIEWS)} with 'front' among "
                         f"them, got the keys {keys or 'none'}")
    views = {v: views[v] for v in framing.CANONICAL_VIEWS if v in views}  # front first
    framed: dict[str, Preprocessed] = {}
    for view, image in views.items():
        try:
            if view == "front":
                framed[view] = _preprocess(image, size, align=align, face=face)
            elif align:
                framed[view] = frame_like(image, size, framed["front"])
            else:
                framed[view] = _preprocess(image, size, align=False)
        except InputError as e:  # name the view and its file: the message may be about one photo of many
            if isinstance(e, EmptyMatteError) and view != "front":
                # a side or back photo with no person at all (a mug): like a view with little head, left out
                warnings.warn(f"a3d: {describe(view, image)} shows no person (its person matte is empty); a3d leaves "
                              f"this view out and reconstructs from the others", UserWarning, stacklevel=3)
                continue
            where = describe(view, image) if len(views) > 1 else name
            message = str(e)
            if isinstance(image, (str, os.PathLike)) and message.startswith(os.fspath(image)):
                message = message[len(os.fspath(image)):].lstrip(": ")
            raise type(e)(f"{where}: {message}") from None
    used = {v: views[v] for v in framed}
    dropped = unusable_views(used, framed, size, faces=align) if len(used) > 1 else {}
    photos, masks = torch.zeros(4, 3, size, size), torch.ones(4, size, size)
    given = torch.zeros(4, dtype=torch.bool)
    matted = True
    for v, view in enumerate(framing.CANONICAL_VIEWS):
        if view not in framed or view in dropped:
            continue
        p = framed[view]
        photos[v], given[v] = p.image, True
        if p.mask is not None:
            masks[v] = p.mask
        matted = matted and p.mask is not None
    return framed["front"], photos, masks, given, matted


def reconstruct_many(images: Sequence[ViewsLike], model: ModelLike = None, *, batch_size: int = 4, steps: int = 1,
                     seed: int | None = None, device: str | torch.device | None = None, preprocess: bool = True,
                     progress: bool = True, refine: bool | int | RefineSettings = False,
                     face: int | None = None) -> list[Avatar]:
    """:func:`reconstruct` for many images (each a portrait or a dict of views), ``batch_size`` at a
    time through the network, with a progress bar. Image i uses noise seed ``seed + i``, so results
    do not depend on the batching."""
    from .core.progress import progress_bar
    from .inference.refinement import settings_from

    if isinstance(images, (str, os.PathLike, Image.Image, Tensor)) or not isinstance(images, Sequence):
        raise InputError("images: expected a list of images (use reconstruct() for one)")
    limits.check("batch_size", batch_size, "batch_size")
    limits.check("denoise_steps", steps, "steps")
    if face is not None:
        limits.check("face_index", face, "face")
    settings_from(refine)  # a bad value fails before any work
    if seed is None:
        seed = int(torch.randint(0, limits.MAX_SEED - len(images), ()).item())
    limits.check("seed", seed, "seed")
    if len(images) and seed + len(images) - 1 > limits.MAX_SEED:
        raise InputError(f"seed: image i uses seed + i, so seed must be at most {limits.MAX_SEED - len(images) + 1} "
                         f"for {len(images)} images, got {seed}")
    net, dev, load_s = _resolve(model, device)
    refine_settings = settings_from(refine, dev)
    cfg = net.config
    cams = canonical_cameras(cfg.image_size, radius=cfg.camera_radius, fov=cfg.camera_fov_deg).to(dev)
    base_meta = {
        "format": "a3d-avatar", "a3d_version": __version__,
        "model": {"id": getattr(net, "source", "in-memory"), "weights_sha256": getattr(net, "weights_sha256", None),
                  "config": cfg.to_dict()},
        "convention": {"cameras": "OpenCV: world-to-camera, x right, y down, z forward; K in pixels, "
                                  "pixel centres at +0.5",
                       "world": "head centred at the origin, y up, face toward +z",
                       "units": "head units (crown to chin ~ 1.1)",
                       "canonical_views": list(framing.CANONICAL_VIEWS), "background": list(framing.BACKGROUND)},
        "steps": steps, "device": str(dev), "dtype": "bfloat16 autocast" if dev.type == "cuda" else "float32",
    }
    avatars: list[Avatar] = []
    with progress_bar(total=len(images), desc="reconstruct", unit="image", disable=not progress) as bar:
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            prepared = []
            for j, img in enumerate(chunk):
                name = os.fspath(img) if isinstance(img, (str, os.PathLike)) else f"image {start + j}"
                prepared.append(_prepare(img, cfg.image_size, preprocess, face, name))
            pre = [p[0] for p in prepared]
            x = torch.stack([p.image for p in pre]).to(dev)
            photos = torch.stack([p[1] for p in prepared]).to(dev)
            given = torch.stack([p[3] for p in prepared]).to(dev)
            views = {"photos": photos, "given": given} if bool(given[:, 1:].any()) else {}
            if all(p[4] for p in prepared):  # the mattes are the given views' opacities (a3d.model.given)
                views["masks"] = torch.stack([p[2] for p in prepared]).to(dev)
            # noise drawn where the model runs (a 512² preset's noise would take ~15 ms on the CPU)
            g0 = torch.cat([net.noise(1, torch.Generator(dev).manual_seed(seed + start + i))
                            for i in range(len(chunk))])
            _sync(dev)
            t0 = time.perf_counter()
            with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                g = net.one_step(x, g0, **views) if steps == 1 else net.sample(x, g0, steps, **views)
            _sync(dev)
            infer_s = time.perf_counter() - t0
            if not all(torch.isfinite(getattr(g, k)).all() for k in ("means", "scales", "opacities", "colors")):
                raise InputError(f"model: {getattr(net, 'source', 'the model')} produced NaN or inf Gaussians "
                                 f"(are its weights finite?)")
            for i, p in enumerate(pre):
                meta = dict(base_meta)
                src = chunk[i]
                meta.update({
                    "source": os.fspath(src) if isinstance(src, (str, os.PathLike)) else type(src).__name__,
                    "seed": seed + start + i, "num_gaussians": g.num_gaussians,
                    "preprocess": {"mode": p.mode, "face": p.face.to_dict() if p.face is not None else None,
                                   "faces_found": p.faces, "face_index": p.face_index,
                                   "candidates": [c.to_dict() for c in p.candidates]},
                    "views": [v for v, ok in zip(framing.CANONICAL_VIEWS, prepared[i][3].tolist()) if ok],
                    "timings_s": {"load_model": round(load_s if start == 0 and i == 0 else 0.0, 4),
                                  "preprocess": round(p.seconds, 4), "inference": round(infer_s, 4),
                                  "inference_batch_size": len(chunk)},
                })
                avatar = Avatar(g.scene(i), cams, p.image, meta, prepared[i][1], prepared[i][3], prepared[i][2])
                if refine_settings is not None:
                    avatar = _refine_avatar(avatar, refine_settings, progress and len(images) == 1)
                avatars.append(avatar)
            bar.update(len(chunk))
    return avatars


# ---- the command line -------------------------------------------------------------------------------

def cmd_reconstruct(args: argparse.Namespace) -> int:
    """Without --ply/--splat/--format/--video/--mesh: write PLY, .splat and the grid; with any of them: just
    those. a3d_cameras.json, metadata.json and input.png are always written.

    IMAGE may be files, folders and glob patterns (:mod:`a3d.io.image_files`). A photo that cannot be
    reconstructed (unreadable, no face, a name that matches nothing) is reported on stderr and skipped; the
    others are saved as each batch is done, and the exit status is 2 when any failed. Other errors reach
    :func:`a3d.cli.main`, which prints them on one line with the exit code of docs/errors.md."""
    import sys

    from tqdm import tqdm  # tqdm.write: messages above the bar

    from .core.progress import progress_bar
    from .errors import EXIT_INPUT, one_line
    from .io.image_files import expand_image_paths

    chosen = args.ply or args.splat or args.video or args.mesh or args.format
    failed: list[str] = []

    def fail(message: str) -> None:
        failed.append(message)
        tqdm.write(f"a3d reconstruct: error: {message} (skipped)", file=sys.stderr)

    if args.view:
        if args.images:
            raise InputError("give either IMAGE files or --view NAME=FILE photos of one head, not both")
        views = {}
        for spec in args.view:
            name, sep, path = spec.partition("=")
            if not sep or name not in framing.CANONICAL_VIEWS or name in views:
                raise InputError(f"--view {spec!r}: expected NAME=FILE with NAME one of "
                                 f"{', '.join(framing.CANONICAL_VIEWS)}, each once")
            if not path:
                raise InputError(f"--view {spec!r}: no file after '='; expected NAME=FILE")
            if not os.path.isfile(path):
                raise InputError(f"--view {name}: {path} is {'a folder' if os.path.isdir(path) else 'not a file'}; "
                                 f"expected an image file")
            views[name] = path
        items, names = [views], [views.get("front", "head")]
    else:
        files, missing = expand_image_paths(args.images)
        items, names = list(files), list(files)
        for spec, why in missing:
            fail(f"{spec}: {why}")
    if not items:
        raise InputError("no images given (IMAGE files, folders or patterns, or --view NAME=FILE)" if not failed
                         else "none of the given names is an image file")
    refine_arg = args.refine  # True (--refine without a number) or a number of steps the parser checked
    model, dev, _ = _resolve(args.model, args.device)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise InputError(f"--output: {out} is a file; expected a folder (it is created if missing)")
    out.mkdir(parents=True, exist_ok=True)  # an unwritable place fails now, before the images are read
    used: set[str] = set()

    def run(chunk: list, first: int) -> list[Avatar]:  # image i keeps seed + i however the batch is cut
        return reconstruct_many(chunk, model, batch_size=len(chunk), steps=args.steps, seed=args.seed + first,
                                device=dev, preprocess=not args.no_preprocess, progress=False, refine=refine_arg,
                                face=args.face)

    def save(path: str, avatar: Avatar) -> None:
        stem = Path(path).stem or "image"
        name, k = stem, 1
        while name in used:
            name, k = f"{stem}_{k}", k + 1
        used.add(name)
        written = avatar.save(out / name, ply=args.ply or not chosen, splat=args.splat or not chosen,
                              video=args.video, grid=not chosen, mesh=args.mesh, up=args.up, sh_degree=args.sh_degree,
                              progress=True)
        for fmt in args.format:
            file = "head_splats.glb" if fmt == "glb" else f"head.{fmt}"  # head.glb is the mesh's
            with_sh = fmt in ("ply", "spz", "compressed.ply", "glb")  # .splat and .sog hold the DC colour only
            written[fmt] = avatar.export(out / name / file, up=args.up, sh_degree=args.sh_degree if with_sh else None)
        tqdm.write(f"{path} -> {out / name} ({', '.join(sorted(written))})")

    with progress_bar(total=len(items), desc="reconstruct", unit="image") as bar:
        for start in range(0, len(items), args.batch_size):
            chunk = items[start:start + args.batch_size]
            try:
                done = list(zip(names[start:], run(chunk, start)))
            except (ValueError, OSError) as e:  # a bad photo (SetupError, the machine's, ends the command)
                if isinstance(e, SetupError):
                    raise
                done = []
                if len(chunk) == 1:
                    fail(one_line(e))
                for j, item in enumerate(chunk if len(chunk) > 1 else []):  # find it: one photo at a time
                    try:
                        done.append((names[start + j], run([item], start + j)[0]))
                    except (ValueError, OSError) as e1:
                        if isinstance(e1, SetupError):
                            raise
                        fail(one_line(e1))
            for path, avatar in done:
                save(path, avatar)
            bar.update(len(chunk))
    if failed:
        print(f"a3d reconstruct: error: {len(failed)} of {len(failed) + len(used)} images failed (listed above); "
              f"the other {len(used)} were saved in {out}", file=sys.stderr)
        return EXIT_INPUT
    return 0
