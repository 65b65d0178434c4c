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
//   forward  version 1: one pixel, every tap bounds-checked (borders, channel tails).
//            version 2 (any stride/dilation): 4 output pixels x 64 bytes of channels summed in
//            registers over all taps, each weight vector loaded once for the 4 pixels.
//            version 3 (stride_w = dil_w = 1, 3 or 7 taps wide): per row of taps, the S
//            weight vectors stay in registers and each input column is loaded once for the
//            8 output pixels that read it: ~0.4 loads per FMA instead of ~1.1.
//            version 4 (float32 on CPUs with AVX-512, chosen at run time): version 3 with
//            16-lane vectors and 16 pixels per block, twice the independent sums in flight.
//   dx       stride 1: the forward kernel on dy with the filter flipped and padding
//            dil*(R-1) - pad (a "full" correlation); other strides: a gather per input row.
//   dw       per-thread [R, S, C] accumulators (a static split of the output rows, so the
//            sums do not depend on timing), added up at the end; the inner loop is version 3's
//            register scheme transposed (S tap sums in registers, dy and x loaded once), or
//            one dy vector reused for 4 taps otherwise.
// ConvNeXt's 7x7 pad 3 stride-1 blocks are the case this is tuned for. On the build machine
// (one core, [8,56,56,96], float32, 2026-11-26) the forward takes 3.0 ms with version 4
// (LibTorch's oneDNN: 3.3 ms), 5.6 ms with version 3.
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

// Forward (and dx) version 4 runs where the CPU has AVX-512 (float32, 3 or 7 taps wide,
// stride 1); false forces version 3, which sums in the same order (tests compare them).
void set_depthwise_avx512(bool allowed);
bool depthwise_avx512_available();

}  // namespace kernels::cpu
