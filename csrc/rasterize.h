#pragma once
// Per-Gaussian and per-pixel arithmetic of the rasterizer, shared by the CPU (rasterize_cpu.cpp) and CUDA
// (rasterize_cuda.cu) kernels so both compute the contract of a3d/rasterize.py the same way:
// projection (fwd and its vector-Jacobian product), the opacity-aware box and ellipse-vs-rectangle tile
// test, and the per-pixel alpha. Everything is templated on the scalar type (float or double).
// The constants below are the contract's numbers; a3d/contract.py holds the same values (tests/test_contract.py
// parses this file and compares them), and docs/design.md, "Rasterizer contract", says what each means.
#include <cmath>
#include <cstdint>

#include "plucker.h"  // A3D_HD

namespace a3d {
namespace rast {

constexpr int kTile = 16;        // tile side in pixels (a CUDA block of 16x16 threads)
constexpr int kProj = 8;         // per (view, Gaussian): x, y, conic a, b, c, depth z, extent x, extent y
constexpr int kVProj = 6;        // gradient of the first six of those
constexpr double kNear = 0.01;
constexpr double kEps2d = 0.3;
constexpr double kAlphaMin = 1.0 / 255.0;
constexpr double kAlphaMax = 0.99;
constexpr double kTMin = 1e-4;
constexpr double kExtentMax = 3.33;
constexpr double kFovMargin = 0.3;
constexpr double kDepthEps = 1e-10;
constexpr int kMaxSide = 16384;  // largest width or height accepted, in pixels

template <typename T>
A3D_HD bool finite(T v) {
#ifdef __CUDA_ARCH__
  return isfinite(v);
#else
  return std::isfinite(v);
#endif
}

// One Gaussian in world space: the sanitised inputs and R(q) S. `ok` is False for NaN/inf inputs, zero or
// negative scales, a zero quaternion or opacity below 1/255 (culled in every view).
template <typename T>
struct Gaussian {
  T m[3], q[4], qn, R[9], s[3], M[9], o;
  bool ok;
};

template <typename T>
A3D_HD Gaussian<T> load_gaussian(const T* means, const T* quats, const T* scales, const T* opacities, int64_t i) {
  Gaussian<T> g;
  const T* m = means + 3 * i;
  const T* q = quats + 4 * i;
  const T* s = scales + 3 * i;
  g.o = opacities[i];
  bool ok = finite(g.o) && g.o >= T(kAlphaMin);
  for (int k = 0; k < 3; ++k) ok = ok && finite(m[k]) && finite(s[k]) && s[k] > T(0);
  T qsum = 0;
  for (int k = 0; k < 4; ++k) {
    ok = ok && finite(q[k]);
    qsum += q[k] < T(0) ? -q[k] : q[k];
  }
  ok = ok && qsum > T(0);
  g.ok = ok;
  for (int k = 0; k < 3; ++k) {
    g.m[k] = ok ? m[k] : T(0);
    g.s[k] = ok ? s[k] : T(1);
  }
  T qq[4] = {T(1), T(0), T(0), T(0)};
  if (ok)
    for (int k = 0; k < 4; ++k) qq[k] = q[k];
  T n = sqrt(qq[0] * qq[0] + qq[1] * qq[1] + qq[2] * qq[2] + qq[3] * qq[3]);
  n = n > T(1e-12) ? n : T(1e-12);  // torch.nn.functional.normalize's eps
  g.qn = n;
  for (int k = 0; k < 4; ++k) g.q[k] = qq[k] / n;
  const T w = g.q[0], x = g.q[1], y = g.q[2], z = g.q[3];
  T* R = g.R;
  R[0] = 1 - 2 * (y * y + z * z); R[1] = 2 * (x * y - w * z); R[2] = 2 * (x * z + w * y);
  R[3] = 2 * (x * y + w * z); R[4] = 1 - 2 * (x * x + z * z); R[5] = 2 * (y * z - w * x);
  R[6] = 2 * (x * z - w * y); R[7] = 2 * (y * z + w * x); R[8] = 1 - 2 * (x * x + y * y);
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) g.M[3 * r + c] = R[3 * r + c] * g.s[c];
  return g;
}

// 3D covariance M Mᵀ, full 3x3 row-major.
template <typename T>
A3D_HD void cov3d(const T* M, T* S) {
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) S[3 * r + c] = M[3 * r] * M[3 * c] + M[3 * r + 1] * M[3 * c + 1] + M[3 * r + 2] * M[3 * c + 2];
}

// One camera: world->camera rotation W (row-major) and translation t, intrinsics, and the clamp limits of
// x/z and y/z (1.3 x the field of view, as gsplat's persp_proj).
template <typename T>
struct Camera {
  T W[9], t[3], fx, fy, cx, cy, lxp, lxn, lyp, lyn;
  int width, height;
};

template <typename T>
A3D_HD Camera<T> load_camera(const T* vm, const T* K, int width, int height) {
  Camera<T> cam;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) cam.W[3 * r + c] = vm[4 * r + c];
    cam.t[r] = vm[4 * r + 3];
  }
  cam.fx = K[0]; cam.fy = K[4]; cam.cx = K[2]; cam.cy = K[5];
  const T tfx = T(0.5) * T(width) / cam.fx, tfy = T(0.5) * T(height) / cam.fy;
  cam.lxp = (T(width) - cam.cx) / cam.fx + T(kFovMargin) * tfx;
  cam.lxn = cam.cx / cam.fx + T(kFovMargin) * tfx;
  cam.lyp = (T(height) - cam.cy) / cam.fy + T(kFovMargin) * tfy;
  cam.lyn = cam.cy / cam.fy + T(kFovMargin) * tfy;
  cam.width = width;
  cam.height = height;
  return cam;
}

template <typename T> A3D_HD T clampv(T v, T lo, T hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Intermediate values of one (camera, Gaussian) projection, kept for the vector-Jacobian product.
template <typename T>
struct Projected {
  T p[3];      // camera-space centre
  T V[9];      // camera-space covariance W Σ Wᵀ
  T J[6];      // 2x3 Jacobian (row-major)
  T ux, uy;    // clamped x/z, y/z
  bool cx, cy; // whether the clamp was active
  T c00, c01, c11, det;
};

// Projects g into cam. Writes out[kProj] = (x, y, a, b, c, z, ex, ey) and returns validity (same culling as
// a3d.rasterize.project: Gaussian ok, z >= near, det > 0, box on screen, finite centre and box).
template <typename T>
A3D_HD bool project(const Gaussian<T>& g, const Camera<T>& cam, const T* S, T* out, Projected<T>* keep) {
  Projected<T> pr;
  const T* W = cam.W;
  for (int r = 0; r < 3; ++r) pr.p[r] = W[3 * r] * g.m[0] + W[3 * r + 1] * g.m[1] + W[3 * r + 2] * g.m[2] + cam.t[r];
  const bool in_front = pr.p[2] >= T(kNear);
  const T z = in_front ? pr.p[2] : T(1);
  // V = W S Wᵀ
  T WS[9];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) WS[3 * r + c] = W[3 * r] * S[c] + W[3 * r + 1] * S[3 + c] + W[3 * r + 2] * S[6 + c];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) pr.V[3 * r + c] = WS[3 * r] * W[3 * c] + WS[3 * r + 1] * W[3 * c + 1] + WS[3 * r + 2] * W[3 * c + 2];
  const T rz = T(1) / z;
  const T xr = pr.p[0] * rz, yr = pr.p[1] * rz;
  pr.ux = clampv(xr, -cam.lxn, cam.lxp);
  pr.uy = clampv(yr, -cam.lyn, cam.lyp);
  pr.cx = !(xr >= -cam.lxn && xr <= cam.lxp);
  pr.cy = !(yr >= -cam.lyn && yr <= cam.lyp);
  T* J = pr.J;
  J[0] = cam.fx * rz; J[1] = T(0); J[2] = -cam.fx * pr.ux * rz;
  J[3] = T(0); J[4] = cam.fy * rz; J[5] = -cam.fy * pr.uy * rz;
  // cov2d = J V Jᵀ (J has zeros at [0][1] and [1][0])
  T JV0[3], JV1[3];
  for (int c = 0; c < 3; ++c) {
    JV0[c] = J[0] * pr.V[c] + J[2] * pr.V[6 + c];
    JV1[c] = J[4] * pr.V[3 + c] + J[5] * pr.V[6 + c];
  }
  pr.c00 = JV0[0] * J[0] + JV0[2] * J[2] + T(kEps2d);
  pr.c01 = JV0[1] * J[4] + JV0[2] * J[5];
  pr.c11 = JV1[1] * J[4] + JV1[2] * J[5] + T(kEps2d);
  pr.det = pr.c00 * pr.c11 - pr.c01 * pr.c01;
  const bool det_ok = pr.det > T(0);
  const T det = det_ok ? pr.det : T(1);
  out[0] = cam.fx * pr.p[0] * rz + cam.cx;
  out[1] = cam.fy * pr.p[1] * rz + cam.cy;
  out[2] = pr.c11 / det;
  out[3] = -pr.c01 / det;
  out[4] = pr.c00 / det;
  out[5] = z;
  T lg = log(g.o / T(kAlphaMin));
  lg = lg > T(0) ? lg : T(0);
  T ext = sqrt(T(2) * lg);
  ext = ext < T(kExtentMax) ? ext : T(kExtentMax);
  out[6] = ext * sqrt(pr.c00 > T(0) ? pr.c00 : T(0));
  out[7] = ext * sqrt(pr.c11 > T(0) ? pr.c11 : T(0));
  const bool fin = finite(out[0]) && finite(out[1]) && finite(out[6]) && finite(out[7]);
  const bool on_screen = out[0] + out[6] > T(0) && out[0] - out[6] < T(cam.width) && out[1] + out[7] > T(0) &&
                         out[1] - out[7] < T(cam.height);
  const bool valid = g.ok && in_front && det_ok && fin && on_screen;
  if (!valid)
    for (int k = 0; k < kProj; ++k) out[k] = T(0);
  if (keep) *keep = pr;
  return valid;
}

// Pixel-index box [u0, u1] x [v0, v1] of the pixels whose centres (u + 0.5) lie inside the extent box,
// computed as the reference does (float ops, then clamped to the image). Empty when u0 > u1 or v0 > v1.
template <typename T>
A3D_HD void pixel_box(const T* pj, int width, int height, int* box) {
  const T lo_u = ceil(pj[0] - pj[6] - T(0.5)), hi_u = floor(pj[0] + pj[6] - T(0.5));
  const T lo_v = ceil(pj[1] - pj[7] - T(0.5)), hi_v = floor(pj[1] + pj[7] - T(0.5));
  box[0] = int(clampv(lo_u, T(0), T(width - 1)));
  box[1] = int(clampv(hi_u, T(0), T(width - 1)));
  box[2] = int(clampv(lo_v, T(0), T(height - 1)));
  box[3] = int(clampv(hi_v, T(0), T(height - 1)));
}

// Whether the ellipse {power <= thr} of the conic (a, b, c) centred at the origin meets the rectangle
// [x0, x1] x [y0, y1] (offsets from the centre): the minimum of a convex quadratic over a box is 0 inside,
// else on one of its edges, where it is a 1D quadratic with a closed-form minimiser.
template <typename T>
A3D_HD bool ellipse_hits_rect(T a, T b, T c, T x0, T x1, T y0, T y1, T thr) {
  if (x0 <= T(0) && x1 >= T(0) && y0 <= T(0) && y1 >= T(0)) return true;
  T best = T(1e30);
  const T xs[2] = {x0, x1}, ys[2] = {y0, y1};
  for (int k = 0; k < 2; ++k) {
    const T X = xs[k];
    const T Y = clampv(-b * X / c, y0, y1);
    const T pw = T(0.5) * (a * X * X + c * Y * Y) + b * X * Y;
    best = pw < best ? pw : best;
  }
  for (int k = 0; k < 2; ++k) {
    const T Y = ys[k];
    const T X = clampv(-b * Y / a, x0, x1);
    const T pw = T(0.5) * (a * X * X + c * Y * Y) + b * X * Y;
    best = pw < best ? pw : best;
  }
  return best <= thr;
}

// Tiles of a valid projected Gaussian: the tiles that hold a pixel of its box and whose pixel centres its
// opacity-aware ellipse (power <= ln(255 o), with a margin: this only prunes, the per-pixel test decides)
// reaches. Calls f(tile_x, tile_y) for each, in row-major order; returns the count.
template <typename T, typename F>
A3D_HD int for_each_tile(const T* pj, T o, int width, int height, F&& f) {
  int box[4];
  pixel_box(pj, width, height, box);
  if (box[0] > box[1] || box[2] > box[3]) return 0;
  const int tx0 = box[0] / kTile, tx1 = box[1] / kTile, ty0 = box[2] / kTile, ty1 = box[3] / kTile;
  const bool single = tx0 == tx1 && ty0 == ty1;  // one tile: nothing to prune
  const T thr = single ? T(0) : log(o / T(kAlphaMin)) * T(1.001) + T(1e-3);
  int n = 0;
  for (int ty = ty0; ty <= ty1; ++ty) {
    const int v0 = ty * kTile > box[2] ? ty * kTile : box[2];
    const int v1 = ty * kTile + kTile - 1 < box[3] ? ty * kTile + kTile - 1 : box[3];
    for (int tx = tx0; tx <= tx1; ++tx) {
      const int u0 = tx * kTile > box[0] ? tx * kTile : box[0];
      const int u1 = tx * kTile + kTile - 1 < box[1] ? tx * kTile + kTile - 1 : box[1];
      if (single || ellipse_hits_rect(pj[2], pj[3], pj[4], T(u0) + T(0.5) - pj[0], T(u1) + T(0.5) - pj[0],
                                      T(v0) + T(0.5) - pj[1], T(v1) + T(0.5) - pj[1], thr)) {
        f(tx, ty);
        ++n;
      }
    }
  }
  return n;
}

// Per-pixel Gaussian weight: returns the raw o·exp(-power) (unclamped) and sets power; the caller skips
// power < 0 and min(0.99, raw) < 1/255. d = centre - pixel centre.
// Round-to-nearest products and sums that the CUDA compiler may not fuse into FMAs: the forward and backward
// kernels must take the same per-pixel decisions (alpha >= 1/255) from the same inputs.
A3D_HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
A3D_HD double mul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
A3D_HD float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
A3D_HD double add_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

template <typename T>
A3D_HD T gauss_raw(T a, T b, T c, T o, T dx, T dy, T* power) {
  // 0.5 (a dx² + c dy²) + b dx dy, in the reference's operation order
  *power = add_rn(mul_rn(T(0.5), add_rn(mul_rn(a, mul_rn(dx, dx)), mul_rn(c, mul_rn(dy, dy)))),
                  mul_rn(mul_rn(b, dx), dy));
  return o * exp(-*power);
}

// Gradient of one included (pixel, Gaussian) pair. Inputs: the Gaussian's centre offset d = centre - pixel,
// conic, opacity, raw weight and alpha, colour and depth; the pixel's transmittance before this Gaussian Ti,
// the sums after it (R: colour incl. the background term, RD: depth), its final transmittance Tn and the
// pixel's upstream gradients (vC: rgb, vA: alpha, vD: un-normalised depth sum). Writes
// out[10] = d/d(x, y, a, b, c, z, o, r, g, b).
template <typename T>
A3D_HD void pixel_vjp(T dx, T dy, T a, T b, T c, T o, T raw, T alpha, const T* col, T z, T Ti, const T* R, T RD,
                      T Tn, const T* vC, T vA, T vD, T* out) {
  const T w = alpha * Ti, inv = T(1) / (T(1) - alpha);
  T va = vA * Tn * inv + vD * (z * Ti - RD * inv);
  for (int k = 0; k < 3; ++k) {
    va += vC[k] * (col[k] * Ti - R[k] * inv);
    out[7 + k] = vC[k] * w;
  }
  out[5] = vD * w;
  if (raw <= T(kAlphaMax)) {  // alpha = min(0.99, o G): no gradient through the clamp
    const T G = raw / o;
    out[6] = va * G;
    const T vp = -va * raw;  // d alpha / d power = -o G
    out[0] = vp * (a * dx + b * dy);
    out[1] = vp * (b * dx + c * dy);
    out[2] = T(0.5) * vp * dx * dx;
    out[3] = vp * dx * dy;
    out[4] = T(0.5) * vp * dy * dy;
  } else {
    for (int k = 0; k < 5; ++k) out[k] = T(0);
    out[6] = T(0);
  }
}

// Vector-Jacobian product of `project` for one camera: given the gradient v[kVProj] of (x, y, a, b, c, z),
// accumulates the gradient of the world-space centre into v_m[3] and of the 3D covariance (as a full
// symmetric 3x3 matrix) into v_S[9].
template <typename T>
A3D_HD void project_vjp(const Camera<T>& cam, const Projected<T>& pr, const T* S, const T* v, T* v_m, T* v_S) {
  const T det = pr.det;
  const T A = pr.c11 / det, B = -pr.c01 / det, C = pr.c00 / det;
  // d/dΣ2 of the conic: -M G M, G = [[va, vb/2], [vb/2, vc]] (b is the off-diagonal of the inverse).
  const T g00 = v[2], g01 = T(0.5) * v[3], g11 = v[4];
  const T MG00 = A * g00 + B * g01, MG01 = A * g01 + B * g11;
  const T MG10 = B * g00 + C * g01, MG11 = B * g01 + C * g11;
  const T s00 = -(MG00 * A + MG01 * B), s01 = -(MG00 * B + MG01 * C), s11 = -(MG10 * B + MG11 * C);
  // Σ2 = J V Jᵀ: dV = Jᵀ G2 J, dJ = 2 G2 J V (G2 symmetric [[s00, s01], [s01, s11]]).
  const T* J = pr.J;
  T G2J[6];  // 2x3
  for (int c = 0; c < 3; ++c) {
    G2J[c] = s00 * J[c] + s01 * J[3 + c];
    G2J[3 + c] = s01 * J[c] + s11 * J[3 + c];
  }
  T vV[9];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) vV[3 * r + c] = J[r] * G2J[c] + J[3 + r] * G2J[3 + c];
  T vJ[6];
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 3; ++c)
      vJ[3 * r + c] = T(2) * (G2J[3 * r] * pr.V[c] + G2J[3 * r + 1] * pr.V[3 + c] + G2J[3 * r + 2] * pr.V[6 + c]);
  // V = W S Wᵀ -> dS += Wᵀ dV W
  const T* W = cam.W;
  T tmp[9];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) tmp[3 * r + c] = vV[3 * r] * W[c] + vV[3 * r + 1] * W[3 + c] + vV[3 * r + 2] * W[6 + c];
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) v_S[3 * r + c] += W[r] * tmp[c] + W[3 + r] * tmp[3 + c] + W[6 + r] * tmp[6 + c];
  // Camera-space centre p = (px, py, z): J entries, the 2D mean and the depth depend on it.
  const T z = pr.p[2], rz = T(1) / z, rz2 = rz * rz;
  T vp[3] = {T(0), T(0), T(0)};
  vp[0] += v[0] * cam.fx * rz;
  vp[2] -= v[0] * cam.fx * pr.p[0] * rz2;
  vp[1] += v[1] * cam.fy * rz;
  vp[2] -= v[1] * cam.fy * pr.p[1] * rz2;
  vp[2] += v[5];
  // J00 = fx/z, J11 = fy/z, J02 = -fx ux/z with ux = x/z unless clamped (then a constant).
  vp[2] -= vJ[0] * cam.fx * rz2;
  vp[2] -= vJ[4] * cam.fy * rz2;
  if (pr.cx) {
    vp[2] += vJ[2] * cam.fx * pr.ux * rz2;
  } else {
    vp[0] -= vJ[2] * cam.fx * rz2;
    vp[2] += vJ[2] * T(2) * cam.fx * pr.p[0] * rz2 * rz;
  }
  if (pr.cy) {
    vp[2] += vJ[5] * cam.fy * pr.uy * rz2;
  } else {
    vp[1] -= vJ[5] * cam.fy * rz2;
    vp[2] += vJ[5] * T(2) * cam.fy * pr.p[1] * rz2 * rz;
  }
  for (int k = 0; k < 3; ++k) v_m[k] += W[k] * vp[0] + W[3 + k] * vp[1] + W[6 + k] * vp[2];
}

// Gradient of the (sanitised, valid) Gaussian's quaternion and scales from the gradient of its 3D covariance
// v_S (full symmetric 3x3): Σ = M Mᵀ, M = R(q/|q|) diag(s).
template <typename T>
A3D_HD void gaussian_vjp(const Gaussian<T>& g, const T* v_S, T* v_q, T* v_s) {
  T vM[9];  // (v_S + v_Sᵀ) M
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {
      T acc = T(0);
      for (int k = 0; k < 3; ++k) acc += (v_S[3 * r + k] + v_S[3 * k + r]) * g.M[3 * k + c];
      vM[3 * r + c] = acc;
    }
  T vR[9];
  for (int c = 0; c < 3; ++c) {
    v_s[c] = vM[c] * g.R[c] + vM[3 + c] * g.R[3 + c] + vM[6 + c] * g.R[6 + c];
    for (int r = 0; r < 3; ++r) vR[3 * r + c] = vM[3 * r + c] * g.s[c];
  }
  const T w = g.q[0], x = g.q[1], y = g.q[2], z = g.q[3];
  T vq[4];
  vq[0] = 2 * (-z * vR[1] + y * vR[2] + z * vR[3] - x * vR[5] - y * vR[6] + x * vR[7]);
  vq[1] = 2 * (y * vR[1] + z * vR[2] + y * vR[3] - 2 * x * vR[4] - w * vR[5] + z * vR[6] + w * vR[7] - 2 * x * vR[8]);
  vq[2] = 2 * (-2 * y * vR[0] + x * vR[1] + w * vR[2] + x * vR[3] + z * vR[5] - w * vR[6] + z * vR[7] - 2 * y * vR[8]);
  vq[3] = 2 * (-2 * z * vR[0] - w * vR[1] + x * vR[2] + w * vR[3] - 2 * z * vR[4] + y * vR[5] + x * vR[6] + y * vR[7]);
  // q̂ = q / n: dq = (vq - q̂ (q̂·vq)) / n
  const T dot = g.q[0] * vq[0] + g.q[1] * vq[1] + g.q[2] * vq[2] + g.q[3] * vq[3];
  for (int k = 0; k < 4; ++k) v_q[k] = (vq[k] - g.q[k] * dot) / g.qn;
}

}  // namespace rast
}  // namespace a3d
