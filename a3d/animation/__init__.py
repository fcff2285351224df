"""Head animation: fit the morphable head to a reconstruction, bind the Gaussians to it, and drive them
with ARKit expression weights, presets or a talking video (docs/animation.md)."""
