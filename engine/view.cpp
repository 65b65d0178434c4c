// engine/view.cpp — Tensor views: new shape/strides/offset over the same Storage.
//
// Each view is differentiable: its backward maps the gradient of the view back onto the
// shape of the base (reshape back, inverse permutation, scatter into zeros, sum over
// broadcast dims).
#include <algorithm>
#include <numeric>

#include "engine/autograd.h"
#include "engine/ops/reduce.h"

namespace engine {

namespace {

Shape infer_shape(const Shape& requested, int64_t n, const char* op, const Shape& from) {
  Shape s = requested;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      check(infer < 0, op, ": only one dimension can be -1 in ", requested);
      infer = static_cast<int64_t>(i);
    } else {
      check(s[i] >= 0, op, ": invalid size in ", requested);
      known *= s[i];
    }
  }
  if (infer >= 0) {
    check(known > 0 && n % known == 0, op, ": cannot view shape ", from, " as ", requested);
    s[infer] = n / known;
  }
  check(numel(s) == n, op, ": cannot view shape ", from, " (", n, " elements) as ", requested);
  return s;
}

// Strides for viewing (shape, strides) as new_shape without copying, or an empty result when
// impossible. Walks groups of old dims that are laid out contiguously with one another
// (the same rule PyTorch uses).
bool view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape,
                  Shape& out) {
  out.assign(new_shape.size(), 0);
  if (numel(shape) == 0 || shape.empty()) {
    out = contiguous_strides(new_shape);
    return true;
  }
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        view_d--;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Tensor record_view(const char* name, Tensor out, const Tensor& base, BackwardFn fn) {
  return record(name, std::move(out), {base}, std::move(fn));
}

}  // namespace

Tensor Tensor::view(const Shape& requested) const {
  Shape s = infer_shape(requested, numel(), "view", shape());
  Shape st;
  check(view_strides(shape(), strides(), s, st), "view: shape ", shape(), " with strides ",
        strides(), " cannot be viewed as ", s, " without a copy; use reshape()");
  Shape from = shape();
  return record_view("view", make_view(*this, s, st, offset()), *this,
                     [from](const Tensor& g) { return std::vector<Tensor>{g.reshape(from)}; });
}

Tensor Tensor::reshape(const Shape& requested) const {
  Shape s = infer_shape(requested, numel(), "reshape", shape());
  Shape st;
  if (view_strides(shape(), strides(), s, st)) return view(s);
  return contiguous().view(s);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  check(static_cast<int64_t>(dims.size()) == dim(), "permute: got ", dims.size(),
        " dims for a tensor of shape ", shape());
  Shape s(dims.size()), st(dims.size());
  std::vector<int64_t> inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    check(inverse[d] < 0, "permute: dimension ", d, " appears twice");
    inverse[d] = static_cast<int64_t>(i);
    s[i] = shape()[d];
    st[i] = strides()[d];
  }
  return record_view("permute", make_view(*this, s, st, offset()), *this,
                     [inverse](const Tensor& g) { return std::vector<Tensor>{g.permute(inverse)}; });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  std::vector<int64_t> dims(dim());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[wrap_dim(d0, dim(), "transpose")], dims[wrap_dim(d1, dim(), "transpose")]);
  return permute(dims);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  d = wrap_dim(d, dim(), "slice");
  check(step > 0, "slice: step must be positive, got ", step);
  int64_t n = shape()[d];
  auto clampi = [n](int64_t i) { return std::clamp(i < 0 ? i + n : i, int64_t{0}, n); };
  start = clampi(start);
  end = std::max(clampi(end), start);
  Shape s = shape(), st = strides();
  s[d] = (end - start + step - 1) / step;
  st[d] *= step;
  Tensor out = make_view(*this, s, st, offset() + start * strides()[d]);
  Shape from = shape();
  DType dt = dtype();
  Device dev = device();
  return record_view("slice", out, *this, [=](const Tensor& g) {
    Tensor full = Tensor::zeros(from, dt, dev);
    full.slice(d, start, end, step).copy_(g);
    return std::vector<Tensor>{full};
  });
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  int64_t n = shape()[d];
  check(index >= -n && index < n, "select: index ", index, " is out of range for dimension ", d,
        " of size ", n);
  if (index < 0) index += n;
  return slice(d, index, index + 1).squeeze(d);
}

Tensor Tensor::expand(const Shape& target) const {
  check(static_cast<int64_t>(target.size()) >= dim(), "expand: cannot expand shape ", shape(),
        " to fewer dimensions ", target);
  size_t lead = target.size() - shape().size();
  Shape s(target.size()), st(target.size());
  for (size_t i = 0; i < target.size(); ++i) {
    if (i < lead) {
      check(target[i] >= 0, "expand: invalid size in ", target);
      s[i] = target[i];
      st[i] = 0;
      continue;
    }
    int64_t have = shape()[i - lead];
    int64_t want = target[i] == -1 ? have : target[i];
    check(have == want || have == 1, "expand: shape ", shape(), " cannot be expanded to ", target);
    s[i] = want;
    st[i] = (have == want) ? strides()[i - lead] : 0;
  }
  if (s == shape()) return *this;
  Shape from = shape();
  return record_view("expand", make_view(*this, s, st, offset()), *this,
                     [from](const Tensor& g) { return std::vector<Tensor>{sum_to(g, from)}; });
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape();
  s.insert(s.begin() + d, 1);
  return view(s);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  if (shape()[d] != 1) return *this;
  Shape s = shape();
  s.erase(s.begin() + d);
  return view(s);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  start_dim = wrap_dim(start_dim, dim(), "flatten");
  end_dim = wrap_dim(end_dim, dim(), "flatten");
  check(start_dim <= end_dim, "flatten: start_dim ", start_dim, " is after end_dim ", end_dim);
  Shape s(shape().begin(), shape().begin() + start_dim);
  int64_t m = 1;
  for (int64_t i = start_dim; i <= end_dim; ++i) m *= shape()[i];
  s.push_back(m);
  s.insert(s.end(), shape().begin() + end_dim + 1, shape().end());
  return reshape(s);
}

}  // namespace engine
