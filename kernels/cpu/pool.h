// kernels/cpu/pool.h — 2-D pooling on NHWC activations, forward and backward.
//
// Layout: x is a contiguous [n, h, w, c] array, the output a contiguous [n, p, q, c] array
// (p, q = output height, width). Every inner loop runs over the contiguous channel dim c, so
// one window position is one vectorised pass over c.
#pragma once

#include <cstdint>

namespace kernels::cpu {

// Window geometry of a max pool: square kernel, same stride and zero-based padding on both
// axes; p = (h + 2*pad - kernel) / stride + 1 and likewise q (floor, PyTorch's ceil_mode=False).
struct PoolShape {
  int64_t n, h, w, c;   // input [n, h, w, c]
  int64_t p, q;         // output height, width
  int64_t kernel, stride, pad;
};

// y[b,i,j,ch] = max over the window of x (padding never wins: it counts as -inf);
// idx[b,i,j,ch] = hh * w + ww of the first maximal element in scan order (rows, then
// columns), NaN winning as in PyTorch. idx is what the backward needs.
template <class T>
void max_pool2d_forward(const PoolShape& s, const T* x, T* y, int64_t* idx);

// dx = 0, then dx[b, idx[b,i,j,ch], ch] += dy[b,i,j,ch] (overlapping windows add up).
template <class T>
void max_pool2d_backward(const PoolShape& s, const T* dy, const int64_t* idx, T* dx);

// torch.nn.AdaptiveAvgPool2d: output cell (i, j) of a [p, q] grid averages input rows
// [floor(i*h/p), ceil((i+1)*h/p)) and columns [floor(j*w/q), ceil((j+1)*w/q)).
// Sums run in double so a large window (a global pool of a big image) stays exact in float.
template <class T>
void adaptive_avg_pool2d_forward(int64_t n, int64_t h, int64_t w, int64_t c, int64_t p, int64_t q,
                                 const T* x, T* y);

// dx[b,hh,ww,ch] = sum over the cells whose window holds (hh, ww) of dy / window size.
template <class T>
void adaptive_avg_pool2d_backward(int64_t n, int64_t h, int64_t w, int64_t c, int64_t p, int64_t q,
                                  const T* dy, T* dx);

}  // namespace kernels::cpu
