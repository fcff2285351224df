#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>
#include <torch/torch.h>

#include "plucker.h"

namespace a3d {

at::Tensor check_camera_args(const at::Tensor& viewmats, const at::Tensor& Ks, int64_t width, int64_t height);

// One thread per pixel computes its 6 values into shared memory; the block then writes its whole
// contiguous span of the output with consecutive threads on consecutive words. Writing the 24-byte
// records straight from each thread would leave every warp store strided by 24 bytes (6 transactions
// for one word per lane), which held the op to about a quarter of the copy bandwidth.
template <typename T>
__global__ void plucker_rays_kernel(const T* __restrict__ vm, const T* __restrict__ K, int64_t C, int W, int H,
                                    T* __restrict__ out) {
  extern __shared__ unsigned char smem_raw[];
  T* stage = reinterpret_cast<T*>(smem_raw);  // [blockDim.x * 6]
  const int64_t HW = int64_t(H) * W;
  const int64_t total = C * HW;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x;
  const int64_t idx = first + threadIdx.x;
  if (idx < total) {
    const int64_t c = idx / HW;
    const int p = int(idx - c * HW);
    T R[9], o[3];
    camera_frame(vm + 16 * c, R, o);  // a few FLOPs a pixel, far cheaper than the store it feeds
    const T* k = K + 9 * c;
    plucker_pixel(R, o, k[0], k[4], k[2], k[5], p % W, p / W, stage + 6 * threadIdx.x);
  }
  __syncthreads();
  const int64_t n = 6 * min(int64_t(blockDim.x), total - first);
  T* dst = out + 6 * first;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) dst[i] = stage[i];
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
    plucker_rays_kernel<scalar_t><<<blocks, threads, 6 * threads * sizeof(scalar_t), at::cuda::getCurrentCUDAStream()>>>(
        viewmats.data_ptr<scalar_t>(), Ks.data_ptr<scalar_t>(), viewmats.size(0), int(width), int(height),
        out.data_ptr<scalar_t>());
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

TORCH_LIBRARY_IMPL(a3d, CUDA, m) { m.impl("plucker_rays", &plucker_rays_cuda); }

}  // namespace a3d
