#include "engine/ops/elementwise.h"

#include "engine/autograd.h"
#include "engine/ops/reduce.h"
#include "engine/profiler.h"
#include "kernels/cpu/elementwise.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/elementwise.h"
#endif

namespace engine {

using kernels::cpu::BinaryOp;
using kernels::cpu::UnaryOp;

namespace {

void check_pair(const Tensor& a, const Tensor& b, const char* op) {
  check(a.defined() && b.defined(), op, ": undefined tensor argument");
  check(a.dtype() == b.dtype(), op, ": dtype mismatch (", a.dtype(), " and ", b.dtype(), ")");
  check(a.device() == b.device(), op, ": tensors are on different devices (", a.device(),
        " and ", b.device(), ")");
}

// Forward only: out = a op b with broadcasting.
Tensor binary_forward(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  profiler::Range range(name);
  check_pair(a, b, name);
  Shape s = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor ae = a.detach().expand(s), be = b.detach().expand(s);
  Tensor out = Tensor::empty(s, a.dtype(), a.device());
  const int nd = static_cast<int>(s.size());
#ifdef ENGINE_WITH_CUDA
  if (out.device().is_cuda()) {
    kernels::cuda::binary(op, nd, s.data(), ae.raw_data(), ae.strides().data(), be.raw_data(),
                          be.strides().data(), out.raw_data(), out.dtype());
    return out;
  }
#endif
  dispatch_float(a.dtype(), name, [&](auto zero) {
    using T = decltype(zero);
    kernels::cpu::binary<T>(op, nd, s.data(), ae.data<T>(), ae.strides().data(), be.data<T>(),
                            be.strides().data(), out.data<T>());
  });
  return out;
}

Tensor unary_forward(UnaryOp op, const Tensor& x, double p0, double p1, const char* name) {
  profiler::Range range(name);
  check(x.defined(), name, ": undefined tensor argument");
  Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
#ifdef ENGINE_WITH_CUDA
  if (y.device().is_cuda()) {
    kernels::cuda::unary(op, y.numel(), xc.raw_data(), y.raw_data(), y.dtype(), p0, p1);
    return y;
  }
#endif
  dispatch_float(x.dtype(), name, [&](auto zero) {
    using T = decltype(zero);
    kernels::cpu::unary<T>(op, x.numel(), xc.data<T>(), y.data<T>(), T(p0), T(p1));
  });
  return y;
}

// dx = dy * op'(x, y); x or y may be undefined when the derivative does not need it.
Tensor unary_backward(UnaryOp op, const Tensor& x, const Tensor& y, const Tensor& dy, double p0,
                      double p1) {
  Tensor dyc = dy.contiguous();
  Tensor dx = Tensor::empty(dy.shape(), dy.dtype(), dy.device());
#ifdef ENGINE_WITH_CUDA
  if (dx.device().is_cuda()) {
    kernels::cuda::unary_backward(op, dx.numel(), x.defined() ? x.raw_data() : nullptr,
                                  y.defined() ? y.raw_data() : nullptr, dyc.raw_data(),
                                  dx.raw_data(), dx.dtype(), p0, p1);
    return dx;
  }
#endif
  dispatch_float(dy.dtype(), "unary_backward", [&](auto zero) {
    using T = decltype(zero);
    kernels::cpu::unary_backward<T>(op, dx.numel(), x.defined() ? x.data<T>() : nullptr,
                                    y.defined() ? y.data<T>() : nullptr, dyc.data<T>(),
                                    dx.data<T>(), T(p0), T(p1));
  });
  return dx;
}

// Which saved tensors each unary derivative reads (see kernels/cpu/elementwise.cpp).
// ReLU saves its output (the next layer keeps that one anyway), so its input can be freed as
// soon as ReLU has run: in ResNet every BatchNorm and residual-add output (ResNet-50's training
// peak at batch 8 went from 1.35 to 1.20 GB).
bool needs_input(UnaryOp op) {
  return op == UnaryOp::Log || op == UnaryOp::Abs || op == UnaryOp::Clamp ||
         op == UnaryOp::PowScalar;
}
bool needs_output(UnaryOp op) {
  return op == UnaryOp::Exp || op == UnaryOp::Sqrt || op == UnaryOp::Sigmoid ||
         op == UnaryOp::Tanh || op == UnaryOp::Relu;
}

Tensor unary_op(UnaryOp op, const Tensor& x, const char* name, double p0 = 0, double p1 = 0) {
  Tensor y = unary_forward(op, x, p0, p1, name);
  Tensor saved_x = needs_input(op) ? x.detach().contiguous() : Tensor();
  Tensor saved_y = needs_output(op) ? y.detach() : Tensor();
  return record(name, y, {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{unary_backward(op, saved_x, saved_y, g, p0, p1)};
  });
}

Tensor scalar_like(const Tensor& x, double v) { return Tensor::scalar(v, x.dtype(), x.device()); }

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Add, a, b, "add");
  Shape sa = a.shape(), sb = b.shape();
  return record("add", out, {a, b}, [sa, sb](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, sa), sum_to(g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Sub, a, b, "sub");
  Shape sa = a.shape(), sb = b.shape();
  return record("sub", out, {a, b}, [sa, sb](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, sa), sum_to(neg(g), sb)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Mul, a, b, "mul");
  bool ga = a.requires_grad(), gb = b.requires_grad();
  // Save only the operand each gradient needs: d(a*b)/da = b, d(a*b)/db = a.
  Tensor sa = gb ? a.detach() : Tensor(), sb = ga ? b.detach() : Tensor();
  Shape sha = a.shape(), shb = b.shape();
  return record("mul", out, {a, b}, [=](const Tensor& g) {
    return std::vector<Tensor>{ga ? sum_to(mul(g, sb), sha) : Tensor(),
                               gb ? sum_to(mul(g, sa), shb) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Div, a, b, "div");
  bool gb = b.requires_grad();
  Tensor sb = b.detach(), so = gb ? out.detach() : Tensor();
  Shape sha = a.shape(), shb = b.shape();
  return record("div", out, {a, b}, [=](const Tensor& g) {
    Tensor ga = div(g, sb);  // d(a/b)/da = 1/b
    // d(a/b)/db = -a/b^2 = -(a/b)/b
    return std::vector<Tensor>{sum_to(ga, sha), gb ? sum_to(neg(mul(ga, so)), shb) : Tensor()};
  });
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Pow, a, b, "pow");
  Tensor sa = a.detach(), sb = b.detach(), so = out.detach();
  Shape sha = a.shape(), shb = b.shape();
  bool gb = b.requires_grad();
  return record("pow", out, {a, b}, [=](const Tensor& g) {
    // d(a^b)/da = b a^(b-1);  d(a^b)/db = a^b ln a
    Tensor da = mul(g, mul(sb, pow(sa, sub(sb, scalar_like(sb, 1.0)))));
    Tensor db = gb ? sum_to(mul(g, mul(so, log(sa))), shb) : Tensor();
    return std::vector<Tensor>{sum_to(da, sha), db};
  });
}

namespace {
// Gradient of max/min goes to the input that was selected (ties: to `a`, as the kernel picks).
Tensor select_op(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  Tensor out = binary_forward(op, a, b, name);
  Tensor sa = a.detach(), so = out.detach();
  Shape sha = a.shape(), shb = b.shape();
  return record(name, out, {a, b}, [=](const Tensor& g) {
    Tensor mask_a = binary_forward(BinaryOp::Equal, sa, so, "maximum_backward");  // 1 where out = a
    Tensor ga = mul(g, mask_a);
    return std::vector<Tensor>{sum_to(ga, sha), sum_to(sub(g, ga), shb)};
  });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  return select_op(BinaryOp::Maximum, a, b, "maximum");
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return select_op(BinaryOp::Minimum, a, b, "minimum");
}

void add_(const Tensor& dst, const Tensor& src) {
  profiler::Range range("add_");
  check_pair(dst, src, "add_");
  check(broadcast_shapes(dst.shape(), src.shape(), "add_") == dst.shape(), "add_: shape ",
        src.shape(), " cannot be added into shape ", dst.shape());
  if (!dst.is_contiguous()) {  // rare: fall back to a temporary
    dst.copy_(binary_forward(BinaryOp::Add, dst, src, "add_"));
    return;
  }
  // The kernels read a[i] and b[i] before writing out[i], so out may alias a.
  Tensor se = src.detach().expand(dst.shape());
  const int nd = static_cast<int>(dst.dim());
#ifdef ENGINE_WITH_CUDA
  if (dst.device().is_cuda()) {
    kernels::cuda::binary(BinaryOp::Add, nd, dst.shape().data(), dst.raw_data(),
                          dst.strides().data(), se.raw_data(), se.strides().data(),
                          dst.raw_data(), dst.dtype());
    return;
  }
#endif
  dispatch_float(dst.dtype(), "add_", [&](auto zero) {
    using T = decltype(zero);
    kernels::cpu::binary<T>(BinaryOp::Add, nd, dst.shape().data(), dst.data<T>(),
                            dst.strides().data(), se.data<T>(), se.strides().data(),
                            dst.data<T>());
  });
}

Tensor add(const Tensor& a, double b) { return add(a, scalar_like(a, b)); }
Tensor mul(const Tensor& a, double b) { return mul(a, scalar_like(a, b)); }
Tensor pow(const Tensor& a, double e) { return unary_op(UnaryOp::PowScalar, a, "pow", e); }

Tensor neg(const Tensor& x) { return unary_op(UnaryOp::Neg, x, "neg"); }
Tensor exp(const Tensor& x) { return unary_op(UnaryOp::Exp, x, "exp"); }
Tensor log(const Tensor& x) { return unary_op(UnaryOp::Log, x, "log"); }
Tensor sqrt(const Tensor& x) { return unary_op(UnaryOp::Sqrt, x, "sqrt"); }
Tensor abs(const Tensor& x) { return unary_op(UnaryOp::Abs, x, "abs"); }
Tensor relu(const Tensor& x) { return unary_op(UnaryOp::Relu, x, "relu"); }

Tensor add_relu(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::AddRelu, a, b, "add_relu");
  Tensor so = out.detach();
  Shape sa = a.shape(), sb = b.shape();
  return record("add_relu", out, {a, b}, [=](const Tensor& g) {
    const Tensor gm = relu_backward(so, g);
    return std::vector<Tensor>{sum_to(gm, sa), sum_to(gm, sb)};
  });
}

Tensor relu_backward(const Tensor& out, const Tensor& g) {
  check(out.shape() == g.shape(), "relu_backward: output ", out.shape(), " and gradient ",
        g.shape(), " differ in shape");
  return unary_backward(UnaryOp::Relu, Tensor(), out.contiguous(), g, 0, 0);
}
Tensor sigmoid(const Tensor& x) { return unary_op(UnaryOp::Sigmoid, x, "sigmoid"); }
Tensor tanh(const Tensor& x) { return unary_op(UnaryOp::Tanh, x, "tanh"); }
Tensor clamp(const Tensor& x, double low, double high) {
  check(low <= high, "clamp: low ", low, " is greater than high ", high);
  return unary_op(UnaryOp::Clamp, x, "clamp", low, high);
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double b) { return add(a, b); }
Tensor operator-(const Tensor& a, double b) { return add(a, -b); }
Tensor operator*(const Tensor& a, double b) { return mul(a, b); }
Tensor operator/(const Tensor& a, double b) { return mul(a, 1.0 / b); }
Tensor operator*(double a, const Tensor& b) { return mul(b, a); }

}  // namespace engine
