// engine/ops/mlp.h — ConvNeXt's MLP (its "inverted bottleneck") as one op:
//
//   mlp(x, w1, b1, w2) = gelu(x @ w1^T + b1) @ w2^T
//
// x [..., C] (channels last), w1 [H, C], b1 [H], w2 [C_out, H] -> [..., C_out]. In torchvision's
// CNBlock these are block.3 (Linear C -> 4C), block.4 (GELU) and block.5 (Linear 4C -> C)
// without block.5's bias, which engine::scaled_residual adds together with the layer scale.
// It equals linear(bias_gelu(linear(x, w1), b1), w2) — the composed twin the tests hold it to —
// but keeps one 4C-wide activation for the backward instead of two: the GELU's output is never
// saved, the backward recomputes it from the pre-activation h (whose slope it needs anyway)
// for the second Linear's weight gradient, sharing the erfc. ConvNeXt-T at batch 64 keeps
// ~2.2 GB less this way (the 4C activations of its 18 blocks). On the composed path the price
// is one more 4C-wide write in the backward (the recomputed output); the fused path below
// writes no GELU output at all.
//
// On the GPU with our GEMM selected (kernels::cuda::impl(Family::Gemm) == Ours) nothing
// 4C-wide is written but h, and nothing read twice: the first GEMM adds b1 in its epilogue,
// the second applies GELU to h as it loads it, the backward's dy @ w2 multiplies by gelu'(h) in
// its epilogue (and, with TF32, sums its columns into b1's gradient there), and the weight
// gradient applies GELU to h as it loads it (kernels::cuda::gemm_fused). Elsewhere (CPU,
// cuBLAS) the steps are separate kernels.
#pragma once

#include "engine/tensor.h"

namespace engine {

Tensor mlp(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2);

// ConvNeXt's LayerNorm and MLP (block.2 to block.5) as one op:
//
//   layer_norm_mlp(x, ln_weight, ln_bias, eps, w1, b1, w2)
//     = mlp(layer_norm(x, ln_weight, ln_bias, eps), w1, b1, w2)
//
// ln_weight and ln_bias [C] may be undefined (no affine). It keeps x and the LayerNorm's mean
// and rstd per row for the backward, not the LayerNorm's output, which the composition keeps
// as mlp's input (layer_norm itself keeps x): one C-wide activation less per ConvNeXt block.
// On the GPU's fused path the LayerNorm's output is never written: a LayerNorm pass computes
// the statistics only, and the first GEMM (and the first weight gradient's) normalise x as
// they load it (GemmFusion::norm_a / norm_b). Elsewhere the output is written in the forward,
// freed after the first GEMM, and recomputed from x in the backward for the first weight
// gradient: one pass over x more than the composition.
Tensor layer_norm_mlp(const Tensor& x, const Tensor& ln_weight, const Tensor& ln_bias, double eps,
                      const Tensor& w1, const Tensor& b1, const Tensor& w2);

// Whether the GPU may take the fused path (default on; it also needs our GEMM selected). Off,
// the GPU runs the composed steps with whichever GEMM is selected: tests use it to check that
// path on our GEMM too (the emulator has no cuBLAS). Process-wide; not for use during a step.
void set_mlp_fusion(bool on);
bool mlp_fusion();

}  // namespace engine
