// kernels/cpu/batchnorm.h — BatchNorm on NHWC activations, forward and backward.
//
// Layout: x is a contiguous [m, c] array with m = N*H*W rows and c channels, so a channel's
// statistics are a column reduction and every inner loop runs over the contiguous c.
// Column sums are split by rows across threads into per-thread partial rows (in double), then
// added up at the end: no atomics, and the result does not depend on scheduling.
#pragma once

#include <cstdint>

namespace kernels::cpu {

// mean[ch] and biased var[ch] of column ch (the statistics training mode normalises with).
// Sums are of x - x[0, ch] (shifted data) in double: exact enough even when |mean| >> std.
template <class T>
void batchnorm_stats(int64_t m, int64_t c, const T* x, T* mean, T* var);

// invstd[ch] = 1 / sqrt(var[ch] + eps)
template <class T>
void batchnorm_invstd(int64_t c, const T* var, double eps, T* invstd);

// running_mean = (1 - momentum) * running_mean + momentum * mean, and likewise running_var with
// the UNBIASED variance var * m / (m - 1), as torch.nn.BatchNorm2d (m > 1 rows).
template <class T>
void batchnorm_update_running(int64_t m, int64_t c, const T* mean, const T* var, double momentum,
                              T* running_mean, T* running_var);

// Training mode's statistics as the CUDA twin computes them in one go: batchnorm_stats,
// invstd from its var, and batchnorm_update_running (either running pointer may be null).
template <class T>
void batchnorm_training_stats(int64_t m, int64_t c, const T* x, double eps, double momentum,
                              T* mean, T* invstd, T* running_mean, T* running_var);

// y = (x - mean) * invstd * weight + bias per channel; weight/bias may be null (no affine).
// residual (may be null): an [m, c] array added after the affine (ResNet's block output: the
// last BatchNorm plus the identity). relu: y = max(y, 0) in the same pass (ResNet's BatchNorm
// -> ReLU, or -> + identity -> ReLU; NaN gives 0 as engine::relu). Each step rounds as the
// separate ops would: the affine (one FMA), then the addition, then the ReLU.
template <class T>
void batchnorm_forward(int64_t m, int64_t c, const T* x, const T* mean, const T* invstd,
                       const T* weight, const T* bias, const T* residual, bool relu, T* y);

// Gradients of batchnorm_forward given dy [m, c] and the mean/invstd used in the forward.
//   training (mean, invstd are the batch's, so they depend on x):
//     dx = weight * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)),  xhat = (x-mean)*invstd
//   eval (running stats, constants): dx = dy * weight * invstd
//   dweight = sum(dy * xhat), dbias = sum(dy) over the m rows, in both modes.
// weight may be null (treated as 1); dx, dweight, dbias may each be null (not wanted); x is
// read only for dweight, training-mode dx or relu and may be null otherwise.
// relu (the forward fused a ReLU): dy is first zeroed where the forward's pre-activation was
// <= 0, recomputed from x, weight and bias with the forward's own arithmetic (bit for bit the
// forward's mask); bias is read only then and may be null (0).
template <class T>
void batchnorm_backward(int64_t m, int64_t c, const T* x, const T* dy, const T* mean,
                        const T* invstd, const T* weight, const T* bias, bool relu,
                        bool training, T* dx, T* dweight, T* dbias);

}  // namespace kernels::cpu
