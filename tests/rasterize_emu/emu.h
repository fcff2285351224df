#pragma once
// Minimal CPU emulation of the CUDA features the rasterizer kernels use: each block's threads run as
// std::threads (blocks one after another), __syncthreads as a barrier, warp shuffles/votes through per-warp
// slots and barriers, atomics under a mutex. For checking kernel logic without a GPU.
#include <atomic>
#include <barrier>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
struct int2 { int x, y; };
struct int4 { int x, y, z, w; };
inline int4 make_int4(int a, int b, int c, int d) { return {a, b, c, d}; }
struct EmuDim { unsigned x = 0; };
namespace emu {
inline thread_local EmuDim tIdx, bIdx;
inline EmuDim bDim;
inline std::barrier<>* block_bar = nullptr;
struct Warp {
  std::barrier<>* bar;
  double vals[32];
  int flags[32];
};
inline std::vector<Warp> warps;
inline std::mutex mu;
inline std::atomic<int> count{0};
}  // namespace emu
#define threadIdx (::emu::tIdx)
#define blockIdx (::emu::bIdx)
#define blockDim (::emu::bDim)
inline void __syncthreads() { emu::block_bar->arrive_and_wait(); }
inline int __syncthreads_count(int p) {
  __syncthreads();
  if (threadIdx.x == 0) emu::count = 0;
  __syncthreads();
  if (p) emu::count++;
  __syncthreads();
  const int r = emu::count;
  __syncthreads();
  return r;
}
template <class T>
T __shfl_xor_sync(unsigned, T v, int off) {
  auto& w = emu::warps[threadIdx.x / 32];
  const int l = threadIdx.x % 32;
  w.vals[l] = double(v);
  w.bar->arrive_and_wait();
  const T r = T(w.vals[l ^ off]);
  w.bar->arrive_and_wait();
  return r;
}
inline bool __any_sync(unsigned, bool p) {
  auto& w = emu::warps[threadIdx.x / 32];
  const int l = threadIdx.x % 32;
  w.flags[l] = p;
  w.bar->arrive_and_wait();
  bool any = false;
  for (int i = 0; i < 32; ++i) any = any || w.flags[i];
  w.bar->arrive_and_wait();
  return any;
}
template <class T>
T atomicAdd(T* a, T v) {
  std::lock_guard<std::mutex> g(emu::mu);
  const T o = *a;
  *a += v;
  return o;
}
inline int atomicMax(int* a, int v) {
  std::lock_guard<std::mutex> g(emu::mu);
  const int o = *a;
  if (v > o) *a = v;
  return o;
}
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline long long __double_as_longlong(double d) { long long u; std::memcpy(&u, &d, 8); return u; }

namespace emu {
// Runs f() as grid x block threads. Kernels with block-level synchronisation get real threads per block.
template <class F>
void launch(unsigned grid, unsigned block, bool sync, F f) {
  bDim.x = block;
  if (!sync) {
    for (unsigned b = 0; b < grid; ++b)
      for (unsigned t = 0; t < block; ++t) {
        bIdx.x = b;
        tIdx.x = t;
        f();
      }
    return;
  }
  std::barrier<> bar(block);
  block_bar = &bar;
  warps.assign(block / 32, Warp{});
  std::vector<std::unique_ptr<std::barrier<>>> wbars;
  for (unsigned w = 0; w < block / 32; ++w) {
    wbars.emplace_back(new std::barrier<>(32));
    warps[w].bar = wbars.back().get();
  }
  for (unsigned b = 0; b < grid; ++b) {
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < block; ++t)
      ts.emplace_back([&, b, t] {
        bIdx.x = b;
        tIdx.x = t;
        f();
      });
    for (auto& th : ts) th.join();
  }
}
}  // namespace emu
