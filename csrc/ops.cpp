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
}
