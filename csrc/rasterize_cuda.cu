// CUDA rasterizer: forward and backward of the contract in a3d/rasterize.py for all scenes x views at once.
//
// Forward (one host synchronisation: reading the number of (Gaussian, tile) pairs to size their buffers):
//   1. project: one thread per (scene, Gaussian) builds R S once and projects it into each of the C views
//      (proj [B*C*N, 8]), counts the tiles its opacity-aware ellipse reaches and writes its depth as a key.
//   2. sort all B*C*N depth keys (32-bit for float32): cub's radix sort is stable, so ties keep index order.
//   3. in that order, an inclusive scan of the tile counts gives each Gaussian its slots; emit writes
//      (image-tile id, Gaussian id) pairs, so the pairs of each tile are in depth order.
//   4. a stable radix sort on the image-tile id only (ceil(log2(B*C*tiles)) bits: 2 passes at 512², 8 views)
//      groups the pairs by tile and keeps depth order inside each; a pass marks each tile's range.
//   5. blend: one 16x16 block per image tile, batches of 256 Gaussians through shared memory; each warp
//      covers an 8x4 pixel patch and skips (warp-uniformly) Gaussians whose pixel box misses it.
// Backward: the same blocks walk each tile's list back to front from the block's furthest last-included
// entry, reduce each Gaussian's gradient over the warp (shuffles) and add it with one atomic per value and
// warp; then one thread per (scene, Gaussian) applies the projection's vector-Jacobian product for every
// view (no atomics across views).
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <cub/cub.cuh>
#include <tuple>

#include "rasterize.h"

namespace a3d {

using namespace rast;

std::tuple<int64_t, int64_t, int64_t> check_rasterize_args(const at::Tensor& means, const at::Tensor& quats,
                                                           const at::Tensor& scales, const at::Tensor& opacities,
                                                           const at::Tensor& colors, const at::Tensor& viewmats,
                                                           const at::Tensor& Ks,
                                                           const c10::optional<at::Tensor>& backgrounds,
                                                           int64_t width, int64_t height);

namespace {

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
    const int m = min(kThreads, n - base);
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

inline unsigned blocks_for(int64_t n, int threads = 256) { return unsigned((n + threads - 1) / threads); }

// Temporary storage for cub, from torch's caching allocator (no device-wide synchronisation).
struct CubTemp {
  at::Tensor buf;
  void* get(const at::TensorOptions& opts, size_t bytes) {
    buf = at::empty({int64_t(bytes) + 1}, opts.dtype(at::kByte));
    return buf.data_ptr();
  }
};

template <typename T>
std::vector<at::Tensor> fwd_impl(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                                 const at::Tensor& opac, const at::Tensor& colors, const at::Tensor& viewmats,
                                 const at::Tensor& Ks, const at::Tensor& bg, int64_t B, int64_t N, int64_t C, int W,
                                 int H) {
  using Key = typename DepthKey<T>::type;
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const auto opts = means.options();
  const int tiles_x = (W + kTile - 1) / kTile, tiles_y = (H + kTile - 1) / kTile;
  const int64_t BC = B * C, TT = int64_t(tiles_x) * tiles_y, BCN = BC * N;
  TORCH_CHECK(BC * TT < (int64_t(1) << 31), "rasterize: B*C*tiles must be below 2^31");
  const at::ScalarType key_dtype = sizeof(Key) == 4 ? at::kInt : at::kLong;

  at::Tensor proj = at::empty({B, C, N, kProj}, opts);
  at::Tensor ranges = at::zeros({BC * TT, 2}, opts.dtype(at::kInt));
  at::Tensor gids;
  if (BCN > 0) {
    at::Tensor keys = at::empty({BCN}, opts.dtype(key_dtype)), counts = at::empty({BCN}, opts.dtype(at::kInt));
    project_kernel<T><<<blocks_for(B * N), 256, 0, stream>>>(
        means.data_ptr<T>(), quats.data_ptr<T>(), scales.data_ptr<T>(), opac.data_ptr<T>(), viewmats.data_ptr<T>(),
        Ks.data_ptr<T>(), B, C, N, W, H, proj.data_ptr<T>(), reinterpret_cast<Key*>(keys.data_ptr()),
        counts.data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    // Depth order of all B*C*N (the image does not matter here: the tile sort below separates images).
    at::Tensor iota = at::arange(BCN, opts.dtype(at::kInt));
    at::Tensor keys_sorted = at::empty_like(keys), order = at::empty_like(iota);
    CubTemp tmp;
    size_t bytes = 0;
    const Key* kin = reinterpret_cast<const Key*>(keys.data_ptr());
    Key* kout = reinterpret_cast<Key*>(keys_sorted.data_ptr());
    C10_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, kin, kout, iota.data_ptr<int32_t>(),
                                                   order.data_ptr<int32_t>(), BCN, 0, int(sizeof(Key) * 8), stream));
    C10_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(tmp.get(opts, bytes), bytes, kin, kout, iota.data_ptr<int32_t>(),
                                                   order.data_ptr<int32_t>(), BCN, 0, int(sizeof(Key) * 8), stream));
    keys = keys_sorted = iota = at::Tensor();
    at::Tensor cnt_sorted = at::empty({BCN}, opts.dtype(at::kLong)), offsets = at::empty({BCN}, opts.dtype(at::kLong));
    gather_counts_kernel<<<blocks_for(BCN), 256, 0, stream>>>(order.data_ptr<int32_t>(), counts.data_ptr<int32_t>(),
                                                              BCN, cnt_sorted.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    bytes = 0;
    C10_CUDA_CHECK(cub::DeviceScan::InclusiveSum(nullptr, bytes, cnt_sorted.data_ptr<int64_t>(),
                                                 offsets.data_ptr<int64_t>(), BCN, stream));
    C10_CUDA_CHECK(cub::DeviceScan::InclusiveSum(tmp.get(opts, bytes), bytes, cnt_sorted.data_ptr<int64_t>(),
                                                 offsets.data_ptr<int64_t>(), BCN, stream));
    cnt_sorted = counts = at::Tensor();
    const int64_t P = offsets[BCN - 1].item<int64_t>();  // the one host synchronisation
    TORCH_CHECK(P < (int64_t(1) << 31), "rasterize: more than 2^31 (Gaussian, tile) pairs");
    gids = at::empty({P}, opts.dtype(at::kInt));
    if (P > 0) {
      const int32_t sentinel = int32_t(BC * TT);
      at::Tensor pk = at::empty({P}, opts.dtype(at::kInt)), pv = at::empty({P}, opts.dtype(at::kInt)),
                 pk_sorted = at::empty({P}, opts.dtype(at::kInt));
      emit_kernel<T><<<blocks_for(BCN), 256, 0, stream>>>(order.data_ptr<int32_t>(), offsets.data_ptr<int64_t>(),
                                                          proj.data_ptr<T>(), opac.data_ptr<T>(), BCN, C, N, W, H,
                                                          tiles_x, TT, sentinel, pk.data_ptr<int32_t>(),
                                                          pv.data_ptr<int32_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      order = offsets = at::Tensor();
      int bits = 1;
      while ((int64_t(1) << bits) <= BC * TT) ++bits;  // the sentinel BC*TT included
      bytes = 0;
      const uint32_t* ukin = reinterpret_cast<const uint32_t*>(pk.data_ptr());
      uint32_t* ukout = reinterpret_cast<uint32_t*>(pk_sorted.data_ptr());
      C10_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, bytes, ukin, ukout, pv.data_ptr<int32_t>(),
                                                     gids.data_ptr<int32_t>(), P, 0, bits, stream));
      C10_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(tmp.get(opts, bytes), bytes, ukin, ukout,
                                                     pv.data_ptr<int32_t>(), gids.data_ptr<int32_t>(), P, 0, bits,
                                                     stream));
      tile_ranges_kernel<<<blocks_for(P), 256, 0, stream>>>(pk_sorted.data_ptr<int32_t>(), P, sentinel,
                                                            reinterpret_cast<int2*>(ranges.data_ptr<int32_t>()));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  } else {
    gids = at::empty({0}, opts.dtype(at::kInt));
  }
  at::Tensor rgb = at::empty({B, C, H, W, 3}, opts), alpha = at::empty({B, C, H, W, 1}, opts),
             depth = at::empty({B, C, H, W, 1}, opts), Tfin = at::empty({B, C, H, W}, opts),
             last = at::empty({B, C, H, W}, opts.dtype(at::kInt));
  if (BC * TT > 0) {
    blend_fwd_kernel<T><<<unsigned(BC * TT), kThreads, 0, stream>>>(
        proj.data_ptr<T>(), opac.data_ptr<T>(), colors.data_ptr<T>(),
        reinterpret_cast<const int2*>(ranges.data_ptr<int32_t>()), gids.data_ptr<int32_t>(),
        bg.defined() ? bg.data_ptr<T>() : nullptr, C, N, W, H, tiles_x, TT, rgb.data_ptr<T>(), alpha.data_ptr<T>(),
        depth.data_ptr<T>(), last.data_ptr<int32_t>(), Tfin.data_ptr<T>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {rgb, alpha, depth, proj, ranges, gids, last, Tfin};
}

template <typename T>
std::vector<at::Tensor> bwd_impl(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                                 const at::Tensor& opac, const at::Tensor& colors, const at::Tensor& viewmats,
                                 const at::Tensor& Ks, const at::Tensor& bg, int64_t B, int64_t N, int64_t C, int W,
                                 int H, const at::Tensor& proj, const at::Tensor& ranges, const at::Tensor& gids,
                                 const at::Tensor& last, const at::Tensor& Tfin, const at::Tensor& v_rgb,
                                 const at::Tensor& v_alpha, const at::Tensor& v_dsum) {
  cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const auto opts = means.options();
  const int tiles_x = (W + kTile - 1) / kTile, tiles_y = (H + kTile - 1) / kTile;
  const int64_t BC = B * C, TT = int64_t(tiles_x) * tiles_y;
  at::Tensor v_proj = at::zeros({BC * N, kVProj}, opts);
  at::Tensor v_opac = at::zeros_like(opac), v_colors = at::zeros_like(colors);
  at::Tensor v_means = at::empty_like(means), v_quats = at::empty_like(quats), v_scales = at::empty_like(scales);
  if (BC * TT > 0 && gids.numel() > 0) {
    blend_bwd_kernel<T><<<unsigned(BC * TT), kThreads, 0, stream>>>(
        proj.data_ptr<T>(), opac.data_ptr<T>(), colors.data_ptr<T>(),
        reinterpret_cast<const int2*>(ranges.data_ptr<int32_t>()), gids.data_ptr<int32_t>(),
        bg.defined() ? bg.data_ptr<T>() : nullptr, last.data_ptr<int32_t>(), Tfin.data_ptr<T>(), v_rgb.data_ptr<T>(),
        v_alpha.data_ptr<T>(), v_dsum.data_ptr<T>(), C, N, W, H, tiles_x, TT, v_proj.data_ptr<T>(),
        v_opac.data_ptr<T>(), v_colors.data_ptr<T>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  if (B * N > 0) {
    project_bwd_kernel<T><<<blocks_for(B * N), 256, 0, stream>>>(
        means.data_ptr<T>(), quats.data_ptr<T>(), scales.data_ptr<T>(), opac.data_ptr<T>(), viewmats.data_ptr<T>(),
        Ks.data_ptr<T>(), v_proj.data_ptr<T>(), B, C, N, W, H, v_means.data_ptr<T>(), v_quats.data_ptr<T>(),
        v_scales.data_ptr<T>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {v_means, v_quats, v_scales, v_opac, v_colors};
}

void check_cuda(std::initializer_list<const at::Tensor*> ts) {
  for (const at::Tensor* t : ts) TORCH_CHECK(t->is_cuda(), "rasterize: all tensors must be on one CUDA device");
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
rasterize_fwd_cuda(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                   const at::Tensor& opacities, const at::Tensor& colors, const at::Tensor& viewmats,
                   const at::Tensor& Ks, const c10::optional<at::Tensor>& backgrounds, int64_t width, int64_t height) {
  int64_t B, N, C;
  std::tie(B, N, C) = check_rasterize_args(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, width, height);
  check_cuda({&means, &quats, &scales, &opacities, &colors, &viewmats, &Ks});
  if (backgrounds.has_value()) check_cuda({&*backgrounds});
  const c10::cuda::CUDAGuard guard(means.device());
  const at::Tensor bg = backgrounds.has_value() ? backgrounds->contiguous() : at::Tensor();
  std::vector<at::Tensor> r;
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "rasterize_fwd_cuda", [&] {
    r = fwd_impl<scalar_t>(means.contiguous(), quats.contiguous(), scales.contiguous(), opacities.contiguous(),
                           colors.contiguous(), viewmats.contiguous(), Ks.contiguous(), bg, B, N, C, int(width),
                           int(height));
  });
  return {r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_bwd_cuda(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& opacities,
    const at::Tensor& colors, const at::Tensor& viewmats, const at::Tensor& Ks,
    const c10::optional<at::Tensor>& backgrounds, int64_t width, int64_t height, const at::Tensor& proj,
    const at::Tensor& tile_ranges, const at::Tensor& isect_gids, const at::Tensor& last, const at::Tensor& T_final,
    const at::Tensor& v_rgb, const at::Tensor& v_alpha, const at::Tensor& v_dsum) {
  int64_t B, N, C;
  std::tie(B, N, C) = check_rasterize_args(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, width, height);
  check_cuda({&means, &quats, &scales, &opacities, &colors, &viewmats, &Ks, &proj, &tile_ranges, &isect_gids, &last,
              &T_final, &v_rgb, &v_alpha, &v_dsum});
  if (backgrounds.has_value()) check_cuda({&*backgrounds});
  const c10::cuda::CUDAGuard guard(means.device());
  const at::Tensor bg = backgrounds.has_value() ? backgrounds->contiguous() : at::Tensor();
  std::vector<at::Tensor> r;
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "rasterize_bwd_cuda", [&] {
    r = bwd_impl<scalar_t>(means.contiguous(), quats.contiguous(), scales.contiguous(), opacities.contiguous(),
                           colors.contiguous(), viewmats.contiguous(), Ks.contiguous(), bg, B, N, C, int(width),
                           int(height), proj.contiguous(), tile_ranges.contiguous(), isect_gids.contiguous(),
                           last.contiguous(), T_final.contiguous(), v_rgb.contiguous(), v_alpha.contiguous(),
                           v_dsum.contiguous());
  });
  return {r[0], r[1], r[2], r[3], r[4]};
}

}  // namespace

TORCH_LIBRARY_IMPL(a3d, CUDA, m) {
  m.impl("rasterize_fwd", &rasterize_fwd_cuda);
  m.impl("rasterize_bwd", &rasterize_bwd_cuda);
}

}  // namespace a3d
