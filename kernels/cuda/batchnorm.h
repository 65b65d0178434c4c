// kernels/cuda/batchnorm.h — BatchNorm on NHWC activations on the GPU: our kernels, and
// cuDNN's batch-norm calls for comparison (kernels::cuda::impl(Family::BatchNorm) picks in
// the engine).
//
// The CUDA twins of kernels/cpu/batchnorm.h: x is a contiguous [m, c] device array (m = N*H*W
// rows, c channels), per-channel vectors are [c]; same formulas and casts as the CPU (column
// sums of shifted data in double, running stats with the unbiased variance). float32 or
// float64; work is queued on kernels::cuda::stream().
#pragma once

#include <cstdint>

#include "kernels/dtype.h"

namespace kernels::cuda {

// Training mode's statistics in one pass over x: mean[ch], invstd[ch] = 1 / sqrt(var + eps) of
// the biased var (sums of x - x[0, ch] in double), and the running statistics updated as
// (1 - momentum) * running + momentum * batch with the unbiased var (m / (m - 1)); either
// running pointer may be null.
void batchnorm_training_stats(int64_t m, int64_t c, const void* x, double eps, double momentum,
                              void* mean, void* invstd, void* running_mean, void* running_var,
                              DType dtype);
// invstd = 1 / sqrt(var + eps) (eval mode, from the running var)
void batchnorm_invstd(int64_t c, const void* var, double eps, void* invstd, DType dtype);
// y = (x - mean) * invstd * weight + bias; weight/bias may be null; residual (may be null): an
// [m, c] array added to it; relu: max(y, 0) fused. As kernels::cpu::batchnorm_forward.
void batchnorm_forward(int64_t m, int64_t c, const void* x, const void* mean, const void* invstd,
                       const void* weight, const void* bias, const void* residual, bool relu,
                       void* y, DType dtype);
// As kernels::cpu::batchnorm_backward: dx, dweight, dbias may each be null; x may be null
// unless dweight, training-mode dx or relu needs it; weight may be null (1); bias is read only
// for relu's mask (the forward's pre-activation > 0, recomputed bit for bit) and may be null.
void batchnorm_backward(int64_t m, int64_t c, const void* x, const void* dy, const void* mean,
                        const void* invstd, const void* weight, const void* bias, bool relu,
                        bool training, void* dx, void* dweight, void* dbias, DType dtype);

// ---- cuDNN (an NHWC descriptor [n, h, w, c]; training in SPATIAL_PERSISTENT mode unless
// cudnn_bn_persistent() is off, runtime.h; eval in SPATIAL) ------------------------------------
// float32 only. weight and bias must be given (the engine passes ones / zeros when the layer
// has no affine part).
bool batchnorm_vendor_takes(DType dtype);
// Training: y, save_mean and save_invstd (the batch's mean and 1/sqrt(var + eps)); running
// stats updated with `momentum` when given (both or neither).
void batchnorm_forward_training_vendor(int64_t n, int64_t h, int64_t w, int64_t c, const void* x,
                                       const void* weight, const void* bias, double momentum,
                                       double eps, void* running_mean, void* running_var, void* y,
                                       void* save_mean, void* save_invstd, DType dtype);
// Eval: y from the running statistics.
void batchnorm_forward_inference_vendor(int64_t n, int64_t h, int64_t w, int64_t c, const void* x,
                                        const void* weight, const void* bias,
                                        const void* running_mean, const void* running_var,
                                        double eps, void* y, DType dtype);
// Training-mode backward from the saved mean / invstd; dx, dweight, dbias all required.
void batchnorm_backward_vendor(int64_t n, int64_t h, int64_t w, int64_t c, const void* x,
                               const void* dy, const void* weight, const void* save_mean,
                               const void* save_invstd, double eps, void* dx, void* dweight,
                               void* dbias, DType dtype);

}  // namespace kernels::cuda
