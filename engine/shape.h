// engine/shape.h — shapes, strides and the broadcasting rule.
//
// A shape lists sizes outermost first; an image batch is [N, H, W, C] (NHWC). Strides count
// elements (not bytes) to step one index along each dimension; a row-major contiguous tensor
// of shape [N,H,W,C] has strides [H*W*C, W*C, C, 1].
#pragma once

#include <cstdint>
#include <ostream>
#include <vector>

#include "engine/error.h"

namespace engine {

using Shape = std::vector<int64_t>;


int64_t numel(const Shape& s);
Shape contiguous_strides(const Shape& s);
// Wraps a possibly negative dimension index into [0, ndim); throws naming `op` if out of range.
int64_t wrap_dim(int64_t d, int64_t ndim, const char* op);
// NumPy/PyTorch broadcasting: align trailing dims; each pair must be equal or contain a 1.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

// A shape seen around one dim d: [outer, n, inner] with outer = prod(s[:d]), n = s[d],
// inner = prod(s[d+1:]) — how ops along one dim (softmax, cat, index_select) walk memory.
struct Around {
  int64_t outer = 1, n = 1, inner = 1;
};
Around around_dim(const Shape& s, int64_t d);

}  // namespace engine
