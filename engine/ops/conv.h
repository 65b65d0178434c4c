// engine/ops/conv.h — 2-D convolution on NHWC activations.
//
//   x      [N, H, W, C]            activations, channels last
//   weight [K, R, S, C / groups]   K filters of R x S taps (DESIGN.md: [out, kh, kw, in/groups])
//   bias   [K] or undefined
//   out    [N, P, Q, K] with P = (H + 2*pad_h - dil_h*(R-1) - 1) / stride_h + 1 (same for Q)
// groups == C == K is a depthwise convolution (ConvNeXt's 7x7), which runs its own kernel.
#pragma once

#include <cstdint>

#include "engine/tensor.h"

namespace engine {

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;

  // Square kernels as torch.nn.Conv2d(stride=s, padding=p, dilation=d, groups=g).
  static Conv2dParams make(int64_t stride = 1, int64_t padding = 0, int64_t dilation = 1,
                           int64_t groups = 1) {
    return {stride, stride, padding, padding, dilation, dilation, groups};
  }
};

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = {},
              const Conv2dParams& params = {});

}  // namespace engine
