// kernels/cpu/indexing.h — concatenation and index-driven copies with their scatter-add
// backwards, on contiguous arrays seen as [outer, n, inner] around the indexed dim.
//
// Every function is instantiated for float, double and int64_t (indices and labels are
// concatenated and selected too); the backwards only for float and double. Indices are
// assumed in range: the engine checks them first and reports the offending value.
// Backwards ADD into dx (an index may repeat, so two outputs can feed one input slot) and
// zero dx first; threads never share an output slot (see indexing.cpp for how work is split).
#pragma once

#include <cstdint>

namespace kernels::cpu {

// out[o, offset + k, i] = src[o, k, i]; src is [outer, n, inner], out is [outer, total, inner].
// cat() calls it once per input; the backward is a slice (no kernel).
template <class T>
void cat_copy(int64_t outer, int64_t n, int64_t inner, const T* src, int64_t total, int64_t offset,
              T* out);

// out[o, j, i] = x[o, index[j], i]   x: [outer, n, inner], index: [m], out: [outer, m, inner]
template <class T>
void index_select_forward(int64_t outer, int64_t n, int64_t inner, const T* x, int64_t m,
                          const int64_t* index, T* out);
// dx = 0; dx[o, index[j], i] += dy[o, j, i]
template <class T>
void index_select_backward(int64_t outer, int64_t n, int64_t inner, int64_t m, const int64_t* index,
                           const T* dy, T* dx);

// out[o, j, i] = x[o, index[o, j, i], i]   x: [outer, n, inner], index/out: [outer, m, inner]
template <class T>
void gather_forward(int64_t outer, int64_t n, int64_t inner, const T* x, int64_t m,
                    const int64_t* index, T* out);
// dx = 0; dx[o, index[o, j, i], i] += dy[o, j, i]
template <class T>
void gather_backward(int64_t outer, int64_t n, int64_t inner, int64_t m, const int64_t* index,
                     const T* dy, T* dx);

}  // namespace kernels::cpu
