// kernels/cuda/gelu_math.cuh — GELU (erf form) and its derivative at one point, on the device,
// for float and double: the GELU kernels (gelu.cu, gelu_ops.cu) and the GEMM fusions that apply
// GELU as they load an operand or store a result (matmul.cu, matmul_tf32.cu) call these, so a
// fused and an unfused path compute the same function.
//   gelu(x)  = x * Phi(x),  Phi(x) = 0.5 * erfc(-x / sqrt 2)
//   gelu'(x) = Phi(x) + x * phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
// Phi is 0.5 * erfc(-x/sqrt 2), not 0.5 * (1 + erf(x/sqrt 2)): for x << 0 the sum 1 + erf cancels
// to a few ulps of 1 (gelu(-5) = -1.4e-6 would carry ~10% error); erfc keeps full relative
// precision in the tail (kernels/cpu/gelu.cpp computes it the same way).
#pragma once

#include <cuda_runtime.h>

namespace kernels::cuda {

__device__ __forceinline__ float gelu_at(float x) {
  return 0.5f * x * erfcf(-x * 0.70710678118654752f);
}
__device__ __forceinline__ float gelu_grad_at(float x) {
  const float cdf = 0.5f * erfcf(-x * 0.70710678118654752f);
  const float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
  return fmaf(x, pdf, cdf);
}
__device__ __forceinline__ double gelu_at(double x) {
  return 0.5 * x * erfc(-x * 0.70710678118654752440);
}
__device__ __forceinline__ double gelu_grad_at(double x) {
  const double cdf = 0.5 * erfc(-x * 0.70710678118654752440);
  const double pdf = 0.39894228040143267794 * exp(-0.5 * x * x);
  return fma(x, pdf, cdf);
}

}  // namespace kernels::cuda
