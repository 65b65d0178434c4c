// kernels/cuda/dropout.h — dropout and drop_path (stochastic depth) on the GPU, with the
// counter-based RNG of kernels/rng.h.
//
// The CUDA twins of kernels/cpu/dropout.h: element i keeps iff rng_uniform(seed, first + i)
// >= p (drop_path: sample s keeps iff rng_uniform(seed, first + s) >= p). The RNG is pure
// integer arithmetic plus one exact scaling, so the GPU draws the very same numbers as the CPU
// and the masks agree bit for bit. Survivors are scaled by `scale` (1/(1-p), 0 when p = 1).
// Contiguous device arrays, float32 or float64; work is queued on kernels::cuda::stream().
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace kernels::cuda {

// mask[i] = keep_i ? scale : 0;  y[i] = x[i] * mask[i]
void dropout_forward(int64_t n, const void* x, uint64_t seed, uint64_t first, double p,
                     double scale, void* y, void* mask, DType dtype);
// dx = dy * mask
void dropout_backward(int64_t n, const void* dy, const void* mask, void* dx, DType dtype);

// x, y: [samples, per_sample]; sample_scale[s] = keep_s ? scale : 0; y[s, :] = x[s, :] * it
void drop_path_forward(int64_t samples, int64_t per_sample, const void* x, uint64_t seed,
                       uint64_t first, double p, double scale, void* y, void* sample_scale,
                       DType dtype);
// dx[s, :] = dy[s, :] * sample_scale[s]
void drop_path_backward(int64_t samples, int64_t per_sample, const void* dy,
                        const void* sample_scale, void* dx, DType dtype);

}  // namespace kernels::cuda
