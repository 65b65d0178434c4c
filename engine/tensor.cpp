#include "engine/tensor.h"

#include <algorithm>

#include "engine/autograd.h"
#include "engine/memory.h"
#include "engine/profiler.h"
#include "engine/random.h"
#include "kernels/cpu/copy.h"
#include "kernels/rng.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/copy.h"
#endif

namespace engine {

// ---- creation ------------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) check(d >= 0, "empty: negative size in shape ", shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(engine::numel(shape) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_(value);
  return t;
}

namespace {
template <class T>
Tensor from_host(const std::vector<T>& v, const Shape& shape, Device device) {
  check(static_cast<int64_t>(v.size()) == engine::numel(shape), "from_vector: ", v.size(),
        " values cannot fill shape ", shape);
  Tensor t = Tensor::empty(shape, dtype_of<T>(), device);
  copy_bytes(t.raw_data(), device, v.data(), Device::cpu(), v.size() * sizeof(T));
  return t;
}

// Element i = value(i), computed in float64 on the host, as a tensor of `dtype` on `device`.
// float32 and float64 are written straight into the tensor's storage (no staging vector, no
// float64 tensor twice the size of a float32 one on the way); other dtypes convert from float64.
template <class F>
Tensor from_values(const Shape& shape, DType dtype, Device device, F value) {
  const int64_t n = engine::numel(shape);
  const DType host_dtype = dtype == DType::Float32 ? DType::Float32 : DType::Float64;
  Tensor t = Tensor::empty(shape, host_dtype, Device::cpu());
  if (host_dtype == DType::Float32) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(value(i));
  } else {
    double* p = t.data<double>();
    for (int64_t i = 0; i < n; ++i) p[i] = value(i);
  }
  return t.to(dtype).to(device);
}
}  // namespace

Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& s, Device d) {
  return from_host(v, s, d);
}
Tensor Tensor::from_vector(const std::vector<double>& v, const Shape& s, Device d) {
  return from_host(v, s, d);
}
Tensor Tensor::from_vector(const std::vector<int64_t>& v, const Shape& s, Device d) {
  return from_host(v, s, d);
}

Tensor Tensor::scalar(double value, DType dtype, Device device) {
  return full({}, value, dtype, device);
}

Tensor Tensor::randn(const Shape& shape, Generator& gen, DType dtype, Device device) {
  // Drawn on the host in float64 from the counter-based RNG, so CPU and GPU tensors made
  // from the same generator state are identical.
  const uint64_t first = gen.reserve(engine::numel(shape)), seed = gen.seed();
  return from_values(shape, dtype, device,
                     [&](int64_t i) { return kernels::rng_normal(seed, first + i); });
}

Tensor Tensor::rand(const Shape& shape, Generator& gen, double low, double high, DType dtype,
                    Device device) {
  const uint64_t first = gen.reserve(engine::numel(shape)), seed = gen.seed();
  return from_values(shape, dtype, device, [&](int64_t i) {
    return low + (high - low) * kernels::rng_uniform(seed, first + i);
  });
}

Tensor Tensor::arange(int64_t n, DType dtype, Device device) {
  return from_values({n}, dtype, device, [](int64_t i) { return static_cast<double>(i); });
}

// ---- metadata ------------------------------------------------------------------------------

TensorImpl& Tensor::impl() const {
  check(impl_ != nullptr, "use of an undefined (empty) Tensor handle");
  return *impl_;
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    if (shape()[d] == 1) continue;  // a size-1 dim's stride never matters
    if (strides()[d] != expected) return false;
    expected *= shape()[d];
  }
  return true;
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data()) + offset() * dtype_size(dtype());
}

template <class T>
T* Tensor::data() const {
  check(dtype() == dtype_of<T>(), "data<", dtype_name(dtype_of<T>()), ">: the tensor holds ",
        dtype_name(dtype()));
  return static_cast<T*>(raw_data());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template int64_t* Tensor::data<int64_t>() const;

// ---- copies between layouts, dtypes and devices --------------------------------------------

namespace {

// dst (any strides) <- src (any strides, same shape). Both on the CPU.
void copy_cpu(const Tensor& dst, const Tensor& src) {
  const int nd = static_cast<int>(dst.dim());
  auto go = [&](auto* s, auto* d) {
    kernels::cpu::copy_strided(nd, dst.shape().data(), s, src.strides().data(), d,
                               dst.strides().data());
  };
  auto with_dst = [&](auto* s) {
    switch (dst.dtype()) {
      case DType::Float32: return go(s, dst.data<float>());
      case DType::Float64: return go(s, dst.data<double>());
      case DType::Int64: return go(s, dst.data<int64_t>());
    }
  };
  switch (src.dtype()) {
    case DType::Float32: return with_dst(src.data<float>());
    case DType::Float64: return with_dst(src.data<double>());
    case DType::Int64: return with_dst(src.data<int64_t>());
  }
}

void copy_any(const Tensor& dst, const Tensor& src) {
  check(dst.shape() == src.shape(), "copy_: destination shape ", dst.shape(),
        " differs from source shape ", src.shape());
  if (dst.numel() == 0) return;
  if (dst.device().is_cpu() && src.device().is_cpu()) return copy_cpu(dst, src);
#ifdef ENGINE_WITH_CUDA
  if (dst.device() == src.device()) {
    kernels::cuda::copy_strided(static_cast<int>(dst.dim()), dst.shape().data(), src.raw_data(),
                                src.dtype(), src.strides().data(), dst.raw_data(), dst.dtype(),
                                dst.strides().data());
    return;
  }
#endif
  // Across devices: pack on the source device, move the bytes, then convert/scatter there.
  Tensor packed = src.is_contiguous() ? src : src.detach().contiguous();
  Tensor staged = Tensor::empty(src.shape(), src.dtype(), dst.device());
  copy_bytes(staged.raw_data(), dst.device(), packed.raw_data(), src.device(),
             packed.numel() * dtype_size(src.dtype()));
  copy_any(dst, staged);
}

}  // namespace

void Tensor::copy_(const Tensor& src) const { copy_any(*this, src); }

void Tensor::fill_(double value) const {
  profiler::Range range("fill");
  if (device().is_cpu()) {
    Tensor t = *this;
    auto go = [&](auto* p, auto v) {
      if (is_contiguous()) {
        kernels::cpu::fill(p, numel(), v);
      } else {
        Tensor tmp = Tensor::full(shape(), value, dtype());
        copy_any(t, tmp);
      }
    };
    switch (dtype()) {
      case DType::Float32: return go(data<float>(), static_cast<float>(value));
      case DType::Float64: return go(data<double>(), value);
      case DType::Int64: return go(data<int64_t>(), static_cast<int64_t>(value));
    }
  }
#ifdef ENGINE_WITH_CUDA
  Tensor packed = is_contiguous() ? *this : Tensor::empty(shape(), dtype(), device());
  kernels::cuda::fill(packed.raw_data(), dtype(), numel(), value);
  if (!packed.same(*this)) copy_any(*this, packed);
#endif
}

// ---- host access -------------------------------------------------------------------------

std::vector<double> Tensor::to_vector() const {
  Tensor host = Tensor::empty(shape(), DType::Float64);
  copy_any(host, *this);
  const double* p = host.data<double>();
  return std::vector<double>(p, p + host.numel());
}

std::vector<float> Tensor::to_float_vector() const {
  Tensor host = Tensor::empty(shape(), DType::Float32);
  copy_any(host, *this);
  const float* p = host.data<float>();
  return std::vector<float>(p, p + host.numel());
}

double Tensor::item() const {
  check(numel() == 1, "item: the tensor has ", numel(), " elements (shape ", shape(), ")");
  return to_vector()[0];
}

// ---- conversions (differentiable) ------------------------------------------------------------

Tensor Tensor::clone() const {
  profiler::Range range("clone");
  Tensor out = Tensor::empty(shape(), dtype(), device());
  copy_any(out, *this);
  return record("clone", out, {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  profiler::Range range(d.is_cuda() ? "to_device" : "to_host");
  Tensor out = Tensor::empty(shape(), dtype(), d);
  copy_any(out, *this);
  Device from = device();
  return record("to_device", out, {*this},
                [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  profiler::Range range("to_dtype");
  Tensor out = Tensor::empty(shape(), t, device());
  copy_any(out, *this);
  DType from = dtype();
  return record("to_dtype", out, {*this},
                [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

// ---- autograd accessors ----------------------------------------------------------------------

Tensor& Tensor::requires_grad_(bool on) {
  check(is_leaf() || on, "requires_grad_(false) on a non-leaf tensor; use detach()");
  check(dtype() != DType::Int64 || !on, "requires_grad_: an int64 tensor cannot have gradients");
  impl().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }

void Tensor::set_grad(const Tensor& g) const {
  check(!g.defined() || g.shape() == shape(), "set_grad: gradient shape ", g.shape(),
        " differs from tensor shape ", shape());
  impl().grad = g.defined() ? g.impl_ptr() : nullptr;
}

void Tensor::zero_grad() const { impl().grad = nullptr; }

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  run_backward(*this, grad, retain_graph);
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->shape = shape();
  impl->strides = strides();
  impl->offset = offset();
  impl->dtype = dtype();
  return Tensor(std::move(impl));
}

Tensor make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl().storage;
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

}  // namespace engine
