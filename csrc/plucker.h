#pragma once
// Shared per-pixel Plücker computation for the CPU and CUDA kernels.
#ifdef __CUDACC__
#define A3D_HD __host__ __device__ __forceinline__
#else
#define A3D_HD inline
#endif

namespace a3d {

// R: row-major 3x3 world->camera rotation, o: camera centre in world, K: fx fy cx cy.
template <typename T>
A3D_HD void plucker_pixel(const T* R, const T* o, T fx, T fy, T cx, T cy, int u, int v, T* out) {
  const T x = (T(u) + T(0.5) - cx) / fx;
  const T y = (T(v) + T(0.5) - cy) / fy;
  // d = R^T [x, y, 1]
  T d0 = R[0] * x + R[3] * y + R[6];
  T d1 = R[1] * x + R[4] * y + R[7];
  T d2 = R[2] * x + R[5] * y + R[8];
  const T inv = T(1) / sqrt(d0 * d0 + d1 * d1 + d2 * d2);
  d0 *= inv; d1 *= inv; d2 *= inv;
  out[0] = o[1] * d2 - o[2] * d1;
  out[1] = o[2] * d0 - o[0] * d2;
  out[2] = o[0] * d1 - o[1] * d0;
  out[3] = d0; out[4] = d1; out[5] = d2;
}

// Camera centre o = -R^T t from a row-major 4x4 world->camera matrix.
template <typename T>
A3D_HD void camera_frame(const T* vm, T* R, T* o) {
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) R[3 * i + j] = vm[4 * i + j];
  for (int j = 0; j < 3; ++j) o[j] = -(R[j] * vm[3] + R[3 + j] * vm[7] + R[6 + j] * vm[11]);
}

}  // namespace a3d
