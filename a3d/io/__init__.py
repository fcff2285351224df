"""What leaves a3d as a file or a picture: PLY/.splat, meshes, videos, notebook display."""
