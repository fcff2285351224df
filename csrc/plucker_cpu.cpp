#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/torch.h>

#include "plucker.h"

namespace a3d {

at::Tensor check_camera_args(const at::Tensor& viewmats, const at::Tensor& Ks, int64_t width, int64_t height) {
  TORCH_CHECK(viewmats.dim() == 3 && viewmats.size(1) == 4 && viewmats.size(2) == 4,
              "plucker_rays: viewmats must be [C, 4, 4], got ", viewmats.sizes());
  TORCH_CHECK(Ks.dim() == 3 && Ks.size(0) == viewmats.size(0) && Ks.size(1) == 3 && Ks.size(2) == 3,
              "plucker_rays: Ks must be [C, 3, 3] with the C of viewmats, got ", Ks.sizes());
  TORCH_CHECK(width > 0 && height > 0, "plucker_rays: width and height must be positive");
  TORCH_CHECK(viewmats.scalar_type() == Ks.scalar_type(), "plucker_rays: viewmats and Ks must share a dtype");
  return at::empty({viewmats.size(0), height, width, 6}, viewmats.options());
}

static at::Tensor plucker_rays_cpu(const at::Tensor& viewmats_in, const at::Tensor& Ks_in, int64_t width,
                                   int64_t height) {
  at::Tensor out = check_camera_args(viewmats_in, Ks_in, width, height);
  const at::Tensor viewmats = viewmats_in.contiguous(), Ks = Ks_in.contiguous();
  const int64_t C = viewmats.size(0), HW = height * width;
  AT_DISPATCH_FLOATING_TYPES(viewmats.scalar_type(), "plucker_rays_cpu", [&] {
    const scalar_t* vm = viewmats.data_ptr<scalar_t>();
    const scalar_t* K = Ks.data_ptr<scalar_t>();
    scalar_t* o = out.data_ptr<scalar_t>();
    at::parallel_for(0, C * height, 1, [&](int64_t begin, int64_t end) {
      for (int64_t row = begin; row < end; ++row) {
        const int64_t c = row / height, v = row % height;
        scalar_t R[9], org[3];
        camera_frame(vm + 16 * c, R, org);
        const scalar_t* k = K + 9 * c;
        for (int64_t u = 0; u < width; ++u)
          plucker_pixel(R, org, k[0], k[4], k[2], k[5], int(u), int(v), o + 6 * (c * HW + v * width + u));
      }
    });
  });
  return out;
}

TORCH_LIBRARY_IMPL(a3d, CPU, m) { m.impl("plucker_rays", &plucker_rays_cpu); }

}  // namespace a3d
