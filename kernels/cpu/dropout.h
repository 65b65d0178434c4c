// kernels/cpu/dropout.h — dropout and drop_path (stochastic depth) with the counter-based RNG
// of kernels/rng.h, on contiguous arrays.
//
// Element i of a call keeps iff rng_uniform(seed, first + i) >= p (drop_path: sample s keeps
// iff rng_uniform(seed, first + s) >= p), where `first` is the counter the engine's Generator
// reserved for this call. The mask is a pure function of (seed, counter), so it does not depend
// on the thread count, and the CUDA kernel reproduces it bit for bit.
// Survivors are scaled by `scale` = 1/(1-p) (the engine passes 0 when p = 1: everything drops).
#pragma once

#include <cstdint>

namespace kernels::cpu {

// mask[i] = keep_i ? scale : 0;  y[i] = x[i] * mask[i]
template <class T>
void dropout_forward(int64_t n, const T* x, uint64_t seed, uint64_t first, double p, T scale, T* y,
                     T* mask);
// dx = dy * mask (the mask saved by the forward)
template <class T>
void dropout_backward(int64_t n, const T* dy, const T* mask, T* dx);

// x, y: [samples, per_sample]; sample_scale[s] = keep_s ? scale : 0; y[s, :] = x[s, :] * it
template <class T>
void drop_path_forward(int64_t samples, int64_t per_sample, const T* x, uint64_t seed,
                       uint64_t first, double p, T scale, T* y, T* sample_scale);
// dx[s, :] = dy[s, :] * sample_scale[s]
template <class T>
void drop_path_backward(int64_t samples, int64_t per_sample, const T* dy, const T* sample_scale,
                        T* dx);

}  // namespace kernels::cpu
