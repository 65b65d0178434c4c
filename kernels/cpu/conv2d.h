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
//   dx = col2im(dy @ w)      (gathered per input row: each dx row is summed in one sweep)
//   dw = dy^T @ cols         (accumulated over batch chunks with beta = 1)
// The batch is processed in chunks of output rows so the column buffer stays small (about
// kColumnBytes, reused between calls); a 1x1, stride-1, unpadded conv skips im2col: its
// input IS the column matrix.
//
// Groups: a column row is laid out [G][R][S][C/G], so group g's block is a strided sub-matrix
// (leading dimension R*S*C) and each group is one GEMM with no copies.
// Bias, when given, seeds y before the GEMM (beta = 1); its gradient is a sum the engine does.
//
// 3x3 stride-1 convolutions with 16 or more channels in and out and enough output pixels per
// channel run Winograd's F(2x2, 3x3) or, with many output pixels per channel, F(4x4, 3x3)
// instead (conv2d_winograd.h: 2.25x and 4x fewer multiply-adds; each where it was measured
// faster, see winograd_tile in conv2d.cpp).
// set_conv2d_algo(Conv2dAlgo::Im2col) turns that off.
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

// Size of the im2col buffer. Measured on the build machine (single-threaded, 3x3 convs of
// ResNet's four stages, batch 8): about 2 MB, where the columns stay in L2/L3 between im2col
// writing them and the GEMM reading them, is 10-25% faster than 16-64 MB; but a chunk of
// fewer than ~512 output pixels makes the GEMM itself slower (7x7x512: +12% at 2 MB), so a
// chunk gets at least kMinChunkPixels. The buffer is kept per calling thread between calls.
inline constexpr int64_t kColumnBytes = int64_t{2} << 20;
inline constexpr int64_t kMinChunkPixels = 512;

// The last argument of each function overrides the buffer size in bytes (tests use it to force
// many small chunks; it also selects im2col over Winograd); 0 picks it as above. A chunk is
// never less than one output row.

// y = conv(x, w) + bias; bias may be null.
template <class T>
void conv2d_forward(const Conv2dShape& sh, const T* x, const T* w, const T* bias, T* y,
                    int64_t column_bytes = 0);

// dx = d(sum(y * dy)) / dx; overwrites dx.
template <class T>
void conv2d_backward_data(const Conv2dShape& sh, const T* dy, const T* w, T* dx,
                          int64_t column_bytes = 0);

// dw = d(sum(y * dy)) / dw; overwrites dw.
template <class T>
void conv2d_backward_weight(const Conv2dShape& sh, const T* x, const T* dy, T* dw,
                            int64_t column_bytes = 0);

}  // namespace kernels::cpu
