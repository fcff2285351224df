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

#include "rasterize_kernels.cuh"

namespace a3d {

using namespace rast;

std::tuple<int64_t, int64_t, int64_t> check_rasterize_args(const at::Tensor& means, const at::Tensor& quats,
                                                           const at::Tensor& scales, const at::Tensor& opacities,
                                                           const at::Tensor& colors, const at::Tensor& viewmats,
                                                           const at::Tensor& Ks,
                                                           const c10::optional<at::Tensor>& backgrounds,
                                                           int64_t width, int64_t height);

namespace {

using namespace kern;

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
