"""a3d's Gradio demo (a Hugging Face Space): one portrait in, a turntable video, an interactive 3D
Gaussian splat, the head as a triangle mesh (GLB), a multi-view grid and downloads out.

    python demo/app.py                 # http://127.0.0.1:7860
    python demo/app.py --port 8080 --host 0.0.0.0

Importing this module has no side effects: :func:`build_demo` makes the app, ``__main__`` launches it.

Each request works in its own ``tempfile.mkdtemp`` folder under :data:`RESULTS_ROOT`; folders older
than :data:`RESULTS_TTL_S` are swept at the start of every request (and Gradio's own copies of the
outputs by ``delete_cache``). The queue runs A3D_DEMO_CONCURRENCY reconstructions at a time and keeps
at most :data:`QUEUE_SIZE` waiting; uploads are capped at :data:`MAX_UPLOAD` and anything that is not a
readable image is refused with a message in the page. An exception in one request becomes a message
in that request's page, never a dead server.

Environment:
    A3D_DEMO_DEVICE: torch device (default: cuda if available, else cpu).
    A3D_DEMO_CONCURRENCY: reconstructions run at once (default 1 on CPU, 2 on CUDA).
    A3D_DEMO_RANDOM_INIT=1: TESTS ONLY. When no trained weights are installed, use a randomly
        initialised tiny model so the whole pipeline runs end to end, with small renders. Its output
        is noise, and the page says so. Without weights and without this, the page says that no
        trained weights are installed and the Reconstruct button is disabled.
"""
from __future__ import annotations

import argparse
import contextlib
import html
import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path

import gradio as gr
import torch

from a3d.core import framing, ops
from a3d.api import NoWeightsError, load_model, reconstruct
from a3d.core.cameras import save_cameras_json
from a3d.model.config import get_config
from a3d.model.network import A3DModel
from a3d.inference.preprocess import TRAINED_TURN_DEG, TURNED_FACE_DEG, ImageError, NoFaceError, load_image
from a3d.core.rendering import to_uint8
from a3d.io.ply import save_splat
from a3d.io.splat_codec import GSPLAT_CAMERA, turned_to_face
from a3d.inference.confidence import tint_guessed

HERE = Path(__file__).resolve().parent
EXAMPLES = [HERE / "examples" / "astronaut.jpg"]
RESULTS_ROOT = Path(tempfile.gettempdir()) / "a3d-demo"
RESULTS_TTL_S = 3600  # a request's folder lives at least this long (the page links to its files)
MAX_UPLOAD = "10mb"  # Gradio refuses bigger uploads; a3d.inference.preprocess bounds pixels and bytes again
QUEUE_SIZE = 16
MAX_STEPS = 8
NOT_AN_IMAGE = "That file is not an image a3d can read. Upload a portrait photo (JPEG, PNG or WebP, at most 10 MB)."
RANDOM_INIT_ENV = "A3D_DEMO_RANDOM_INIT"
# gsplat.js (Model3D's splat renderer) clears its canvas to transparent and paints the page colour behind
# it from the canvas's inline style (black); Model3D's clear_color does not reach it. This rule gives
# the 3D view the turntable's background (a3d.core.framing.BACKGROUND).
VIEW_BACKGROUND = "#" + "".join(f"{round(255 * c):02x}" for c in framing.BACKGROUND)
CSS = f"#splat-view canvas {{ background: {VIEW_BACKGROUND} !important; }}"
# CPU renders, chosen so that upload to video takes at most 15 s on 2 cores with the compiled kernels
# (bench/bench_demo.py; figures in BENCHMARKS.md).
CPU_VIDEO = {"frames": 48, "fps": 24, "size": 256}
CPU_GRID = {"views": 8, "size": 192}
# The mesh at 128³ from 12 views with 20k faces: 0.65 s on one core for the astronaut (192³/24 views/30k
# faces took 3.4 s alone and ~21 s inside a request on the loaded machine; BENCHMARKS.md, "Demo").
CPU_MESH = {"resolution": 128, "faces": 20_000, "views": 12, "texture_size": 1024}  # the face lives in the texture
# The Animate tab: a preset's frames and size, and how many seconds of an uploaded clip drive the head (on 2 CPU
# cores a frame of deform + render at 192² takes ~0.1 s, and the rig a few seconds: BENCHMARKS.md, "Head animation").
ANIMATE_SETTINGS = {"cpu": {"frames": 36, "size": 192, "clip_s": 6.0},
                    "cuda": {"frames": 90, "size": 512, "clip_s": 20.0}}
ANIMATE_PRESETS = ("smile", "blink", "surprise", "talk")


def _device() -> torch.device:
    name = os.environ.get("A3D_DEMO_DEVICE")
    return torch.device(name if name else ("cuda" if torch.cuda.is_available() else "cpu"))


def _render_settings(device: torch.device, test_mode: bool) -> tuple[dict, dict, dict]:
    """(turntable, grid, mesh) settings: full quality on a GPU, lighter on a CPU (a free Space has 2
    cores), lightest in test mode (random weights: the pictures are noise, only the pipeline matters)."""
    if test_mode:
        return {"frames": 12, "fps": 12, "size": 128}, {"views": 4, "size": 128}, {"resolution": 48, "faces": 3000,
                                                                                    "texture_size": 256}
    if device.type == "cuda":
        return ({"frames": 120, "fps": 30, "size": 512}, {"views": 8, "size": 256},
                {"resolution": 256, "faces": 100_000, "texture_size": 2048})
    return CPU_VIDEO, CPU_GRID, CPU_MESH


def renderer(device: torch.device) -> str:
    """Which rasterizer renders on ``device``, for the page: the compiled kernels and where they came from
    (prebuilt a3d._C, or compiled on first use into a3d's cache), or the pure-PyTorch reference."""
    backend = ops.backend(device, "rasterize_fwd")
    if backend == "torch":
        return "the pure-PyTorch reference rasterizer"
    build = ops.info()["extension_build"].split()[0]
    origin = "built on first use" if build == "jit" else "prebuilt"
    return f"the compiled {'CUDA' if backend == 'cuda' else 'C++'} kernels ({origin})"


# ---- the model ------------------------------------------------------------------------------------------

class ModelSlot:
    """The model the demo runs, loaded once when the app is built.

    ``status`` is 'trained' (the bundled weights), 'random' (no weights and A3D_DEMO_RANDOM_INIT=1:
    tests only) or 'missing' (no weights: the page says why and requests are refused with :attr:`error`).
    """

    def __init__(self, device: torch.device, random_init: bool):
        self.device = device
        self.model: A3DModel | None = None
        self.error: str | None = None
        try:
            self.model = load_model(device=device)
            self.status = "trained"
        except NoWeightsError as e:
            self.error = str(e)
            self.status = "random" if random_init else "missing"
        if self.status == "random":
            with torch.random.fork_rng(devices=[]):  # the same random weights every run, global RNG untouched
                torch.manual_seed(0)
                self.model = A3DModel(get_config("tiny")).to(device).eval().requires_grad_(False)

    def get(self) -> A3DModel:
        if self.model is None:
            raise gr.Error(f"This demo cannot reconstruct yet: {self.error}", title="No trained weights")
        return self.model


def _banner(slot: ModelSlot) -> str:
    """Markdown shown above the inputs when the demo does not run trained weights ('' when it does)."""
    if slot.status == "trained":
        return ""
    if slot.status == "random":
        return ("> **Test mode** (`A3D_DEMO_RANDOM_INIT=1`): no trained weights are installed, so a "
                "*randomly initialised* tiny model runs. The pipeline is real; the heads it makes are noise.")
    return ("> **No trained weights are installed**, so this demo cannot reconstruct yet. "
            "The library says:\n>\n> " + html.escape(slot.error or "", quote=False))


# ---- per-request folders ----------------------------------------------------------------------------------

def sweep_results(root: Path, ttl_s: float, now: float | None = None) -> int:
    """Remove request folders in ``root`` last modified more than ``ttl_s`` seconds ago; returns how many."""
    now = time.time() if now is None else now
    removed = 0
    if not root.is_dir():
        return 0
    for d in root.iterdir():
        try:
            if d.is_dir() and not d.is_symlink() and now - d.stat().st_mtime > ttl_s:
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        except FileNotFoundError:  # another request swept it first
            pass
    return removed


def new_request_folder(root: Path | None = None, ttl_s: float = RESULTS_TTL_S) -> Path:
    """Sweep old results, then make this request's own folder (no two requests share a name).
    ``root``: default :data:`RESULTS_ROOT`."""
    root = RESULTS_ROOT if root is None else root
    root.mkdir(parents=True, exist_ok=True)
    sweep_results(root, ttl_s)
    return Path(tempfile.mkdtemp(prefix="req-", dir=root))


@contextlib.contextmanager
def request_errors(folder: Path, what: str, image_path: str | None, name: str):
    """One request's work in ``folder``: any failure removes the folder, a gr.Error passes as it is, and any
    other exception is logged and shown as "``what`` failed (...)" -- it must not reach the server loop."""
    try:
        yield
    except gr.Error:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    except Exception as e:  # noqa: BLE001 - one request's failure must not reach the server loop
        shutil.rmtree(folder, ignore_errors=True)
        traceback.print_exc()
        raise gr.Error(f"{what} failed ({type(e).__name__}: {_readable(e, image_path, name)}).",
                       title="Error") from None


# ---- the request ------------------------------------------------------------------------------------------

def _upload_path(payload) -> tuple[str | None, str]:
    """(server path, name the user knows) of the image input's raw value.

    The button runs with ``preprocess=False`` so that a file the browser let through but PIL cannot
    read reaches :func:`a3d.reconstruct`, whose loader says what is wrong (gr.Image's own
    preprocessing would show a bare "Error"). Gradio has already checked that the path is an upload
    in its cache, so no request can point the app at other files of the server.
    """
    if not isinstance(payload, dict) or not payload.get("path"):
        return None, ""
    path = str(payload["path"])
    return path, str(payload.get("orig_name") or Path(path).name)


def _readable(e: Exception, path: str, name: str) -> str:
    """The library's message with the server's temporary path replaced by the file's name."""
    return str(e).replace(path, name)


def photo_notes(metadata: dict) -> str:
    """What the page says about the front photo itself, from ``reconstruct()``'s metadata: a face turned past
    TURNED_FACE_DEG (the model's training range, and the library's warning) and a photo of several faces.
    Read from the metadata, not caught as warnings: the warning filters are process-wide and requests run in
    threads, so one request could show another's. Markdown, empty when there is nothing to say."""
    pre = metadata.get("preprocess") or {}
    notes = []
    yaw = (pre.get("face") or {}).get("yaw_deg")
    if yaw is not None and abs(yaw) > TURNED_FACE_DEG:
        notes.append(f"The face is turned about {abs(yaw):.0f}° from the camera; the model was trained on faces "
                     f"turned up to {TRAINED_TURN_DEG:.0f}°, so expect a rougher head. A photo that looks into the "
                     f"camera works best.")
    if (pre.get("faces_found") or 0) > 1:
        index = pre.get("face_index") or 0
        which = "the largest" if index == 0 else f"face {index + 1}"
        notes.append(f"The photo holds {pre['faces_found']} faces; this is {which} (pick another under the photo).")
    return "".join(f"\n\n⚠ {n}" for n in notes)


MAX_PICKER_SIDE = 480  # the numbered preview of a photo of several faces, pixels (its longer side)


def numbered_faces(payload) -> tuple[dict, dict]:
    """When the uploaded photo holds several plausible faces: the photo with each face's box and number drawn on
    it, and the choice of which to reconstruct (number i is ``face=i - 1``, largest first, as the library
    numbers them); otherwise both hidden. Gradio updates for the preview image and the radio buttons."""
    from PIL import Image, ImageDraw

    from a3d.inference.faces import find_faces

    hidden = gr.update(value=None, visible=False), gr.update(choices=[], value=None, visible=False)
    path, _ = _upload_path(payload)
    if not path:
        return hidden
    try:
        rgb, alpha = load_image(path)
        faces = [f for f in find_faces(rgb, alpha) if f.plausible]
    except (ValueError, OSError):  # not an image, or no face models: the Reconstruct button says why
        return hidden
    if len(faces) < 2:
        return hidden
    scale = min(1.0, MAX_PICKER_SIDE / max(rgb.shape[:2]))
    img = Image.fromarray((rgb * 255).round().astype("uint8"))
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    draw = ImageDraw.Draw(img)
    for i, f in enumerate(faces):
        box = [v * scale for v in f.box]
        draw.rectangle(box, outline=(255, 200, 0), width=3)
        draw.text((box[0] + 4, box[1] + 2), str(i + 1), fill=(255, 200, 0), font_size=max(14, (box[3] - box[1]) / 4))
    choices = [(f"{i + 1}" + (" (largest)" if i == 0 else ""), i) for i in range(len(faces))]
    return gr.update(value=img, visible=True), gr.update(choices=choices, value=0, visible=True)


# The refine switch: on by default where a GPU runs it (about a second); on a CPU it costs seconds, so
# it starts off and says so (figure: BENCHMARKS.md, "Refinement").
REFINE_LABEL = {True: "Refine on the photo(s) (about a second on the GPU)",
                False: "Refine on the photo(s) (slower on a CPU: about 6–10 s on 2 cores)"}


def make_handler(slot: ModelSlot):
    """The Reconstruct button's function: (image upload, steps, elevation) → the page's outputs."""
    video_settings, grid_settings, mesh_settings = _render_settings(slot.device, slot.status == "random")

    def run(image: dict | None, steps: float, elevation: float, refine: bool = False, left: dict | None = None,
            right: dict | None = None, back: dict | None = None, face: int | str | None = None,
            tint: bool = False, progress=gr.Progress()):
        image_path, name = _upload_path(image)
        if not image_path:
            raise gr.Error("Upload a portrait or click the example first.", title="No image")
        extra = {view: _upload_path(up)[0] for view, up in (("left", left), ("right", right), ("back", back))}
        extra = {view: path for view, path in extra.items() if path}
        source = {"front": image_path, **extra} if extra else image_path
        model = slot.get()
        try:  # raw values (preprocess=False): an API client may send anything
            steps, elevation = int(steps), float(elevation)
        except (TypeError, ValueError, OverflowError):
            raise gr.Error("Steps and elevation must be numbers.") from None
        if not 1 <= steps <= MAX_STEPS:
            raise gr.Error(f"Steps must be between 1 and {MAX_STEPS}.")
        if not -60.0 <= elevation <= 60.0:
            raise gr.Error("Elevation must be between -60 and 60 degrees.")
        try:  # the face picker's value (None: the photo holds one face)
            face = None if face in (None, "") else int(face)
        except (TypeError, ValueError):
            raise gr.Error("The face to reconstruct must be a number.") from None
        folder = new_request_folder()
        with request_errors(folder, "Reconstruction", image_path, name):
            progress(0.05, desc="preprocessing and reconstruction")
            try:
                avatar = reconstruct(source, model, steps=steps, seed=0, device=slot.device, refine=bool(refine),
                                     face=face)
            except ImageError as e:
                raise gr.Error(f"{NOT_AN_IMAGE} ({_readable(e, image_path, name)})", title="Not an image") from None
            except NoFaceError as e:
                raise gr.Error(_readable(e, image_path, name), title="No face found") from None
            except ValueError as e:  # e.g. side/back photos for a model that takes the front one only
                raise gr.Error(_readable(e, image_path, name), title="Cannot use these photos") from None
            timings = dict(avatar.metadata.get("timings_s", {}))
            timings.pop("inference_batch_size", None)
            stages = [[k, float(v)] for k, v in timings.items()]

            def timed(stage, fn):
                t0 = time.perf_counter()
                out = fn()
                stages.append([stage, round(time.perf_counter() - t0, 4)])
                return out

            progress(0.4, desc="writing PLY and .splat")
            ply, splat = folder / "head.ply", folder / "head.splat"
            timed("save PLY", lambda: avatar.save_ply(ply))
            timed("save .splat", lambda: avatar.save_splat(splat))
            # Model3D draws splats with gsplat.js and ignores camera_position: its default camera looks from
            # above and aside, so the view gets the head turned to face that camera (the downloads do not).
            view = folder / "view_facing.splat"
            shown = avatar.gaussians.detach().to("cpu")
            if tint:  # what the photos did not show turns magenta (a3d.inference.confidence)
                shown = tint_guessed(shown, avatar.confidence.to("cpu"))
            facing = turned_to_face(shown, GSPLAT_CAMERA, (0.0, -1.0, 0.0))
            save_splat(facing, view, up="+y")
            cams = folder / "a3d_cameras.json"
            save_cameras_json(cams, avatar.cameras.to("cpu"), names=list(framing.CANONICAL_VIEWS))
            progress(0.45, desc="extracting the mesh")
            glb = folder / "head.glb"
            try:
                mesh = timed("extract mesh", lambda: avatar.save_mesh(glb, **mesh_settings))
                mesh_note = f" Mesh: {mesh.num_faces:,} faces{', watertight' if mesh.is_watertight() else ''}."
            except ValueError as e:  # no surface to extract (e.g. an almost transparent head): the rest still shows
                glb, mesh_note = None, f" No mesh: {e}"
            progress(0.5, desc="rendering the multi-view grid")
            grid = timed("render grid", lambda: avatar.grid(elevation=elevation, **grid_settings))
            progress(0.6, desc="rendering the turntable")
            video = timed("render turntable", lambda: avatar.orbit_video(
                folder / "orbit.mp4", elevation=elevation, progress=False, **video_settings))
            stages.append(["total", round(sum(s for _, s in stages), 4)])
            inp = to_uint8(avatar.input_image.permute(1, 2, 0))
            meta = avatar.metadata
            summary = (f"**{meta['num_gaussians']:,} Gaussians** on `{meta['device']}`, {steps} step(s), "
                       f"preprocessing: {meta['preprocess']['mode']}, photos: {', '.join(meta['views'])}"
                       + (f", refined in {meta['refine']['seconds']:.1f} s" if "refine" in meta else "")
                       + f"; rendered by {renderer(slot.device)}." + mesh_note + photo_notes(meta))
            downloads = [str(ply), str(splat)] + ([str(glb)] if glb else []) + [str(cams)]
            return inp, video, str(view), str(glb) if glb else None, grid, downloads, stages, summary

    return run


def make_animate_handler(slot: ModelSlot):
    """The Animate button's function: (portrait, preset, optional clip) → (video, weight files, summary)."""
    from a3d.animation.clips import preset_frames
    from a3d.animation.driver import drive_from_video
    from a3d.io.video import encode_frames

    settings = ANIMATE_SETTINGS["cuda" if slot.device.type == "cuda" else "cpu"]

    def animate(image: dict | None, preset: str, clip: dict | None = None, progress=gr.Progress()):
        image_path, name = _upload_path(image)
        if not image_path:
            raise gr.Error("Upload a portrait (above) or click the example first.", title="No image")
        clip_path = _upload_path(clip.get("video") if isinstance(clip, dict) and "video" in clip else clip)[0]
        if clip_path is None and preset not in ANIMATE_PRESETS:
            raise gr.Error(f"Pick an expression ({', '.join(ANIMATE_PRESETS)}) or upload a clip.")
        folder = new_request_folder()
        with request_errors(folder, "Animation", image_path, name):
            progress(0.05, desc="reconstruction")
            t0 = time.perf_counter()
            try:
                avatar = reconstruct(image_path, slot.get(), seed=0, device=slot.device)
            except (ImageError, NoFaceError, ValueError) as e:
                raise gr.Error(_readable(e, image_path, name), title="Cannot use this photo") from None
            progress(0.2, desc="fitting the face rig")
            rig = avatar.rig()
            progress(0.35, desc="animating")
            if clip_path is None:
                video = encode_frames(preset_frames(rig, preset, settings["frames"], settings["size"]),
                                      folder / f"{preset}.mp4", fps=24)
                files, what = [], f"the {preset} preset"
            else:
                from a3d.animation.driver import read_video

                fps = read_video(clip_path, max_frames=1)[1]
                try:
                    video, js, cs = drive_from_video(rig, clip_path, folder, size=settings["size"], progress=False,
                                                     max_frames=max(1, int(settings["clip_s"] * fps)))
                except ValueError as e:  # not a video, no face in it
                    raise gr.Error(_readable(e, clip_path, "the clip"), title="Cannot use this clip") from None
                files, what = [cs, js], f"the clip's face (first {settings['clip_s']:.0f} s at most)"
            summary = (f"Animated with {what} in {time.perf_counter() - t0:.1f} s (rig {rig.seconds:.1f} s) on "
                       f"`{slot.device}`.")
            return str(video), files, summary

    return animate


# ---- the page ---------------------------------------------------------------------------------------------

def build_demo(device: torch.device | str | None = None) -> gr.Blocks:
    """The Gradio app (not launched). ``device``: default A3D_DEMO_DEVICE, else cuda if available, else cpu."""
    device = torch.device(device) if device is not None else _device()
    slot = ModelSlot(device, random_init=os.environ.get(RANDOM_INIT_ENV) == "1")
    with gr.Blocks(title="a3d: one portrait to a 3D head", delete_cache=(1800, RESULTS_TTL_S)) as demo:
        gr.Markdown("# a3d: one portrait → a 360° 3D Gaussian head\n"
                    "Upload a portrait (or click the example), then **Reconstruct**. You get the model's "
                    "input after face framing and background removal, a turntable, an interactive splat "
                    "(drag to orbit), the head as a watertight triangle mesh (GLB, for game engines, Blender "
                    "and 3D printing), a multi-view grid and the files.")
        banner = _banner(slot)
        gr.Markdown(banner, visible=bool(banner), elem_id="model-banner")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                image = gr.Image(type="filepath", sources=["upload", "clipboard"], elem_id="portrait",
                                      label="Portrait (JPEG, PNG or WebP, ≤ 10 MB)", height=320)
                gr.Examples([[str(p)] for p in EXAMPLES], inputs=[image], label="Example (public domain)")
                faces_view = gr.Image(label="Faces found: which one to reconstruct?", interactive=False, visible=False,
                                      height=240, elem_id="faces-found")
                face_pick = gr.Radio(label="Face", visible=False, elem_id="face-pick")
                image.change(numbered_faces, inputs=[image], outputs=[faces_view, face_pick], preprocess=False)
                steps = gr.Slider(1, MAX_STEPS, value=1, step=1, label="Denoising steps (1 = the paper's one-step)")
                elevation = gr.Slider(-30, 45, value=10, step=1, label="Orbit elevation (degrees)")
                on_gpu = device.type == "cuda"
                refine = gr.Checkbox(value=on_gpu, elem_id="refine", label=REFINE_LABEL[on_gpu])
                tint = gr.Checkbox(value=False, elem_id="tint",
                                   label="Tint in the 3D view what the photos did not show (guessed: magenta)")
                with gr.Accordion("More photos of the same head (optional)", open=False):
                    gr.Markdown("Side and back photos taken from the same distance help the model and refinement. "
                                "*Left* is the subject's left side.")
                    with gr.Row():
                        left = gr.Image(type="filepath", sources=["upload"], label="Left side", height=140,
                                        elem_id="view-left")
                        right = gr.Image(type="filepath", sources=["upload"], label="Right side", height=140,
                                         elem_id="view-right")
                        back = gr.Image(type="filepath", sources=["upload"], label="Back", height=140,
                                        elem_id="view-back")
                go = gr.Button("Reconstruct", variant="primary", interactive=slot.status != "missing")
                summary = gr.Markdown(elem_id="summary")
            with gr.Column(scale=2):
                with gr.Row():
                    prepared = gr.Image(label="Model input (framed, background removed)", interactive=False,
                                        height=256)
                    video = gr.Video(label="Turntable", interactive=False, autoplay=True, loop=True, height=256,
                                     elem_id="turntable")
                splat = gr.Model3D(label="3D Gaussian splat (drag to orbit)", clear_color=(1.0, 1.0, 1.0, 1.0),
                                   height=360, elem_id="splat-view")
                mesh_view = gr.Model3D(label="Triangle mesh, GLB: game engines, Blender, 3D printing (drag to orbit)",
                                       clear_color=(1.0, 1.0, 1.0, 1.0), height=360, elem_id="mesh-view")
                grid = gr.Image(label="Views around the head", interactive=False, elem_id="grid")
                with gr.Row():
                    files = gr.File(label="Downloads (PLY, .splat, GLB mesh, cameras JSON)", file_count="multiple",
                                    interactive=False, elem_id="downloads")
                    timings = gr.Dataframe(headers=["stage", "seconds"], datatype=["str", "number"],
                                           label="Time per stage", interactive=False, elem_id="timings")
        go.click(make_handler(slot), inputs=[image, steps, elevation, refine, left, right, back, face_pick, tint],
                 outputs=[prepared, video, splat, mesh_view, grid, files, timings, summary], preprocess=False)
        with gr.Tab("Animate", elem_id="animate-tab"):
            gr.Markdown("Animate the portrait above: an expression, or the face of a short talking clip (its "
                        "expressions and head turns, side by side with it, with its sound; the ARKit weights as CSV).")
            with gr.Row():
                with gr.Column(scale=1, min_width=300):
                    preset = gr.Radio(list(ANIMATE_PRESETS), value="smile", label="Expression",
                                      elem_id="animate-preset")
                    clip = gr.Video(label="…or a talking clip (replaces the expression)", sources=["upload"],
                                    height=200, elem_id="animate-clip")
                    animate = gr.Button("Animate", variant="primary", interactive=slot.status != "missing")
                    animate_note = gr.Markdown(elem_id="animate-summary")
                with gr.Column(scale=2):
                    animated = gr.Video(label="Animated head", interactive=False, autoplay=True, loop=True,
                                        height=320, elem_id="animated")
                    weights = gr.File(label="ARKit weights (CSV, JSON)", file_count="multiple", interactive=False,
                                      elem_id="animate-weights")
        animate.click(make_animate_handler(slot), inputs=[image, preset, clip],
                      outputs=[animated, weights, animate_note], preprocess=False)
    default = 2 if device.type == "cuda" else 1
    demo.queue(default_concurrency_limit=int(os.environ.get("A3D_DEMO_CONCURRENCY", default)), max_size=QUEUE_SIZE)
    return demo


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="a3d's Gradio demo")
    p.add_argument("--host", default=None, help="address to listen on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or 7860)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    args = p.parse_args(argv)
    RESULTS_ROOT.mkdir(parents=True, exist_ok=True)
    # Load (on a Space: compile, once per start) the kernels before serving, so no request waits for the build.
    device = torch.device(args.device) if args.device else _device()
    print(f"a3d renders with {renderer(device)}: {ops.info()['extension_path']}", flush=True)
    build_demo(device).launch(server_name=args.host, server_port=args.port, max_file_size=MAX_UPLOAD, css=CSS,
                                   allowed_paths=[str(HERE / "examples"), str(RESULTS_ROOT)])


if __name__ == "__main__":
    main()
