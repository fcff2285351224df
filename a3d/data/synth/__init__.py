"""AnyHead-style synthetic heads (paper §3.2, App. C): random 3D Gaussian heads and their cameras,
built a whole batch at a time on the training device.

A head is built on the morphable head basis (:mod:`a3d.data.head_basis`: mean mesh + 32 identity
components + 52 ARKit-style facial actions). Everything else is procedural and torch-native:

* skin: albedo over a range of skin tones with low- and high-frequency variation, redness on
  cheeks, nose and ears, lips (sometimes lipstick), brows, eyelids, sclera / iris / pupil, eye
  sockets, mouth, tongue and teeth, stubble, a shirt collar at the bottom of the neck;
* hair: bald, buzz, short, bob, long, bun and ponytail styles as volumes of anisotropic
  Gaussians offset from the scalp along its normals, elongated along a flow field; many colours;
* accessories: glasses (frame tubes and tinted lenses), hats (beanie, cap with visor, brimmed hat),
  earrings (studs, hoops);
* lighting: a random key light (wrapped Lambert, warmer shadows on skin) plus ambient, baked into
  the colours.

Every head is placed by the similarity transform that maps its pupils and mouth centre onto
:data:`a3d.core.framing.FACE_ANCHORS_3D`, so the front canonical camera frames every face the way
preprocessing frames a photo. Cameras follow the paper: 40 fixed circular views (8 azimuths at
each of the elevations -20°, -10°, 0°, 10°, 20°, at the canonical radius and field of view; the
0° ring contains the four canonical views, and its front view is the input view) and 40 random
views (positions on a spherical shell, jittered look-at, field of view and roll).

Batching: a batch is built with a fixed number of kernel launches whatever its size. Every head's
N Gaussians are split into parts (face, hair shell, curtain, bun, ponytail, hat pieces, glasses,
earrings) with counts that depend on its attributes; each part is built for the whole batch at the
largest count any head needs, and one gather keeps each head's own counts. The host waits for the
device once a batch (to learn those largest counts).

Determinism: random numbers are counter-based (a hash of the head's key, a named stream and the
element's index), so head ``i`` of generator seed ``s`` is a function of ``(s, i)`` alone, whatever
the batch it comes in; its attributes and cameras do not depend on ``num_gaussians``; CPU and CUDA
agree up to float rounding.

Usage::

    gen = SyntheticHeads("cuda", seed=0)
    sample = gen.sample(8)                          # HeadSample: Gaussians [8, N, ...], Cameras [8, 80]
    out = render_views(sample, views=[sample.input_view, 3, 50])   # RenderOutput [8, 3, H, W, ·]

Modules: :mod:`.attributes` (the knobs, :class:`SynthConfig`, and what is drawn per head), :mod:`.draws`
(counter-based random numbers), :mod:`.geometry` (small geometric helpers, splats), :mod:`.cameras`,
:mod:`.heads` (:class:`SyntheticHeads`: the head, its skin and lighting; :func:`render_views`), :mod:`.hair`,
:mod:`.accessories`. The names below are the public API; import them from ``a3d.data.synth``.
"""
from .attributes import ACCESSORIES, EARRINGS, EXPRESSIONS, HAIR_STYLES, HATS, HeadAttributes, SynthConfig
from .cameras import CIRCLE_ELEVATIONS, INPUT_VIEW, NUM_FIXED_VIEWS, fixed_cameras, random_cameras
from .heads import HeadSample, SyntheticHeads, render_views
from ..head_basis import HeadBasis, load_head_basis

__all__ = [
    "HeadBasis", "load_head_basis", "SynthConfig", "HeadAttributes", "HeadSample", "SyntheticHeads",
    "render_views", "fixed_cameras", "random_cameras",
    "HAIR_STYLES", "HATS", "EARRINGS", "EXPRESSIONS", "ACCESSORIES", "CIRCLE_ELEVATIONS", "NUM_FIXED_VIEWS",
    "INPUT_VIEW",
]
