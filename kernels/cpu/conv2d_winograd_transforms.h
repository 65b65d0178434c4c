// kernels/cpu/conv2d_winograd_transforms.h — the 1-D transforms of Winograd's F(2, 3) and
// F(4, 3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016), which
// conv2d_winograd.cpp applies to the columns and then the rows of each tile.
//
// F(m, 3) computes m outputs of a 3-tap filter from A = m + 2 inputs with A multiplies:
//   y = A^T [ (G g) (.) (B^T d) ]     d: A inputs, g: 3 taps, (.) elementwise
// Each struct below spells out the five products the convolution and its gradients need, with
// the matrix written above each one. Only additions and multiplies by small constants: the
// compiler turns every function into a few vector instructions per channel.
//
//   input        v = B^T d   (A -> A)   the input patch, transformed
//   filter       u = G g     (3 -> A)   the filter, transformed once per call
//   output       y = A^T m   (A -> m)   back from the transformed domain
//   output_grad  e = A dy    (m -> A)   the gradient of m, from the gradient of y
//   filter_grad  dg = G^T du (A -> 3)   the gradient of g, from the gradient of u
//
// F(4, 3) uses the points 0, 1, -1, 2, -2 (and infinity). Its constants are larger (B^T has a
// 5, A^T an 8), so float32 rounding grows: about six times that of F(2, 3) on the shapes of
// tests/engine/conv2d_winograd_test.cpp (at most 18 against 3, in eps x the terms' magnitude).
#pragma once

namespace kernels::cpu::winograd {

// F(2, 3): 2 outputs from 4 inputs, points 0, 1, -1.
struct F2 {
  static constexpr int m = 2, A = 4;

  // B^T = [1  0 -1  0]
  //       [0  1  1  0]
  //       [0 -1  1  0]
  //       [0  1  0 -1]
  template <class T>
  static void input(const T d[4], T v[4]) {
    v[0] = d[0] - d[2];
    v[1] = d[1] + d[2];
    v[2] = d[2] - d[1];
    v[3] = d[1] - d[3];
  }

  // G = [ 1    0    0 ]
  //     [1/2  1/2  1/2]
  //     [1/2 -1/2  1/2]
  //     [ 0    0    1 ]
  template <class T>
  static void filter(const T g[3], T u[4]) {
    u[0] = g[0];
    u[1] = (g[0] + g[1] + g[2]) * T(0.5);
    u[2] = (g[0] - g[1] + g[2]) * T(0.5);
    u[3] = g[2];
  }

  // A^T = [1  1  1  0]
  //       [0  1 -1 -1]
  template <class T>
  static void output(const T s[4], T y[2]) {
    y[0] = s[0] + s[1] + s[2];
    y[1] = s[1] - s[2] - s[3];
  }

  template <class T>
  static void output_grad(const T dy[2], T e[4]) {
    e[0] = dy[0];
    e[1] = dy[0] + dy[1];
    e[2] = dy[0] - dy[1];
    e[3] = -dy[1];
  }

  template <class T>
  static void filter_grad(const T du[4], T dg[3]) {
    dg[0] = du[0] + (du[1] + du[2]) * T(0.5);
    dg[1] = (du[1] - du[2]) * T(0.5);
    dg[2] = (du[1] + du[2]) * T(0.5) + du[3];
  }
};

// F(4, 3): 4 outputs from 6 inputs, points 0, 1, -1, 2, -2.
struct F4 {
  static constexpr int m = 4, A = 6;

  // B^T = [4  0 -5  0  1  0]
  //       [0 -4 -4  1  1  0]
  //       [0  4 -4 -1  1  0]
  //       [0 -2 -1  2  1  0]
  //       [0  2 -1 -2  1  0]
  //       [0  4  0 -5  0  1]
  // Rows 1-2 and 3-4 share their even and odd halves.
  template <class T>
  static void input(const T d[6], T v[6]) {
    const T even4 = d[4] - T(4) * d[2], odd4 = d[3] - T(4) * d[1];
    const T even2 = d[4] - d[2], odd2 = T(2) * (d[3] - d[1]);
    v[0] = T(4) * d[0] - T(5) * d[2] + d[4];
    v[1] = even4 + odd4;
    v[2] = even4 - odd4;
    v[3] = even2 + odd2;
    v[4] = even2 - odd2;
    v[5] = T(4) * d[1] - T(5) * d[3] + d[5];
  }

  // G = [ 1/4    0     0  ]
  //     [-1/6  -1/6  -1/6 ]
  //     [-1/6   1/6  -1/6 ]
  //     [1/24  1/12   1/6 ]
  //     [1/24 -1/12   1/6 ]
  //     [  0     0     1  ]
  template <class T>
  static void filter(const T g[3], T u[6]) {
    const T even = g[0] + g[2], even4 = g[0] + T(4) * g[2], odd2 = T(2) * g[1];
    u[0] = g[0] / T(4);
    u[1] = -(even + g[1]) / T(6);
    u[2] = -(even - g[1]) / T(6);
    u[3] = (even4 + odd2) / T(24);
    u[4] = (even4 - odd2) / T(24);
    u[5] = g[2];
  }

  // A^T = [1  1  1  1  1  0]
  //       [0  1 -1  2 -2  0]
  //       [0  1  1  4  4  0]
  //       [0  1 -1  8 -8  1]
  template <class T>
  static void output(const T s[6], T y[4]) {
    const T sum12 = s[1] + s[2], dif12 = s[1] - s[2];
    const T sum34 = s[3] + s[4], dif34 = s[3] - s[4];
    y[0] = s[0] + sum12 + sum34;
    y[1] = dif12 + T(2) * dif34;
    y[2] = sum12 + T(4) * sum34;
    y[3] = dif12 + T(8) * dif34 + s[5];
  }

  template <class T>
  static void output_grad(const T dy[4], T e[6]) {
    const T even = dy[0] + dy[2], odd = dy[1] + dy[3];
    const T even4 = dy[0] + T(4) * dy[2], odd8 = T(2) * dy[1] + T(8) * dy[3];
    e[0] = dy[0];
    e[1] = even + odd;
    e[2] = even - odd;
    e[3] = even4 + odd8;
    e[4] = even4 - odd8;
    e[5] = dy[3];
  }

  template <class T>
  static void filter_grad(const T du[6], T dg[3]) {
    const T sum12 = du[1] + du[2], dif12 = du[1] - du[2];
    const T sum34 = du[3] + du[4], dif34 = du[3] - du[4];
    dg[0] = du[0] / T(4) - sum12 / T(6) + sum34 / T(24);
    dg[1] = -dif12 / T(6) + dif34 / T(12);
    dg[2] = -sum12 / T(6) + sum34 / T(6) + du[5];
  }
};

// Applies a 1-D transform f (n values in, n_out out) to the columns and then the rows of an
// n x n block: out = F in F^T, where F is f's matrix. Used for the tile's four 2-D transforms.
// The loops are unrolled by force (and callers use `GCC ivdep`, not `omp simd`, on their channel
// loop): only with every index a constant do the small arrays become registers, which the
// channel loop needs to vectorise (`omp simd` would give each array a slot per vector lane).
template <int n, int n_out, class T, class F>
inline void both_axes(const T (&in)[n][n], T (&out)[n_out][n_out], F f) {
  T cols[n_out][n];  // f applied down each column of in
#pragma GCC unroll 8
  for (int j = 0; j < n; ++j) {
    T col[n], res[n_out];
#pragma GCC unroll 8
    for (int i = 0; i < n; ++i) col[i] = in[i][j];
    f(col, res);
#pragma GCC unroll 8
    for (int i = 0; i < n_out; ++i) cols[i][j] = res[i];
  }
#pragma GCC unroll 8
  for (int i = 0; i < n_out; ++i) f(cols[i], out[i]);
}

}  // namespace kernels::cpu::winograd
