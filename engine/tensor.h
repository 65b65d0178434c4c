// engine/tensor.h — the Tensor: a strided view onto a Storage, plus its autograd state.
//
//   Tensor x = Tensor::randn({8, 56, 56, 64}, gen);   // NHWC activations
//   Tensor y = relu(x + b);                            // engine ops (engine/ops/*.h)
//   y.sum().backward();                                // fills b.grad() if b.requires_grad()
//
// A Tensor is a cheap handle (a shared_ptr); copying one aliases the same data, like PyTorch.
#pragma once

#include <memory>
#include <vector>

#include "engine/device.h"
#include "engine/dtype.h"
#include "engine/shape.h"
#include "engine/storage.h"

namespace engine {

class Generator;
struct Node;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;          // sizes, outermost first; images are [N, H, W, C]
  Shape strides;        // elements (not bytes) to step along each dimension
  int64_t offset = 0;   // elements from storage->data() to element [0,...,0]
  DType dtype = DType::Float32;

  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // filled by backward() on leaves that require grad
  std::shared_ptr<Node> grad_fn;     // the op that produced this tensor (null for leaves)
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation ------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = {});
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = {});
  static Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = {});
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32,
                     Device device = {});
  // Copies host values into a new tensor of the given shape (numel must match).
  static Tensor from_vector(const std::vector<float>& v, const Shape& shape, Device device = {});
  static Tensor from_vector(const std::vector<double>& v, const Shape& shape, Device device = {});
  static Tensor from_vector(const std::vector<int64_t>& v, const Shape& shape, Device device = {});
  static Tensor scalar(double value, DType dtype = DType::Float32, Device device = {});
  // Random tensors drawn from a seeded Generator (engine/random.h).
  static Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::Float32,
                      Device device = {});
  static Tensor rand(const Shape& shape, Generator& gen, double low = 0, double high = 1,
                     DType dtype = DType::Float32, Device device = {});
  static Tensor arange(int64_t n, DType dtype = DType::Float32, Device device = {});

  // ---- metadata ------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return engine::numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  // Pointer to element [0,...,0] (host or device memory, see device()). Checks the dtype.
  template <class T> T* data() const;
  void* raw_data() const;
  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

  // ---- host access (copies from the GPU when needed; for tests, printing and I/O) -------
  std::vector<double> to_vector() const;
  std::vector<float> to_float_vector() const;
  double item() const;  // the value of a one-element tensor

  // ---- conversions (differentiable) ------------------------------------------------------
  Tensor to(Device device) const;
  Tensor to(DType dtype) const;
  Tensor contiguous() const;  // itself when already contiguous, else a packed copy
  Tensor clone() const;       // always a packed copy

  // ---- views (share storage; differentiable) --------------------------------------------
  Tensor view(const Shape& shape) const;     // needs compatible strides; -1 infers one size
  Tensor reshape(const Shape& shape) const;  // view when possible, else copy
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;  // drops `dim`
  Tensor expand(const Shape& shape) const;          // broadcast with stride 0
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;

  // ---- autograd --------------------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  // Marks a leaf as a parameter to differentiate with respect to (returns *this).
  Tensor& requires_grad_(bool on = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const;  // undefined Tensor until backward() reached this leaf
  void set_grad(const Tensor& g) const;
  void zero_grad() const;  // drops the gradient (next backward() starts fresh)
  // Backpropagates from this tensor; without `grad` it must hold one element (seed 1).
  void backward(const Tensor& grad = {}, bool retain_graph = false) const;
  // Same data, cut from the graph.
  Tensor detach() const;

  // ---- in-place (no autograd; for optimizers and initialisation) ------------------------
  void copy_(const Tensor& src) const;  // same shape, any device/dtype
  void fill_(double value) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Makes a tensor sharing `base`'s storage with new shape/strides/offset (no autograd).
Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset);

}  // namespace engine
