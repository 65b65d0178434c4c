// kernels/cpu/conv2d_winograd.h — 3x3 stride-1 convolutions by Winograd's minimal filtering
// F(2x2, 3x3) and F(4x4, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", CVPR 2016).
//
// Layouts as conv2d.h: x [N, H, W, C], w [K, 3, 3, C], y [N, P, Q, K], any padding.
//
// The idea: a 2x2 block of outputs of one filter needs a 4x4 patch of the input. Computed
// directly that is 2*2*9 = 36 multiplies per channel; transformed, it is 16:
//   V = B^T d B   (the 4x4 input patch d, transformed: additions only)
//   U = G g G^T   (the 3x3 filter g, transformed once per call)
//   Y = A^T [ sum over c of U_c (.) V_c ] A    ((.) elementwise, 16 products per channel)
// The sum over channels of the 16 elementwise products is, for each of the 16 positions xi, a
// matrix product over all the tiles and filters at once:
//   M_xi [tiles, K] = V_xi [tiles, C] @ U_xi [C, K]
// so the work is 16 GEMMs with 2.25x fewer multiply-adds than im2col + GEMM (which does 9 per
// output and channel), plus the transforms, which are additions and memory-bound. C is
// contiguous in NHWC, so each transform is a loop over channels that the compiler vectorises.
//
// F(4x4, 3x3) is the same with larger tiles: a 4x4 block of outputs from a 6x6 patch, 36
// products per channel instead of 4*4*9 = 144: 36 GEMMs with 4x fewer multiply-adds than
// im2col. Its GEMMs have 4x fewer rows (one per tile) for the same image, and its transforms
// multiply by up to 8, so it pays on large images and rounds a few times worse (see the tests;
// conv2d.cpp picks the variant per shape and pass, where it was measured faster).
//
// Tiles are processed in chunks whose V and M (A * A x tiles x (C + K) values, A = 4 or 6)
// stay in L2, one contiguous range of tiles per OpenMP thread (as conv2d.cpp's output rows).
//
// Rounding: F(2x2)'s transforms only add and halve, so its error stays within a few times that
// of the direct sum; F(4x4)'s about six times F(2x2)'s (conv2d_winograd_test.cpp measures both).
//
// The data gradient of a 3x3 stride-1 convolution is itself one: dx = conv(dy, w') with the
// filters flipped and transposed, w'[c, r, s, k] = w[k, 2 - r, 2 - s, c], and padding 2 - pad.
// The weight gradient reuses the input transform (below).
#pragma once

#include <cstdint>

#include "kernels/cpu/conv2d.h"

namespace kernels::cpu {

// Which algorithm conv2d_forward / conv2d_backward_data use for the shapes Winograd takes:
// Auto (Winograd where it applies), or always im2col (the tests compare the two).
enum class Conv2dAlgo { Auto, Im2col };
void set_conv2d_algo(Conv2dAlgo algo);
Conv2dAlgo conv2d_algo();

// The output tile: F(2x2, 3x3) or F(4x4, 3x3).
enum class WinogradTile { F2x2, F4x4 };

// 3x3 filters, stride 1, dilation 1, one group, and the output size stride 1 implies.
bool winograd_applies(const Conv2dShape& sh);

// y = conv(x, w) + bias (bias may be null). Requires winograd_applies(sh).
template <class T>
void conv2d_forward_winograd(const Conv2dShape& sh, const T* x, const T* w, const T* bias, T* y,
                             WinogradTile tile = WinogradTile::F2x2, int64_t chunk_bytes = 0);

// dx = d(sum(y * dy)) / dx; overwrites dx. Requires winograd_applies(sh) and pad <= 2.
template <class T>
void conv2d_backward_data_winograd(const Conv2dShape& sh, const T* dy, const T* w, T* dx,
                                   WinogradTile tile = WinogradTile::F2x2,
                                   int64_t chunk_bytes = 0);

// dw = d(sum(y * dy)) / dw; overwrites dw. Requires winograd_applies(sh). The filter
// gradient through the same transforms: with D = A dy A^T per tile (the gradient of M),
//   dU_xi [C, K] = V_xi [tiles, C]^T @ D_xi [tiles, K]   and   dw = G^T dU G.
template <class T>
void conv2d_backward_weight_winograd(const Conv2dShape& sh, const T* x, const T* dy, T* dw,
                                     WinogradTile tile = WinogradTile::F2x2,
                                     int64_t chunk_bytes = 0);

}  // namespace kernels::cpu
