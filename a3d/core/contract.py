"""The rasterizer's numeric contract: the constants every backend shares.

The pure-PyTorch reference (a3d/core/rasterize.py), the autograd and fake kernels (a3d/core/ops.py) and the
C++/CUDA kernels (csrc/rasterize.h, ``a3d::rast``) must agree on these numbers bit for bit, so they
are written once here and once in C++; tests/test_contract.py parses the header and fails when the two
drift apart. What each number means is in docs/design.md, "Rasterizer contract". This module imports
nothing, so anything may read it.
"""

NEAR_PLANE = 0.01  # Gaussians with camera z below this are culled (kNear)
EPS2D = 0.3  # screen-space blur added to the 2D covariance's diagonal, px² (kEps2d)
ALPHA_MIN = 1.0 / 255.0  # a Gaussian or a pixel contribution below this opacity is skipped (kAlphaMin)
ALPHA_MAX = 0.99  # per-Gaussian alpha is clamped to this, so T never reaches 0 in one step (kAlphaMax)
T_MIN = 1e-4  # compositing stops before the Gaussian that would take T to <= this (kTMin)
EXTENT_SIGMA_MAX = 3.33  # the opacity-aware extent never exceeds this many sigmas (kExtentMax)
FOV_CLAMP_MARGIN = 0.3  # x/z and y/z are clamped to the image's tan(half fov) * (1 + 0.3) (kFovMargin)
DEPTH_ALPHA_EPS = 1e-10  # expected depth = Σ α T z / max(alpha, this) (kDepthEps)

TILE_SIZE = 16  # tile side of the compiled kernels, px (kTile; a CUDA block of 16x16 threads)
PROJ_FIELDS = 8  # per (view, Gaussian) record the forward op returns: x, y, conic a b c, z, extent x y (kProj)
MAX_IMAGE_SIDE = 16384  # largest width or height the rasterizer accepts, px (kMaxSide)
