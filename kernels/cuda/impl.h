// kernels/cuda/impl.h — our kernel or the vendor's, per op family.
//
// One switch per op family that has both our kernel and a cuBLAS/cuDNN one. The default is
// per family (the vendor's until ours is measured faster, see tools/gpu_check.sh);
// ENGINE_CUDA_IMPL_<NAME>=ours|vendor overrides it at first use, set_impl() at any time.
// Plain C++ (no CUDA headers), so the engine's public headers can re-export it.
#pragma once

namespace kernels::cuda {

// Gemm: matmul (cuBLAS). Conv: general conv2d, Depthwise: groups == C == K conv2d (cuDNN).
// BatchNorm: batch_norm (cuDNN's batch-norm calls). Pool: max_pool2d and the average pools
// (cuDNN pooling). Where the vendor cannot take a case (float64 for the cuDNN families,
// adaptive windows that do not tile the input, a convolution for which cuDNN offers no
// deterministic FMA algorithm: see conv2d_ops.h) our kernel runs. (cuDNN 9's
// CUDNN_BN_MIN_EPSILON is 0, so every eps the engine accepts goes to cuDNN.)
enum class Family { Gemm, Conv, Depthwise, BatchNorm, Pool, kCount };
enum class Impl { Ours, Vendor };

const char* family_name(Family f);  // "GEMM", "CONV", ...: the <NAME> of the environment variable
const char* impl_name(Impl i);      // "ours" / "vendor"
Impl impl(Family f);                // fails on a bad ENGINE_CUDA_IMPL_<NAME> value
void set_impl(Family f, Impl i);

}  // namespace kernels::cuda
