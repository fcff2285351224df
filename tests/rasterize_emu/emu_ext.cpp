// The CUDA kernels of csrc/rasterize_kernels.cuh run on the CPU through emu.h, wired as in
// csrc/rasterize_cuda.cu (cub's stable radix sorts replaced by std::stable_sort on the same keys/bits), so
// their logic (batching, warp culling, shuffles, atomics, the back-to-front walk) is tested without a GPU.
// Built by tests/test_rasterize_kernels.py::test_cuda_kernels_emulated_on_cpu. Outputs are pre-filled with
// NaN/-3 so unwritten elements show.
#include "emu.h"
#include <torch/extension.h>
#include <algorithm>
#include <numeric>
#include "rasterize_kernels.cuh"

using namespace a3d;
using namespace a3d::kern;

static unsigned nblocks(int64_t n) { return unsigned((n + 255) / 256); }

template <typename T>
std::vector<at::Tensor> fwd_t(at::Tensor means, at::Tensor quats, at::Tensor scales, at::Tensor opac,
                              at::Tensor colors, at::Tensor viewmats, at::Tensor Ks, c10::optional<at::Tensor> bgo,
                              int64_t W, int64_t H) {
  using Key = typename DepthKey<T>::type;
  const int64_t B = means.size(0), N = means.size(1), C = viewmats.size(1);
  const auto opts = means.options();
  const int tiles_x = (W + kTile - 1) / kTile, tiles_y = (H + kTile - 1) / kTile;
  const int64_t BC = B * C, TT = int64_t(tiles_x) * tiles_y, BCN = BC * N;
  at::Tensor proj = at::full({B, C, N, kProj}, NAN, opts);
  at::Tensor ranges = at::zeros({BC * TT, 2}, opts.dtype(at::kInt));
  at::Tensor gids = at::empty({0}, opts.dtype(at::kInt));
  at::Tensor bg = bgo.has_value() ? bgo->contiguous() : at::Tensor();
  if (BCN > 0) {
    std::vector<Key> keys(BCN);
    std::vector<int32_t> counts(BCN, -7);
    emu::launch(nblocks(B * N), 256, false, [&] {
      project_kernel<T>(means.data_ptr<T>(), quats.data_ptr<T>(), scales.data_ptr<T>(), opac.data_ptr<T>(),
                        viewmats.data_ptr<T>(), Ks.data_ptr<T>(), B, C, N, int(W), int(H), proj.data_ptr<T>(),
                        keys.data(), counts.data());
    });
    std::vector<int32_t> order(BCN);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return keys[a] < keys[b]; });
    std::vector<int64_t> cs(BCN), off(BCN);
    emu::launch(nblocks(BCN), 256, false, [&] { gather_counts_kernel(order.data(), counts.data(), BCN, cs.data()); });
    std::partial_sum(cs.begin(), cs.end(), off.begin());
    const int64_t P = off[BCN - 1];
    gids = at::empty({P}, opts.dtype(at::kInt));
    if (P > 0) {
      const int32_t sentinel = int32_t(BC * TT);
      std::vector<int32_t> pk(P, -5), pv(P, -5);
      emu::launch(nblocks(BCN), 256, false, [&] {
        emit_kernel<T>(order.data(), off.data(), proj.data_ptr<T>(), opac.data_ptr<T>(), BCN, C, N, int(W), int(H),
                       tiles_x, TT, sentinel, pk.data(), pv.data());
      });
      int bits = 1;
      while ((int64_t(1) << bits) <= BC * TT) ++bits;
      const uint32_t mask = bits >= 32 ? ~0u : ((1u << bits) - 1);
      std::vector<int64_t> idx(P);
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(),
                       [&](int64_t a, int64_t b) { return (uint32_t(pk[a]) & mask) < (uint32_t(pk[b]) & mask); });
      std::vector<int32_t> pks(P);
      for (int64_t i = 0; i < P; ++i) {
        pks[i] = pk[idx[i]];
        gids.data_ptr<int32_t>()[i] = pv[idx[i]];
      }
      emu::launch(nblocks(P), 256, false, [&] {
        tile_ranges_kernel(pks.data(), P, sentinel, reinterpret_cast<int2*>(ranges.data_ptr<int32_t>()));
      });
    }
  }
  at::Tensor rgb = at::full({B, C, H, W, 3}, NAN, opts), alpha = at::full({B, C, H, W, 1}, NAN, opts),
             depth = at::full({B, C, H, W, 1}, NAN, opts), Tfin = at::full({B, C, H, W}, NAN, opts),
             last = at::full({B, C, H, W}, -3, opts.dtype(at::kInt));
  emu::launch(unsigned(BC * TT), kThreads, true, [&] {
    blend_fwd_kernel<T>(proj.data_ptr<T>(), opac.data_ptr<T>(), colors.data_ptr<T>(),
                        reinterpret_cast<const int2*>(ranges.data_ptr<int32_t>()), gids.data_ptr<int32_t>(),
                        bg.defined() ? bg.data_ptr<T>() : nullptr, C, N, int(W), int(H), tiles_x, TT,
                        rgb.data_ptr<T>(), alpha.data_ptr<T>(), depth.data_ptr<T>(), last.data_ptr<int32_t>(),
                        Tfin.data_ptr<T>());
  });
  return {rgb, alpha, depth, proj, ranges, gids, last, Tfin};
}

template <typename T>
std::vector<at::Tensor> bwd_t(at::Tensor means, at::Tensor quats, at::Tensor scales, at::Tensor opac,
                              at::Tensor colors, at::Tensor viewmats, at::Tensor Ks, c10::optional<at::Tensor> bgo,
                              int64_t W, int64_t H, at::Tensor proj, at::Tensor ranges, at::Tensor gids,
                              at::Tensor last, at::Tensor Tfin, at::Tensor v_rgb, at::Tensor v_alpha,
                              at::Tensor v_dsum) {
  const int64_t B = means.size(0), N = means.size(1), C = viewmats.size(1);
  const auto opts = means.options();
  const int tiles_x = (W + kTile - 1) / kTile, tiles_y = (H + kTile - 1) / kTile;
  const int64_t BC = B * C, TT = int64_t(tiles_x) * tiles_y;
  at::Tensor bg = bgo.has_value() ? bgo->contiguous() : at::Tensor();
  at::Tensor v_proj = at::zeros({BC * N, kVProj}, opts);
  at::Tensor v_opac = at::zeros_like(opac), v_colors = at::zeros_like(colors);
  at::Tensor v_means = at::full_like(means, NAN), v_quats = at::full_like(quats, NAN),
             v_scales = at::full_like(scales, NAN);
  if (gids.numel() > 0)
    emu::launch(unsigned(BC * TT), kThreads, true, [&] {
      blend_bwd_kernel<T>(proj.data_ptr<T>(), opac.data_ptr<T>(), colors.data_ptr<T>(),
                          reinterpret_cast<const int2*>(ranges.data_ptr<int32_t>()), gids.data_ptr<int32_t>(),
                          bg.defined() ? bg.data_ptr<T>() : nullptr, last.data_ptr<int32_t>(), Tfin.data_ptr<T>(),
                          v_rgb.data_ptr<T>(), v_alpha.data_ptr<T>(), v_dsum.data_ptr<T>(), C, N, int(W), int(H),
                          tiles_x, TT, v_proj.data_ptr<T>(), v_opac.data_ptr<T>(), v_colors.data_ptr<T>());
    });
  emu::launch(nblocks(B * N), 256, false, [&] {
    project_bwd_kernel<T>(means.data_ptr<T>(), quats.data_ptr<T>(), scales.data_ptr<T>(), opac.data_ptr<T>(),
                          viewmats.data_ptr<T>(), Ks.data_ptr<T>(), v_proj.data_ptr<T>(), B, C, N, int(W), int(H),
                          v_means.data_ptr<T>(), v_quats.data_ptr<T>(), v_scales.data_ptr<T>());
  });
  return {v_means, v_quats, v_scales, v_opac, v_colors};
}

std::vector<at::Tensor> fwd(at::Tensor means, at::Tensor quats, at::Tensor scales, at::Tensor opac, at::Tensor colors,
                            at::Tensor viewmats, at::Tensor Ks, c10::optional<at::Tensor> bg, int64_t W, int64_t H) {
  if (means.scalar_type() == at::kFloat)
    return fwd_t<float>(means.contiguous(), quats.contiguous(), scales.contiguous(), opac.contiguous(),
                        colors.contiguous(), viewmats.contiguous(), Ks.contiguous(), bg, W, H);
  return fwd_t<double>(means.contiguous(), quats.contiguous(), scales.contiguous(), opac.contiguous(),
                       colors.contiguous(), viewmats.contiguous(), Ks.contiguous(), bg, W, H);
}

std::vector<at::Tensor> bwd(at::Tensor means, at::Tensor quats, at::Tensor scales, at::Tensor opac, at::Tensor colors,
                            at::Tensor viewmats, at::Tensor Ks, c10::optional<at::Tensor> bg, int64_t W, int64_t H,
                            at::Tensor proj, at::Tensor ranges, at::Tensor gids, at::Tensor last, at::Tensor Tfin,
                            at::Tensor v_rgb, at::Tensor v_alpha, at::Tensor v_dsum) {
  if (means.scalar_type() == at::kFloat)
    return bwd_t<float>(means.contiguous(), quats.contiguous(), scales.contiguous(), opac.contiguous(),
                        colors.contiguous(), viewmats.contiguous(), Ks.contiguous(), bg, W, H, proj, ranges, gids,
                        last, Tfin, v_rgb.contiguous(), v_alpha.contiguous(), v_dsum.contiguous());
  return bwd_t<double>(means.contiguous(), quats.contiguous(), scales.contiguous(), opac.contiguous(),
                       colors.contiguous(), viewmats.contiguous(), Ks.contiguous(), bg, W, H, proj, ranges, gids,
                       last, Tfin, v_rgb.contiguous(), v_alpha.contiguous(), v_dsum.contiguous());
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("fwd", &fwd);
  m.def("bwd", &bwd);
}
