// kernels/cuda/cp_async.cuh — asynchronous global -> shared copies (cp.async, sm_80+) as inline
// PTX, for the TF32 GEMM pipelines (conv2d_tf32.cu, matmul_tf32.cu).
//
// A cp.async copy is issued like a load but does not occupy a register: the data goes straight
// to shared memory while the thread goes on (here: to multiply the slice that already landed).
// Copies issued between two commits form a group; wait<N> blocks until all but the N most
// recently committed groups have landed (for this thread only: a __syncthreads must follow
// before other threads read what it copied).
#pragma once

#include <cuda_runtime.h>

namespace kernels::cuda {

// Copy 16 (or 4) bytes global -> shared; when !valid nothing is read and the destination is
// zero-filled (src-size 0), so `src` only has to be some valid address. 16-byte copies need
// both addresses 16-byte aligned. .cg caches in L2 only (streamed operands), .ca in L1 too.
__device__ __forceinline__ void cp_async16(float* dst, const float* src, bool valid) {
  const unsigned s = unsigned(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(src),
               "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async4(float* dst, const float* src, bool valid) {
  const unsigned s = unsigned(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(src),
               "r"(valid ? 4 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {  // all but the N most recent groups landed
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// The multi-stage pipeline of the TF32 GEMMs (conv2d_tf32.cu, matmul_tf32.cu) over `slices`
// k-slices held in STAGES shared-memory stages:
//   issue(t)    issues this thread's copies of slice t into stage t % STAGES (called for
//               t = 0, 1, 2, ... in order, each once);
//   landed(t)   (optional) may rewrite, in place, the elements of slice t that THIS thread
//               copied: they have landed, and no other thread reads them before the barrier
//               that follows (matmul_tf32.cu applies its GELU fusion here);
//   compute(t)  multiplies slice t from stage t % STAGES.
// STAGES - 1 slices are in flight before the first multiply. One barrier per slice: at step t,
// wait_group(STAGES - 2) + __syncthreads guarantee that slice t has landed for every thread AND
// that every warp has finished step t - 1, whose stage is then refilled with slice
// t + STAGES - 1 while slice t is multiplied. Empty commit groups keep the group count uniform,
// and nothing is left in flight into shared memory when it returns.
template <int STAGES, class Issue, class Landed, class Compute>
__device__ __forceinline__ void pipelined_slices(int slices, Issue&& issue, Landed&& landed,
                                                 Compute&& compute) {
#pragma unroll
  for (int t = 0; t < STAGES - 1; ++t) {
    if (t < slices) issue(t);
    cp_async_commit();
  }
  for (int t = 0; t < slices; ++t) {
    cp_async_wait<STAGES - 2>();
    landed(t);
    __syncthreads();
    if (t + STAGES - 1 < slices) issue(t + STAGES - 1);
    cp_async_commit();
    compute(t);
  }
  cp_async_wait<0>();
}
template <int STAGES, class Issue, class Compute>
__device__ __forceinline__ void pipelined_slices(int slices, Issue&& issue, Compute&& compute) {
  pipelined_slices<STAGES>(slices, issue, [](int) {}, compute);
}

}  // namespace kernels::cuda
