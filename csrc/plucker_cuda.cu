#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>
#include <torch/torch.h>

#include "plucker.h"

namespace a3d {

at::Tensor check_camera_args(const at::Tensor& viewmats, const at::Tensor& Ks, int64_t width, int64_t height);

// One thread per pixel; the per-camera frame is rebuilt per thread (a few FLOPs, far cheaper than the
// 24-byte store it feeds, and it keeps the kernel a single pass over the output).
template <typename T>
__global__ void plucker_rays_kernel(const T* __restrict__ vm, const T* __restrict__ K, int64_t C, int W, int H,
                                    T* __restrict__ out) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t HW = int64_t(H) * W;
  if (idx >= C * HW) return;
  const int64_t c = idx / HW;
  const int p = int(idx - c * HW);
  T R[9], o[3];
  camera_frame(vm + 16 * c, R, o);
  const T* k = K + 9 * c;
  T r[6];
  plucker_pixel(R, o, k[0], k[4], k[2], k[5], p % W, p / W, r);
  T* dst = out + 6 * idx;
#pragma unroll
  for (int i = 0; i < 6; ++i) dst[i] = r[i];
}

static at::Tensor plucker_rays_cuda(const at::Tensor& viewmats_in, const at::Tensor& Ks_in, int64_t width,
                                    int64_t height) {
  TORCH_CHECK(viewmats_in.is_cuda() && Ks_in.is_cuda(), "plucker_rays: viewmats and Ks must be on one CUDA device");
  const c10::cuda::CUDAGuard guard(viewmats_in.device());
  at::Tensor out = check_camera_args(viewmats_in, Ks_in, width, height);
  const at::Tensor viewmats = viewmats_in.contiguous(), Ks = Ks_in.contiguous();
  const int64_t total = viewmats.size(0) * width * height;
  if (total == 0) return out;
  const int threads = 256;
  const int64_t blocks = (total + threads - 1) / threads;
  AT_DISPATCH_FLOATING_TYPES(viewmats.scalar_type(), "plucker_rays_cuda", [&] {
    plucker_rays_kernel<scalar_t><<<blocks, threads, 0, at::cuda::getCurrentCUDAStream()>>>(
        viewmats.data_ptr<scalar_t>(), Ks.data_ptr<scalar_t>(), viewmats.size(0), int(width), int(height),
        out.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

TORCH_LIBRARY_IMPL(a3d, CUDA, m) { m.impl("plucker_rays", &plucker_rays_cuda); }

}  // namespace a3d
