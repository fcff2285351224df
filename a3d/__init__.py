"""a3d: one portrait in, a full 360° 3D Gaussian-splat head out.

    import a3d
    avatar = a3d.reconstruct("portrait.jpg")
    avatar.save_ply("head.ply")
    avatar.orbit_video("orbit.mp4")
"""
__version__ = "0.1.0"

from .cameras import Cameras, canonical_cameras, orbit_cameras
from .gaussians import Gaussians
from .io_ply import load_ply, save_ply, save_splat
from .ops import backend
from .render import orbit_video, render
from .api import Avatar, load_model, reconstruct, reconstruct_many, refine

__all__ = [
    "Avatar", "Cameras", "Gaussians", "backend", "canonical_cameras", "load_model", "load_ply", "orbit_cameras",
    "orbit_video", "reconstruct", "reconstruct_many", "refine", "render", "save_ply", "save_splat",
]
