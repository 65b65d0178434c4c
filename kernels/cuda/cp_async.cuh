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

}  // namespace kernels::cuda
