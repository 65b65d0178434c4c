// kernels/cpu/depthwise_conv2d.h — depthwise 2-D convolution (groups == C == K) on NHWC.
//
//   x  [N, H, W, C]   input, channels last (contiguous)
//   w  [C, R, S, 1]   one R x S filter per channel (the [K, R, S, C/groups] layout with K = G = C)
//   y  [N, P, Q, C]   output, sizes as in conv2d.h
//
// Each output channel reads only its own input channel, so there is no GEMM to hand off to:
// im2col would copy R*S values to do R*S multiply-adds with each. These are direct loops with
// the channel dim innermost, where NHWC makes both x and the (re-laid-out [R, S, C]) weight
// contiguous, so the compiler vectorises them; OpenMP splits (n, output row).
//   forward  (version 2): a block of 4 output pixels x 64 bytes of channels is accumulated in
//            registers over all taps, reusing each weight vector 4 times; borders and channel
//            tails take the plain bounds-checked loop (version 1, kept as the fallback).
//   dx       stride 1: the forward kernel on dy with the filter flipped and padding
//            dil*(R-1) - pad (a "full" correlation); other strides: a gather per input row.
//   dw       per-thread [R, S, C] accumulators (each thread owns some output rows), summed at
//            the end; the inner loop reuses one dy vector for 4 taps.
// ConvNeXt's 7x7 pad 3 and 3x3 pad 1 stride-1 blocks are the case this is tuned for.
#pragma once

#include "kernels/cpu/conv2d.h"

namespace kernels::cpu {

// sh.k == sh.c == sh.groups. bias may be null.
template <class T>
void depthwise_conv2d_forward(const Conv2dShape& sh, const T* x, const T* w, const T* bias, T* y);

// Overwrites dx [N, H, W, C].
template <class T>
void depthwise_conv2d_backward_data(const Conv2dShape& sh, const T* dy, const T* w, T* dx);

// Overwrites dw [C, R, S, 1].
template <class T>
void depthwise_conv2d_backward_weight(const Conv2dShape& sh, const T* x, const T* dy, T* dw);

}  // namespace kernels::cpu
