"""The building blocks every other layer stands on: conventions (framing, the rasterizer's contract),
cameras, rotations, Gaussians, rays, the compiled operators and the rasterizer, rendering, bounded file reading,
the bundled asset folder."""
