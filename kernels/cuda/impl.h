// kernels/cuda/impl.h — our kernel or the vendor's, per op family.
//
// One switch per op family that has both our kernel and a cuBLAS/cuDNN one. The default is
// per family (the vendor's until ours is measured faster, see tools/gpu_check.sh);
// ENGINE_CUDA_IMPL_<NAME>=ours|vendor overrides it at first use, set_impl() at any time.
// Plain C++ (no CUDA headers), so the engine's public headers can re-export it.
#pragma once

namespace kernels::cuda {

enum class Family { Gemm, kCount };
enum class Impl { Ours, Vendor };

const char* family_name(Family f);  // "GEMM": the <NAME> of the environment variable
const char* impl_name(Impl i);      // "ours" / "vendor"
Impl impl(Family f);                // fails on a bad ENGINE_CUDA_IMPL_<NAME> value
void set_impl(Family f, Impl i);

}  // namespace kernels::cuda
