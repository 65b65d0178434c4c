// kernels/cpu/conv2d.h — general 2-D convolution on NHWC activations: im2col + GEMM.
//
//   x  [N, H, W, C]           input, channels last (contiguous)
//   w  [K, R, S, C/G]         K filters of R x S taps over the C/G channels of their group
//   y  [N, P, Q, K]           output; P = (H + 2*pad_h - dil_h*(R-1) - 1) / stride_h + 1
//
// Algorithm (forward): the output pixels are the rows of a "column" matrix whose row holds the
// R*S*C input values that pixel's filters read (im2col). Because C is contiguous in NHWC, each
// tap of a row is one memcpy of C floats (or a zero fill where the tap falls in the padding).
// Then y = cols @ w^T is one GEMM per group through OpenBLAS (kernels/cpu/matmul.h).
//   dx = col2im(dy @ w)      (gathered per input row, so threads never write the same pixel)
//   dw = dy^T @ cols         (accumulated over batch chunks with beta = 1)
// The batch is processed in chunks of output rows so the column buffer stays bounded
// (kColumnBytes, reused between calls); a 1x1, stride-1, unpadded conv skips im2col: its
// input IS the column matrix.
//
// Groups: a column row is laid out [G][R][S][C/G], so group g's block is a strided sub-matrix
// (leading dimension R*S*C) and each group is one GEMM with no copies.
// Bias, when given, seeds y before the GEMM (beta = 1); its gradient is a sum the engine does.
//
// Depthwise convolutions (G == C == K) have their own direct kernel: depthwise_conv2d.h.
#pragma once

#include <cstdint>

namespace kernels::cpu {

struct Conv2dShape {
  int64_t n, h, w, c;  // input  [N, H, W, C]
  int64_t k, r, s;     // weight [K, R, S, C/groups]
  int64_t p, q;        // output [N, P, Q, K] (the caller computes these from the rest)
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;  // zeros added at the top / left (and bottom / right)
  int64_t dil_h = 1, dil_w = 1;
  int64_t groups = 1;
};

// Upper bound on the im2col buffer (bytes); a chunk is never smaller than one output row.
// Each function takes it as a last argument so tests can force many small chunks. The buffer
// is kept per calling thread between calls (see workspace() in conv2d.cpp).
inline constexpr int64_t kColumnBytes = int64_t{16} << 20;

// y = conv(x, w) + bias; bias may be null.
template <class T>
void conv2d_forward(const Conv2dShape& sh, const T* x, const T* w, const T* bias, T* y,
                    int64_t column_bytes = kColumnBytes);

// dx = d(sum(y * dy)) / dx; overwrites dx.
template <class T>
void conv2d_backward_data(const Conv2dShape& sh, const T* dy, const T* w, T* dx,
                          int64_t column_bytes = kColumnBytes);

// dw = d(sum(y * dy)) / dw; overwrites dw.
template <class T>
void conv2d_backward_weight(const Conv2dShape& sh, const T* x, const T* dy, T* dw,
                            int64_t column_bytes = kColumnBytes);

}  // namespace kernels::cpu
