// CPU rasterizer: forward and backward of the contract in a3d/rasterize.py, multithreaded with
// at::parallel_for. Same stages as the CUDA kernels (project, bin by tile in depth order, blend), laid out for
// a CPU: each tile walks its depth-sorted list once and touches only the pixels of each Gaussian's box.
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <numeric>
#include <tuple>
#include <vector>

#include "rasterize.h"

namespace a3d {

using namespace rast;

// Checks the op's arguments (shared with the CUDA file) and returns (B, N, C).
std::tuple<int64_t, int64_t, int64_t> check_rasterize_args(const at::Tensor& means, const at::Tensor& quats,
                                                           const at::Tensor& scales, const at::Tensor& opacities,
                                                           const at::Tensor& colors, const at::Tensor& viewmats,
                                                           const at::Tensor& Ks,
                                                           const c10::optional<at::Tensor>& backgrounds,
                                                           int64_t width, int64_t height) {
  TORCH_CHECK(means.dim() == 3 && means.size(2) == 3, "rasterize: means must be [B, N, 3], got ", means.sizes());
  const int64_t B = means.size(0), N = means.size(1);
  TORCH_CHECK(quats.sizes() == at::IntArrayRef({B, N, 4}), "rasterize: quats must be [B, N, 4], got ", quats.sizes());
  TORCH_CHECK(scales.sizes() == at::IntArrayRef({B, N, 3}), "rasterize: scales must be [B, N, 3], got ", scales.sizes());
  TORCH_CHECK(opacities.sizes() == at::IntArrayRef({B, N}), "rasterize: opacities must be [B, N], got ",
              opacities.sizes());
  TORCH_CHECK(colors.sizes() == at::IntArrayRef({B, N, 3}), "rasterize: colors must be [B, N, 3], got ", colors.sizes());
  TORCH_CHECK(viewmats.dim() == 4 && viewmats.size(0) == B && viewmats.size(2) == 4 && viewmats.size(3) == 4,
              "rasterize: viewmats must be [B, C, 4, 4], got ", viewmats.sizes());
  const int64_t C = viewmats.size(1);
  TORCH_CHECK(Ks.sizes() == at::IntArrayRef({B, C, 3, 3}), "rasterize: Ks must be [B, C, 3, 3], got ", Ks.sizes());
  if (backgrounds.has_value())
    TORCH_CHECK(backgrounds->sizes() == at::IntArrayRef({B, C, 3}), "rasterize: backgrounds must be [B, C, 3], got ",
                backgrounds->sizes());
  TORCH_CHECK(width > 0 && height > 0 && width <= kMaxSide && height <= kMaxSide,
              "rasterize: width and height must be in [1, ", kMaxSide, "], got ", width, "x", height);
  TORCH_CHECK(B * C * N < (int64_t(1) << 31), "rasterize: B*C*N must be below 2^31");
  const auto dt = means.scalar_type();
  for (const at::Tensor* t : {&quats, &scales, &opacities, &colors, &viewmats, &Ks})
    TORCH_CHECK(t->scalar_type() == dt, "rasterize: all inputs must share one dtype (means is ", dt, ", got ",
                t->scalar_type(), ")");
  if (backgrounds.has_value())
    TORCH_CHECK(backgrounds->scalar_type() == dt, "rasterize: backgrounds must have the dtype of means");
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble, "rasterize: expected float32 or float64 inputs, got ", dt);
  for (const at::Tensor* t : {&quats, &scales, &opacities, &colors, &viewmats, &Ks})
    TORCH_CHECK(t->device() == means.device(), "rasterize: all inputs must be on one device");
  return {B, N, C};
}

namespace {

template <typename T>
std::vector<Camera<T>> load_cameras(const at::Tensor& viewmats, const at::Tensor& Ks, int W, int H) {
  const int64_t BC = viewmats.size(0) * viewmats.size(1);
  const T* vm = viewmats.data_ptr<T>();
  const T* K = Ks.data_ptr<T>();
  std::vector<Camera<T>> cams(BC);
  for (int64_t i = 0; i < BC; ++i) cams[i] = load_camera(vm + 16 * i, K + 9 * i, W, H);
  return cams;
}

// Projection of every (scene, view, Gaussian): proj [B, C, N, kProj], valid [B*C*N].
template <typename T>
void project_all(const T* means, const T* quats, const T* scales, const T* opac, const std::vector<Camera<T>>& cams,
                 int64_t B, int64_t C, int64_t N, T* proj, uint8_t* valid) {
  at::parallel_for(0, B * N, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / N, n = i % N;
      const Gaussian<T> g = load_gaussian(means, quats, scales, opac, i);
      T S[9];
      cov3d(g.M, S);
      for (int64_t c = 0; c < C; ++c) {
        const int64_t gid = (b * C + c) * N + n;
        valid[gid] = project(g, cams[b * C + c], S, proj + kProj * gid, static_cast<Projected<T>*>(nullptr));
      }
    }
  });
}

// Every tile's list of the valid Gaussians reaching it, in (depth, index) order. Fills tile_ranges
// [B*C*tiles, 2] and returns the concatenated lists (flat ids bc * N + n). Binning runs in index order
// (sequential reads of proj; a counting pass gives every (chunk, tile) its slice of the output), then each
// tile sorts its own (depth, index) keys: no global sort and no random access in depth order.
template <typename T>
std::vector<int32_t> bin_tiles(const T* proj, const uint8_t* valid, const T* opac, int64_t B, int64_t C, int64_t N,
                               int W, int H, int tiles_x, int tiles_y, int32_t* tile_ranges) {
  const int64_t BC = B * C, TT = int64_t(tiles_x) * tiles_y, BCN = BC * N;
  const int64_t nch = std::max<int64_t>(1, std::min<int64_t>({64, 4 * at::get_num_threads(), BCN}));
  std::vector<int64_t> slot(nch * BC * TT, 0);  // [chunk][bc * TT + tile]: count, then write position
  auto each_tile = [&](int64_t gid, auto&& f) {
    const int64_t bc = gid / N, n = gid - bc * N;
    for_each_tile(proj + kProj * gid, opac[bc / C * N + n], W, H,
                  [&](int tx, int ty) { f(bc * TT + ty * tiles_x + tx); });
  };
  at::parallel_for(0, nch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ++ch) {
      int64_t* cnt = slot.data() + ch * BC * TT;
      for (int64_t gid = BCN * ch / nch; gid < BCN * (ch + 1) / nch; ++gid)
        if (valid[gid]) each_tile(gid, [&](int64_t t) { ++cnt[t]; });
    }
  });
  int64_t total = 0;
  for (int64_t t = 0; t < BC * TT; ++t) {
    tile_ranges[2 * t] = int32_t(total);
    for (int64_t ch = 0; ch < nch; ++ch) {
      int64_t& s = slot[ch * BC * TT + t];
      const int64_t c = s;
      s = total;
      total += c;
    }
    TORCH_CHECK(total < (int64_t(1) << 31), "rasterize: more than 2^31 (Gaussian, tile) pairs");
    tile_ranges[2 * t + 1] = int32_t(total);
  }
  struct Entry {
    T z;
    int32_t gid;
    bool operator<(const Entry& o) const { return z < o.z || (z == o.z && gid < o.gid); }
  };
  std::vector<Entry> entries(total);
  at::parallel_for(0, nch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t ch = begin; ch < end; ++ch) {
      int64_t* pos = slot.data() + ch * BC * TT;
      for (int64_t gid = BCN * ch / nch; gid < BCN * (ch + 1) / nch; ++gid)
        if (valid[gid])
          each_tile(gid, [&](int64_t t) { entries[pos[t]++] = Entry{proj[kProj * gid + 5], int32_t(gid)}; });
    }
  });
  std::vector<int32_t> gids(total);
  at::parallel_for(0, BC * TT, 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      auto first = entries.begin() + tile_ranges[2 * t], last = entries.begin() + tile_ranges[2 * t + 1];
      std::sort(first, last);  // gid = bc * N + n: one image per tile, so ties go by n
      for (auto it = first; it != last; ++it) gids[it - entries.begin()] = it->gid;
    }
  });
  return gids;
}

// The pixels of a tile inside a Gaussian's pixel box: [u0, u1] x [v0, v1] (empty if u0 > u1 or v0 > v1).
template <typename T>
inline void tile_box(const T* pj, int W, int H, int ox, int oy, int* r) {
  int box[4];
  pixel_box(pj, W, H, box);
  r[0] = std::max(box[0], ox);
  r[1] = std::min(box[1], std::min(ox + kTile, W) - 1);
  r[2] = std::max(box[2], oy);
  r[3] = std::min(box[3], std::min(oy + kTile, H) - 1);
}


// Front to back over each tile's list; per pixel the contract's loop (a3d/rasterize.py), visiting only the
// pixels of each Gaussian's box. Outputs are [B*C, H, W, ...]; last = entries of the tile's list up to and
// including the pixel's last included Gaussian (the backward starts there).
template <typename T>
void blend_fwd(const T* proj, const T* opac, const T* colors, const int32_t* ranges, const int32_t* gids, const T* bg,
               int64_t BC, int64_t C, int64_t N, int W, int H, int tiles_x, int tiles_y, T* rgb, T* alpha, T* depth,
               int32_t* last, T* Tfin) {
  const int64_t TT = int64_t(tiles_x) * tiles_y;
  constexpr int P = kTile * kTile;
  at::parallel_for(0, BC * TT, 1, [&](int64_t begin, int64_t end) {
    T Tp[P], acc[P][3], accD[P];
    int32_t cnt[P];
    bool done[P];
    for (int64_t it = begin; it < end; ++it) {
      const int64_t bc = it / TT, t = it % TT, b = bc / C;
      const int ox = int(t % tiles_x) * kTile, oy = int(t / tiles_x) * kTile;
      const int pw = std::min(kTile, W - ox), ph = std::min(kTile, H - oy);
      for (int p = 0; p < P; ++p) {
        Tp[p] = T(1);
        acc[p][0] = acc[p][1] = acc[p][2] = accD[p] = T(0);
        cnt[p] = 0;
        done[p] = false;
      }
      int remaining = pw * ph;
      const int32_t start = ranges[2 * it], stop = ranges[2 * it + 1];
      for (int32_t k = start; k < stop && remaining > 0; ++k) {
        const int64_t gid = gids[k];
        const T* pj = proj + kProj * gid;
        const int64_t gn = b * N + gid % N;
        const T o = opac[gn];
        const T* col = colors + 3 * gn;
        int r[4];
        tile_box(pj, W, H, ox, oy, r);
        for (int v = r[2]; v <= r[3]; ++v)
          for (int u = r[0]; u <= r[1]; ++u) {
            const int p = (v - oy) * kTile + (u - ox);
            if (done[p]) continue;
            T power;
            const T raw = gauss_raw(pj[2], pj[3], pj[4], o, pj[0] - (T(u) + T(0.5)), pj[1] - (T(v) + T(0.5)), &power);
            const T al = std::min(raw, T(kAlphaMax));
            if (power < T(0) || al < T(kAlphaMin)) continue;
            const T nt = Tp[p] * (T(1) - al);
            if (nt <= T(kTMin)) {
              done[p] = true;
              --remaining;
              continue;
            }
            const T w = al * Tp[p];
            for (int ch = 0; ch < 3; ++ch) acc[p][ch] += w * col[ch];
            accD[p] += w * pj[5];
            Tp[p] = nt;
            cnt[p] = k - start + 1;
          }
      }
      for (int v = oy; v < oy + ph; ++v)
        for (int u = ox; u < ox + pw; ++u) {
          const int p = (v - oy) * kTile + (u - ox);
          const int64_t pix = (bc * H + v) * W + u;
          const T Tn = Tp[p];
          for (int ch = 0; ch < 3; ++ch) rgb[3 * pix + ch] = acc[p][ch] + (bg ? Tn * bg[3 * bc + ch] : T(0));
          alpha[pix] = T(1) - Tn;
          depth[pix] = accD[p] / std::max(T(1) - Tn, T(kDepthEps));
          last[pix] = cnt[p];
          Tfin[pix] = Tn;
        }
    }
  });
}

// Back to front over each tile's list: per (tile entry) the gradient summed over the tile's pixels,
// v_entry [P, 10] = d/d(x, y, a, b, c, z, opacity, r, g, b); each entry belongs to one tile, so no races.
template <typename T>
void blend_bwd(const T* proj, const T* opac, const T* colors, const int32_t* ranges, const int32_t* gids, const T* bg,
               const int32_t* last, const T* Tfin, const T* v_rgb, const T* v_alpha, const T* v_dsum, int64_t BC,
               int64_t C, int64_t N, int W, int H, int tiles_x, int tiles_y, T* v_entry) {
  const int64_t TT = int64_t(tiles_x) * tiles_y;
  constexpr int P = kTile * kTile;
  at::parallel_for(0, BC * TT, 1, [&](int64_t begin, int64_t end) {
    T Tp[P], R[P][3], RD[P];
    for (int64_t it = begin; it < end; ++it) {
      const int64_t bc = it / TT, t = it % TT, b = bc / C;
      const int ox = int(t % tiles_x) * kTile, oy = int(t / tiles_x) * kTile;
      const int pw = std::min(kTile, W - ox), ph = std::min(kTile, H - oy);
      const int32_t start = ranges[2 * it], stop = ranges[2 * it + 1];
      int32_t maxlast = 0;
      for (int v = oy; v < oy + ph; ++v)
        for (int u = ox; u < ox + pw; ++u) {
          const int p = (v - oy) * kTile + (u - ox);
          const int64_t pix = (bc * H + v) * W + u;
          Tp[p] = Tfin[pix];
          for (int ch = 0; ch < 3; ++ch) R[p][ch] = bg ? Tfin[pix] * bg[3 * bc + ch] : T(0);
          RD[p] = T(0);
          maxlast = std::max(maxlast, last[pix]);
        }
      for (int32_t k = start + maxlast; k < stop; ++k)
        for (int q = 0; q < 10; ++q) v_entry[10 * int64_t(k) + q] = T(0);
      for (int32_t k = start + maxlast - 1; k >= start; --k) {
        const int64_t gid = gids[k];
        const T* pj = proj + kProj * gid;
        const int64_t gn = b * N + gid % N;
        const T o = opac[gn];
        const T* col = colors + 3 * gn;
        T sum[10] = {};
        int r[4];
        tile_box(pj, W, H, ox, oy, r);
        for (int v = r[2]; v <= r[3]; ++v)
          for (int u = r[0]; u <= r[1]; ++u) {
            const int p = (v - oy) * kTile + (u - ox);
            const int64_t pix = (bc * H + v) * W + u;
            if (k - start >= last[pix]) continue;
            const T dx = pj[0] - (T(u) + T(0.5)), dy = pj[1] - (T(v) + T(0.5));
            T power;
            const T raw = gauss_raw(pj[2], pj[3], pj[4], o, dx, dy, &power);
            const T al = std::min(raw, T(kAlphaMax));
            if (power < T(0) || al < T(kAlphaMin)) continue;
            const T Ti = Tp[p] / (T(1) - al);
            T g[10];
            pixel_vjp(dx, dy, pj[2], pj[3], pj[4], o, raw, al, col, pj[5], Ti, R[p], RD[p], Tfin[pix],
                      v_rgb + 3 * pix, v_alpha[pix], v_dsum[pix], g);
            for (int q = 0; q < 10; ++q) sum[q] += g[q];
            const T w = al * Ti;
            for (int ch = 0; ch < 3; ++ch) R[p][ch] += w * col[ch];
            RD[p] += w * pj[5];
            Tp[p] = Ti;
          }
        for (int q = 0; q < 10; ++q) v_entry[10 * int64_t(k) + q] = sum[q];
      }
    }
  });
}

template <typename T>
std::vector<at::Tensor> rasterize_fwd_impl(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                                           const at::Tensor& opac, const at::Tensor& colors, const at::Tensor& viewmats,
                                           const at::Tensor& Ks, const c10::optional<at::Tensor>& bgs, int64_t B,
                                           int64_t N, int64_t C, int W, int H) {
  const int tiles_x = (W + kTile - 1) / kTile, tiles_y = (H + kTile - 1) / kTile;
  const int64_t BC = B * C, TT = int64_t(tiles_x) * tiles_y;
  const auto opts = means.options();
  at::Tensor proj = at::empty({B, C, N, kProj}, opts);
  std::vector<uint8_t> valid(BC * N);
  const auto cams = load_cameras<T>(viewmats, Ks, W, H);
  project_all(means.data_ptr<T>(), quats.data_ptr<T>(), scales.data_ptr<T>(), opac.data_ptr<T>(), cams, B, C, N,
              proj.data_ptr<T>(), valid.data());
  at::Tensor ranges = at::empty({BC * TT, 2}, opts.dtype(at::kInt));
  std::vector<int32_t> gid_list = bin_tiles(proj.data_ptr<T>(), valid.data(), opac.data_ptr<T>(), B, C, N, W, H,
                                            tiles_x, tiles_y, ranges.data_ptr<int32_t>());
  at::Tensor gids = at::empty({int64_t(gid_list.size())}, opts.dtype(at::kInt));
  std::copy(gid_list.begin(), gid_list.end(), gids.data_ptr<int32_t>());
  at::Tensor rgb = at::empty({B, C, H, W, 3}, opts), alpha = at::empty({B, C, H, W, 1}, opts),
             depth = at::empty({B, C, H, W, 1}, opts), Tfin = at::empty({B, C, H, W}, opts),
             last = at::empty({B, C, H, W}, opts.dtype(at::kInt));
  at::Tensor bg = bgs.has_value() ? bgs->contiguous() : at::Tensor();
  blend_fwd(proj.data_ptr<T>(), opac.data_ptr<T>(), colors.data_ptr<T>(), ranges.data_ptr<int32_t>(),
            gids.data_ptr<int32_t>(), bg.defined() ? bg.data_ptr<T>() : static_cast<T*>(nullptr), BC, C, N, W, H,
            tiles_x, tiles_y, rgb.data_ptr<T>(), alpha.data_ptr<T>(), depth.data_ptr<T>(), last.data_ptr<int32_t>(),
            Tfin.data_ptr<T>());
  return {rgb, alpha, depth, proj, ranges, gids, last, Tfin};
}

template <typename T>
std::vector<at::Tensor> rasterize_bwd_impl(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                                           const at::Tensor& opac, const at::Tensor& colors, const at::Tensor& viewmats,
                                           const at::Tensor& Ks, const c10::optional<at::Tensor>& bgs, int64_t B,
                                           int64_t N, int64_t C, int W, int H, const at::Tensor& proj,
                                           const at::Tensor& ranges, const at::Tensor& gids, const at::Tensor& last,
                                           const at::Tensor& Tfin, const at::Tensor& v_rgb, const at::Tensor& v_alpha,
                                           const at::Tensor& v_dsum) {
  const int tiles_x = (W + kTile - 1) / kTile, tiles_y = (H + kTile - 1) / kTile;
  const int64_t BC = B * C, P = gids.size(0);
  const auto opts = means.options();
  at::Tensor bg = bgs.has_value() ? bgs->contiguous() : at::Tensor();
  at::Tensor v_entry = at::empty({P, 10}, opts);
  blend_bwd(proj.data_ptr<T>(), opac.data_ptr<T>(), colors.data_ptr<T>(), ranges.data_ptr<int32_t>(),
            gids.data_ptr<int32_t>(), bg.defined() ? bg.data_ptr<T>() : static_cast<T*>(nullptr),
            last.data_ptr<int32_t>(), Tfin.data_ptr<T>(), v_rgb.data_ptr<T>(), v_alpha.data_ptr<T>(),
            v_dsum.data_ptr<T>(), BC, C, N, W, H, tiles_x, tiles_y, v_entry.data_ptr<T>());
  // Sum the entries per (view, Gaussian); the entries of one view are contiguous, so views run in parallel.
  at::Tensor v_view = at::zeros({BC * N, 10}, opts);
  {
    const int64_t TT = int64_t(tiles_x) * tiles_y;
    const int32_t* rg = ranges.data_ptr<int32_t>();
    const int32_t* gd = gids.data_ptr<int32_t>();
    const T* ve = v_entry.data_ptr<T>();
    T* vv = v_view.data_ptr<T>();
    at::parallel_for(0, BC, 1, [&](int64_t begin, int64_t end) {
      for (int64_t bc = begin; bc < end; ++bc)
        for (int32_t k = rg[2 * bc * TT]; k < rg[2 * ((bc + 1) * TT - 1) + 1]; ++k)
          for (int q = 0; q < 10; ++q) vv[10 * int64_t(gd[k]) + q] += ve[10 * int64_t(k) + q];
    });
  }
  at::Tensor v_means = at::zeros_like(means), v_quats = at::zeros_like(quats), v_scales = at::zeros_like(scales),
             v_opac = at::zeros_like(opac), v_colors = at::zeros_like(colors);
  const auto cams = load_cameras<T>(viewmats, Ks, W, H);
  const T *mp = means.data_ptr<T>(), *qp = quats.data_ptr<T>(), *sp = scales.data_ptr<T>(), *op = opac.data_ptr<T>();
  const T* vv = v_view.data_ptr<T>();
  T *vm = v_means.data_ptr<T>(), *vq = v_quats.data_ptr<T>(), *vs = v_scales.data_ptr<T>(),
    *vo = v_opac.data_ptr<T>(), *vc = v_colors.data_ptr<T>();
  at::parallel_for(0, B * N, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / N, n = i % N;
      const Gaussian<T> g = load_gaussian(mp, qp, sp, op, i);
      if (!g.ok) continue;
      T S[9], vS[9] = {}, vmean[3] = {};
      cov3d(g.M, S);
      bool any = false;
      for (int64_t c = 0; c < C; ++c) {
        const T* v = vv + 10 * ((b * C + c) * N + n);
        vo[i] += v[6];
        for (int ch = 0; ch < 3; ++ch) vc[3 * i + ch] += v[7 + ch];
        bool nz = false;
        for (int q = 0; q < kVProj; ++q) nz = nz || v[q] != T(0);
        if (!nz) continue;
        Projected<T> pr;
        T tmp[kProj];
        if (!project(g, cams[b * C + c], S, tmp, &pr)) continue;
        project_vjp(cams[b * C + c], pr, S, v, vmean, vS);
        any = true;
      }
      if (!any) continue;
      for (int k = 0; k < 3; ++k) vm[3 * i + k] = vmean[k];
      gaussian_vjp(g, vS, vq + 4 * i, vs + 3 * i);
    }
  });
  return {v_means, v_quats, v_scales, v_opac, v_colors};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>
rasterize_fwd_cpu(const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales,
                  const at::Tensor& opacities, const at::Tensor& colors, const at::Tensor& viewmats,
                  const at::Tensor& Ks, const c10::optional<at::Tensor>& backgrounds, int64_t width, int64_t height) {
  int64_t B, N, C;
  std::tie(B, N, C) = check_rasterize_args(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, width, height);
  std::vector<at::Tensor> r;
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "rasterize_fwd_cpu", [&] {
    r = rasterize_fwd_impl<scalar_t>(means.contiguous(), quats.contiguous(), scales.contiguous(),
                                     opacities.contiguous(), colors.contiguous(), viewmats.contiguous(),
                                     Ks.contiguous(), backgrounds, B, N, C, int(width), int(height));
  });
  return {r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> rasterize_bwd_cpu(
    const at::Tensor& means, const at::Tensor& quats, const at::Tensor& scales, const at::Tensor& opacities,
    const at::Tensor& colors, const at::Tensor& viewmats, const at::Tensor& Ks,
    const c10::optional<at::Tensor>& backgrounds, int64_t width, int64_t height, const at::Tensor& proj,
    const at::Tensor& tile_ranges, const at::Tensor& isect_gids, const at::Tensor& last, const at::Tensor& T_final,
    const at::Tensor& v_rgb, const at::Tensor& v_alpha, const at::Tensor& v_dsum) {
  int64_t B, N, C;
  std::tie(B, N, C) = check_rasterize_args(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds, width, height);
  std::vector<at::Tensor> r;
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "rasterize_bwd_cpu", [&] {
    r = rasterize_bwd_impl<scalar_t>(means.contiguous(), quats.contiguous(), scales.contiguous(),
                                     opacities.contiguous(), colors.contiguous(), viewmats.contiguous(),
                                     Ks.contiguous(), backgrounds, B, N, C, int(width), int(height), proj.contiguous(),
                                     tile_ranges.contiguous(), isect_gids.contiguous(), last.contiguous(),
                                     T_final.contiguous(), v_rgb.contiguous(), v_alpha.contiguous(),
                                     v_dsum.contiguous());
  });
  return {r[0], r[1], r[2], r[3], r[4]};
}

TORCH_LIBRARY_IMPL(a3d, CPU, m) {
  m.impl("rasterize_fwd", &rasterize_fwd_cpu);
  m.impl("rasterize_bwd", &rasterize_bwd_cpu);
}

}  // namespace a3d
