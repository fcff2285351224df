// Schemas of every a3d operator, in one place. Per-device kernels register with
// TORCH_LIBRARY_IMPL in their own files; autograd and fake (meta) kernels live in a3d/ops.py.
#include <Python.h>
#include <torch/library.h>

// An importable module, so `import a3d._C` loads this library and runs the registrations below.
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}

TORCH_LIBRARY(a3d, m) {
  // Plücker rays [C,H,W,6] = [o x d, d], unit d, pixel centres at +0.5 (a3d/rays.py is the reference).
  m.def("plucker_rays(Tensor viewmats, Tensor Ks, int width, int height) -> Tensor");
  // Rasterizer (a3d/rasterize.py is the contract; a3d/ops.py registers autograd and fake kernels).
  // Forward: rgb [B,C,H,W,3], alpha [B,C,H,W,1], depth [B,C,H,W,1], then what the backward needs:
  // proj [B,C,N,8] (x, y, conic a b c, z, extent x y), tile_ranges [B*C*tiles,2] int32, isect_gids [P] int32
  // (flat B*C*N ids, per tile in depth order), last [B,C,H,W] int32, T_final [B,C,H,W].
  m.def("rasterize_fwd(Tensor means, Tensor quats, Tensor scales, Tensor opacities, Tensor colors, "
        "Tensor viewmats, Tensor Ks, Tensor? backgrounds, int width, int height) -> "
        "(Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  // Backward: v_rgb [B,C,H,W,3], v_alpha [B,C,H,W], v_dsum [B,C,H,W] (gradient of the un-normalised depth
  // sum) -> v_means, v_quats, v_scales, v_opacities, v_colors.
  m.def("rasterize_bwd(Tensor means, Tensor quats, Tensor scales, Tensor opacities, Tensor colors, "
        "Tensor viewmats, Tensor Ks, Tensor? backgrounds, int width, int height, Tensor proj, Tensor tile_ranges, "
        "Tensor isect_gids, Tensor last, Tensor T_final, Tensor v_rgb, Tensor v_alpha, Tensor v_dsum) -> "
        "(Tensor, Tensor, Tensor, Tensor, Tensor)");
}
