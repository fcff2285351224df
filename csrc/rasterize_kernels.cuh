#pragma once
// CUDA kernels of the rasterizer (host code and the pipeline's description: rasterize_cuda.cu). Kept free of
// torch so that they compile on their own.
#include <cstdint>

#include "rasterize.h"

namespace a3d {
namespace kern {

using namespace rast;

constexpr int kThreads = kTile * kTile;  // one thread per pixel of a tile
constexpr unsigned kFull = 0xffffffffu;

template <typename T> struct DepthKey;
template <> struct DepthKey<float> {
  using type = uint32_t;
  static __device__ uint32_t of(float z) { return __float_as_uint(z); }  // z > 0: bit order = value order
};
template <> struct DepthKey<double> {
  using type = uint64_t;
  static __device__ uint64_t of(double z) { return uint64_t(__double_as_longlong(z)); }
};

template <typename T>
__global__ void project_kernel(const T* __restrict__ means, const T* __restrict__ quats, const T* __restrict__ scales,
                               const T* __restrict__ opac, const T* __restrict__ viewmats, const T* __restrict__ Ks,
                               int64_t B, int64_t C, int64_t N, int W, int H, T* __restrict__ proj,
                               typename DepthKey<T>::type* __restrict__ keys, int32_t* __restrict__ counts) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= B * N) return;
  const int64_t b = i / N, n = i - b * N;
  const Gaussian<T> g = load_gaussian(means, quats, scales, opac, i);
  T S[9];
  cov3d(g.M, S);
  for (int64_t c = 0; c < C; ++c) {
    const int64_t bc = b * C + c, gid = bc * N + n;
    const Camera<T> cam = load_camera(viewmats + 16 * bc, Ks + 9 * bc, W, H);
    T out[kProj];
    const bool valid = project(g, cam, S, out, static_cast<Projected<T>*>(nullptr));
    for (int k = 0; k < kProj; ++k) proj[kProj * gid + k] = out[k];
    int cnt = 0;
    if (valid) cnt = for_each_tile(out, g.o, W, H, [](int, int) {});
    counts[gid] = cnt;
    keys[gid] = cnt > 0 ? DepthKey<T>::of(out[5]) : ~typename DepthKey<T>::type(0);
  }
}

__global__ void gather_counts_kernel(const int32_t* __restrict__ order, const int32_t* __restrict__ counts, int64_t n,
                                     int64_t* __restrict__ out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = counts[order[i]];
}

// Writes the (image-tile, Gaussian) pairs of each Gaussian in depth order. The ellipse test is re-run here;
// should it disagree with the count pass in the last bit (the compiler may fuse differently), the slots are
// capped at the count and any left over get the key `sentinel`, which sorts after every tile and is ignored:
// such a tile lies outside the margin of the test, where no pixel reaches alpha 1/255.
template <typename T>
__global__ void emit_kernel(const int32_t* __restrict__ order, const int64_t* __restrict__ offsets_incl,
                            const T* __restrict__ proj, const T* __restrict__ opac, int64_t BCN, int64_t C, int64_t N,
                            int W, int H, int tiles_x, int64_t TT, int32_t sentinel, int32_t* __restrict__ keys,
                            int32_t* __restrict__ vals) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= BCN) return;
  const int64_t start = i == 0 ? 0 : offsets_incl[i - 1], stop = offsets_incl[i];
  if (stop == start) return;
  const int32_t gid = order[i];
  const int64_t bc = gid / N, n = gid - bc * N, b = bc / C;
  const T* pj = proj + int64_t(kProj) * gid;
  T p[kProj];
  for (int k = 0; k < kProj; ++k) p[k] = pj[k];
  int64_t slot = start;
  const int32_t base = int32_t(bc * TT);
  for_each_tile(p, opac[b * N + n], W, H, [&](int tx, int ty) {
    if (slot < stop) {
      keys[slot] = base + ty * tiles_x + tx;
      vals[slot] = gid;
    }
    ++slot;
  });
  for (; slot < stop; ++slot) {
    keys[slot] = sentinel;
    vals[slot] = gid;
  }
}

__global__ void tile_ranges_kernel(const int32_t* __restrict__ keys, int64_t P, int32_t sentinel,
                                   int2* __restrict__ ranges) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= P) return;
  const int32_t k = keys[i];
  if (k >= sentinel) return;
  if (i == 0 || keys[i - 1] != k) ranges[k].x = int32_t(i);
  if (i == P - 1 || keys[i + 1] != k) ranges[k].y = int32_t(i + 1);
}

// The Gaussians of one batch, staged in shared memory.
template <typename T>
struct Batch {
  T x[kThreads], y[kThreads], a[kThreads], b[kThreads], c[kThreads], o[kThreads], z[kThreads];
  T r[kThreads], g[kThreads], bl[kThreads];
  int4 box[kThreads];
  int32_t gid[kThreads];
};

template <typename T>
__device__ void stage(Batch<T>& s, int slot, int32_t gid, const T* __restrict__ proj, const T* __restrict__ opac,
                      const T* __restrict__ colors, int64_t b, int64_t N, int W, int H) {
  const T* pj = proj + int64_t(kProj) * gid;
  T p[kProj];
  for (int k = 0; k < kProj; ++k) p[k] = pj[k];
  int box[4];
  pixel_box(p, W, H, box);
  const int64_t gn = b * N + gid % N;
  s.x[slot] = p[0]; s.y[slot] = p[1]; s.a[slot] = p[2]; s.b[slot] = p[3]; s.c[slot] = p[4]; s.z[slot] = p[5];
  s.o[slot] = opac[gn];
  s.r[slot] = colors[3 * gn]; s.g[slot] = colors[3 * gn + 1]; s.bl[slot] = colors[3 * gn + 2];
  s.box[slot] = make_int4(box[0], box[1], box[2], box[3]);
  s.gid[slot] = gid;
}

// Pixel of this thread: warps cover 8x4 patches (2 across, 4 down a 16x16 tile), so a small splat's box
// meets few warps and the others skip it together.
struct PixelMap {
  int wx0, wy0, u, v;
  __device__ PixelMap(int ox, int oy) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    wx0 = ox + (warp & 1) * 8;
    wy0 = oy + (warp >> 1) * 4;
    u = wx0 + (lane & 7);
    v = wy0 + (lane >> 3);
  }
  __device__ bool warp_misses(int4 bx) const { return bx.x > wx0 + 7 || bx.y < wx0 || bx.z > wy0 + 3 || bx.w < wy0; }
  __device__ bool outside(int4 bx) const { return u < bx.x || u > bx.y || v < bx.z || v > bx.w; }
};

template <typename T>
__global__ void __launch_bounds__(kThreads)
    blend_fwd_kernel(const T* __restrict__ proj, const T* __restrict__ opac, const T* __restrict__ colors,
                     const int2* __restrict__ ranges, const int32_t* __restrict__ gids, const T* __restrict__ bg,
                     int64_t C, int64_t N, int W, int H, int tiles_x, int64_t TT, T* __restrict__ rgb,
                     T* __restrict__ alpha, T* __restrict__ depth, int32_t* __restrict__ last, T* __restrict__ Tfin) {
  __shared__ Batch<T> s;
  const int64_t tile = blockIdx.x, bc = tile / TT, b = bc / C;
  const int t = int(tile - bc * TT);
  const PixelMap pm((t % tiles_x) * kTile, (t / tiles_x) * kTile);
  const bool inside = pm.u < W && pm.v < H;
  const T px = T(pm.u) + T(0.5), py = T(pm.v) + T(0.5);
  const int2 rg = ranges[tile];
  const int n = rg.y - rg.x;
  T Tr = T(1), acc0 = T(0), acc1 = T(0), acc2 = T(0), accD = T(0);
  int cnt = 0;
  int done = !inside;
  for (int base = 0; base < n; base += kThreads) {
    if (__syncthreads_count(done) == kThreads) break;  // also: the previous batch is consumed
    if (base + int(threadIdx.x) < n) stage(s, threadIdx.x, gids[rg.x + base + threadIdx.x], proj, opac, colors, b, N, W, H);
    __syncthreads();
    const int m = n - base < kThreads ? n - base : kThreads;
    for (int j = 0; j < m; ++j) {
      const int4 bx = s.box[j];
      if (pm.warp_misses(bx)) continue;  // warp-uniform
      if (done || pm.outside(bx)) continue;
      T power;
      const T raw = gauss_raw(s.a[j], s.b[j], s.c[j], s.o[j], s.x[j] - px, s.y[j] - py, &power);
      const T al = raw < T(kAlphaMax) ? raw : T(kAlphaMax);
      if (power < T(0) || al < T(kAlphaMin)) continue;
      const T nt = Tr * (T(1) - al);
      if (nt <= T(kTMin)) {
        done = 1;
        continue;
      }
      const T w = al * Tr;
      acc0 += w * s.r[j];
      acc1 += w * s.g[j];
      acc2 += w * s.bl[j];
      accD += w * s.z[j];
      Tr = nt;
      cnt = base + j + 1;
    }
  }
  if (!inside) return;
  const int64_t pix = (bc * H + pm.v) * W + pm.u;
  rgb[3 * pix] = acc0 + (bg ? Tr * bg[3 * bc] : T(0));
  rgb[3 * pix + 1] = acc1 + (bg ? Tr * bg[3 * bc + 1] : T(0));
  rgb[3 * pix + 2] = acc2 + (bg ? Tr * bg[3 * bc + 2] : T(0));
  alpha[pix] = T(1) - Tr;
  const T den = T(1) - Tr;
  depth[pix] = accD / (den > T(kDepthEps) ? den : T(kDepthEps));
  last[pix] = cnt;
  Tfin[pix] = Tr;
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFull, v, off);
  return v;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    blend_bwd_kernel(const T* __restrict__ proj, const T* __restrict__ opac, const T* __restrict__ colors,
                     const int2* __restrict__ ranges, const int32_t* __restrict__ gids, const T* __restrict__ bg,
                     const int32_t* __restrict__ last, const T* __restrict__ Tfin, const T* __restrict__ v_rgb,
                     const T* __restrict__ v_alpha, const T* __restrict__ v_dsum, int64_t C, int64_t N, int W, int H,
                     int tiles_x, int64_t TT, T* __restrict__ v_proj, T* __restrict__ v_opac, T* __restrict__ v_colors) {
  __shared__ Batch<T> s;
  __shared__ int s_max;
  const int64_t tile = blockIdx.x, bc = tile / TT, b = bc / C;
  const int t = int(tile - bc * TT);
  const PixelMap pm((t % tiles_x) * kTile, (t / tiles_x) * kTile);
  const bool inside = pm.u < W && pm.v < H;
  const T px = T(pm.u) + T(0.5), py = T(pm.v) + T(0.5);
  const int2 rg = ranges[tile];
  const int64_t pix = (bc * H + pm.v) * W + pm.u;
  const T Tn = inside ? Tfin[pix] : T(1);
  const int cnt = inside ? last[pix] : 0;
  T vC[3] = {T(0), T(0), T(0)}, vA = T(0), vD = T(0), R[3], RD = T(0), Tr = Tn;
  if (inside) {
    for (int k = 0; k < 3; ++k) vC[k] = v_rgb[3 * pix + k];
    vA = v_alpha[pix];
    vD = v_dsum[pix];
  }
  for (int k = 0; k < 3; ++k) R[k] = bg ? Tn * bg[3 * bc + k] : T(0);
  if (threadIdx.x == 0) s_max = 0;
  __syncthreads();
  if (cnt > 0) atomicMax(&s_max, cnt);
  __syncthreads();
  const int maxcnt = s_max;
  for (int end = maxcnt; end > 0; end -= kThreads) {
    const int start = end > kThreads ? end - kThreads : 0;
    __syncthreads();  // the previous batch is consumed
    if (start + int(threadIdx.x) < end)
      stage(s, threadIdx.x, gids[rg.x + start + threadIdx.x], proj, opac, colors, b, N, W, H);
    __syncthreads();
    for (int j = end - start - 1; j >= 0; --j) {
      const int4 bx = s.box[j];
      if (pm.warp_misses(bx)) continue;  // warp-uniform
      bool contrib = inside && start + j < cnt && !pm.outside(bx);
      T gr[10];
      if (contrib) {
        const T dx = s.x[j] - px, dy = s.y[j] - py;
        T power;
        const T raw = gauss_raw(s.a[j], s.b[j], s.c[j], s.o[j], dx, dy, &power);
        const T al = raw < T(kAlphaMax) ? raw : T(kAlphaMax);
        contrib = !(power < T(0) || al < T(kAlphaMin));
        if (contrib) {
          const T Ti = Tr / (T(1) - al);
          const T col[3] = {s.r[j], s.g[j], s.bl[j]};
          pixel_vjp(dx, dy, s.a[j], s.b[j], s.c[j], s.o[j], raw, al, col, s.z[j], Ti, R, RD, Tn, vC, vA, vD, gr);
          const T w = al * Ti;
          for (int k = 0; k < 3; ++k) R[k] += w * col[k];
          RD += w * s.z[j];
          Tr = Ti;
        }
      }
      if (!__any_sync(kFull, contrib)) continue;
      if (!contrib)
        for (int k = 0; k < 10; ++k) gr[k] = T(0);
#pragma unroll
      for (int k = 0; k < 10; ++k) gr[k] = warp_sum(gr[k]);
      if ((threadIdx.x & 31) == 0) {
        const int64_t gid = s.gid[j];
        T* vp = v_proj + int64_t(kVProj) * gid;
#pragma unroll
        for (int k = 0; k < kVProj; ++k) atomicAdd(vp + k, gr[k]);
        const int64_t gn = b * N + gid % N;
        atomicAdd(v_opac + gn, gr[6]);
        for (int k = 0; k < 3; ++k) atomicAdd(v_colors + 3 * gn + k, gr[7 + k]);
      }
    }
  }
}

template <typename T>
__global__ void project_bwd_kernel(const T* __restrict__ means, const T* __restrict__ quats,
                                   const T* __restrict__ scales, const T* __restrict__ opac,
                                   const T* __restrict__ viewmats, const T* __restrict__ Ks,
                                   const T* __restrict__ v_proj, int64_t B, int64_t C, int64_t N, int W, int H,
                                   T* __restrict__ v_means, T* __restrict__ v_quats, T* __restrict__ v_scales) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= B * N) return;
  const int64_t b = i / N, n = i - b * N;
  T vm[3] = {T(0), T(0), T(0)}, vS[9] = {}, vq[4] = {T(0), T(0), T(0), T(0)}, vs[3] = {T(0), T(0), T(0)};
  const Gaussian<T> g = load_gaussian(means, quats, scales, opac, i);
  bool any = false;
  if (g.ok) {
    T S[9];
    cov3d(g.M, S);
    for (int64_t c = 0; c < C; ++c) {
      const int64_t bc = b * C + c;
      T v[kVProj];
      bool nz = false;
      for (int k = 0; k < kVProj; ++k) {
        v[k] = v_proj[kVProj * (bc * N + n) + k];
        nz = nz || v[k] != T(0);
      }
      if (!nz) continue;
      const Camera<T> cam = load_camera(viewmats + 16 * bc, Ks + 9 * bc, W, H);
      Projected<T> pr;
      T tmp[kProj];
      if (!project(g, cam, S, tmp, &pr)) continue;
      project_vjp(cam, pr, S, v, vm, vS);
      any = true;
    }
    if (any) gaussian_vjp(g, vS, vq, vs);
  }
  for (int k = 0; k < 3; ++k) v_means[3 * i + k] = vm[k];
  for (int k = 0; k < 4; ++k) v_quats[4 * i + k] = vq[k];
  for (int k = 0; k < 3; ++k) v_scales[3 * i + k] = vs[k];
}

}  // namespace kern
}  // namespace a3d
