// kernels/cuda/layernorm.h — LayerNorm over the last dim on the GPU, forward and backward.
// Algorithms and roofline: layernorm.cu.
//
// Layout: x is a contiguous [rows, C] array of device memory: rows = N*H*W positions of an NHWC
// tensor (ConvNeXt's LayerNorm2d normalises the channels of each pixel), or the samples of an
// [N, C] batch. float32 only; every function queues work on `stream` and does not synchronise;
// bad arguments and launch failures throw std::runtime_error.
// version: 0 = the fastest (what the engine uses, currently 3), or 1, 2, 3.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace kernels::cuda {

inline constexpr int kLayernormVersions = 3;

// y = (x - mean) * rstd * w + b per row, rstd = 1 / sqrt(biased variance + eps).
// w, b [C] may be null (no affine: 1 and 0); mean, rstd [rows] may be null (not saved); y may
// be null when mean and rstd are not (the statistics only: engine::layer_norm_mlp, whose GEMM
// applies them as it loads x).
void layernorm_forward(int version, const float* x, const float* w, const float* b, float* y,
                       float* mean, float* rstd, int64_t rows, int C, float eps,
                       cudaStream_t stream);

// Bytes of scratch layernorm_backward needs (per-block dw/db partial rows; 0 for some versions).
size_t layernorm_backward_workspace(int version, int64_t rows, int C);

// With xhat = (x - mean) * rstd and g = dy * w:
//   dx = rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)),  dw = sum_rows dy * xhat,
//   db = sum_rows dy.
// mean, rstd: the forward's. w may be null (1); dx, dw, db may each be null (not wanted).
// dw/db are overwritten, not accumulated. workspace: at least ..._workspace() bytes, or null to
// have it allocated with cudaMallocAsync on `stream`.
void layernorm_backward(int version, const float* x, const float* dy, const float* mean,
                        const float* rstd, const float* w, float* dx, float* dw, float* db,
                        int64_t rows, int C, void* workspace, cudaStream_t stream);

}  // namespace kernels::cuda
