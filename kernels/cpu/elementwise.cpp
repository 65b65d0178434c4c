#include "kernels/cpu/elementwise.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // below this, threads cost more than they save

// Merges adjacent dims that are contiguous with each other in both inputs and the output,
// so a same-shape contiguous op becomes one flat loop and NHWC + bias[C] becomes [NHW, C].
int collapse(int ndim, const int64_t* shape, const int64_t* as, const int64_t* bs,
             std::vector<int64_t>& s, std::vector<int64_t>& sa, std::vector<int64_t>& sb) {
  s.clear(), sa.clear(), sb.clear();
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 1) continue;  // size-1 dims carry no index
    if (!s.empty() && sa.back() == as[d] * shape[d] && sb.back() == bs[d] * shape[d]) {
      s.back() *= shape[d];
      sa.back() = as[d];
      sb.back() = bs[d];
    } else {
      s.push_back(shape[d]);
      sa.push_back(as[d]);
      sb.push_back(bs[d]);
    }
  }
  if (s.empty()) s = {1}, sa = {0}, sb = {0};
  return static_cast<int>(s.size());
}

template <class T, class F>
void binary_loop(int nd, const int64_t* s, const T* a, const int64_t* sa, const T* b,
                 const int64_t* sb, T* out, F f) {
  const int64_t inner = s[nd - 1], ia = sa[nd - 1], ib = sb[nd - 1];
  int64_t rows = 1;
  for (int d = 0; d < nd - 1; ++d) rows *= s[d];
  parallel_for(rows, rows * inner > kParallelMin, [=](int64_t r) {
    int64_t oa = 0, ob = 0, rem = r;
    for (int d = nd - 2; d >= 0; --d) {
      int64_t i = rem % s[d];
      rem /= s[d];
      oa += i * sa[d];
      ob += i * sb[d];
    }
    const T* pa = a + oa;
    const T* pb = b + ob;
    T* po = out + r * inner;
    // The four stride patterns of the inner dim get their own loops so each vectorises.
    if (ia == 1 && ib == 1) {
      for (int64_t j = 0; j < inner; ++j) po[j] = f(pa[j], pb[j]);
    } else if (ia == 1 && ib == 0) {
      const T vb = *pb;
      for (int64_t j = 0; j < inner; ++j) po[j] = f(pa[j], vb);
    } else if (ia == 0 && ib == 1) {
      const T va = *pa;
      for (int64_t j = 0; j < inner; ++j) po[j] = f(va, pb[j]);
    } else {
      for (int64_t j = 0; j < inner; ++j) po[j] = f(pa[j * ia], pb[j * ib]);
    }
  });
}

template <class T, class F>
void map(int64_t n, const T* x, T* y, F f) {
  if (n <= kParallelMin) {  // one thread, no parallel region (see parallel_for)
    for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

// f(in, out, dy) returns dx for one element. x (the op's input) or y (its output) may be null
// when f does not need it; the null tests sit outside the loops, and the pointers are captured by
// value, so each loop vectorises (ReLU's backward, a scalar loop with a mispredicted branch on
// about half its elements, was 11% of a ResNet-50 training step on the CPU).
template <class T, class F>
void map_backward(int64_t n, const T* x, const T* y, const T* dy, T* dx, F f) {
  auto loop = [n, dy, dx](auto grad) {
    if (n <= kParallelMin) {  // one thread, no parallel region (see parallel_for)
      for (int64_t i = 0; i < n; ++i) dx[i] = grad(i, dy[i]);
      return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) dx[i] = grad(i, dy[i]);
  };
  if (x && y) return loop([=](int64_t i, T g) { return f(x[i], y[i], g); });
  if (x) return loop([=](int64_t i, T g) { return f(x[i], T(0), g); });
  if (y) return loop([=](int64_t i, T g) { return f(T(0), y[i], g); });
  loop([=](int64_t, T g) { return f(T(0), T(0), g); });
}

}  // namespace

template <class T>
void binary(BinaryOp op, int ndim, const int64_t* shape, const T* a, const int64_t* a_strides,
            const T* b, const int64_t* b_strides, T* out) {
  for (int d = 0; d < ndim; ++d)
    if (shape[d] == 0) return;
  std::vector<int64_t> s, sa, sb;
  int nd = collapse(ndim, shape, a_strides, b_strides, s, sa, sb);
  auto run = [&](auto f) { binary_loop(nd, s.data(), a, sa.data(), b, sb.data(), out, f); };
  switch (op) {
    case BinaryOp::Add: return run([](T u, T v) { return u + v; });
    case BinaryOp::Sub: return run([](T u, T v) { return u - v; });
    case BinaryOp::Mul: return run([](T u, T v) { return u * v; });
    case BinaryOp::Div: return run([](T u, T v) { return u / v; });
    case BinaryOp::Pow: return run([](T u, T v) { return std::pow(u, v); });
    case BinaryOp::Maximum: return run([](T u, T v) { return u > v || std::isnan(u) ? u : v; });
    case BinaryOp::Minimum: return run([](T u, T v) { return u < v || std::isnan(u) ? u : v; });
    case BinaryOp::Equal: return run([](T u, T v) { return u == v ? T(1) : T(0); });
    case BinaryOp::AddRelu:
      return run([](T u, T v) {
        const T s = u + v;
        return s > T(0) ? s : T(0);  // relu's rule (NaN -> 0)
      });
  }
}

template <class T>
void unary(UnaryOp op, int64_t n, const T* x, T* y, T p0, T p1) {
  switch (op) {
    case UnaryOp::Neg: return map(n, x, y, [](T v) { return -v; });
    case UnaryOp::Exp: return map(n, x, y, [](T v) { return std::exp(v); });
    case UnaryOp::Log: return map(n, x, y, [](T v) { return std::log(v); });
    case UnaryOp::Sqrt: return map(n, x, y, [](T v) { return std::sqrt(v); });
    case UnaryOp::Abs: return map(n, x, y, [](T v) { return std::abs(v); });
    case UnaryOp::Relu: return map(n, x, y, [](T v) { return v > T(0) ? v : T(0); });
    case UnaryOp::Sigmoid: return map(n, x, y, [](T v) { return T(1) / (T(1) + std::exp(-v)); });
    case UnaryOp::Tanh: return map(n, x, y, [](T v) { return std::tanh(v); });
    case UnaryOp::Clamp: return map(n, x, y, [=](T v) { return std::min(std::max(v, p0), p1); });
    case UnaryOp::PowScalar: return map(n, x, y, [=](T v) { return std::pow(v, p0); });
  }
}

template <class T>
void unary_backward(UnaryOp op, int64_t n, const T* x, const T* y, const T* dy, T* dx, T p0,
                    T p1) {
  auto run = [&](auto f) { map_backward(n, x, y, dy, dx, f); };
  switch (op) {
    case UnaryOp::Neg: return run([](T, T, T g) { return -g; });
    case UnaryOp::Exp: return run([](T, T out, T g) { return g * out; });
    case UnaryOp::Log: return run([](T in, T, T g) { return g * (T(1) / in); });
    case UnaryOp::Sqrt: return run([](T, T out, T g) { return g * (T(0.5) / out); });
    case UnaryOp::Abs: return run([](T in, T, T g) { return in > 0 ? g : (in < 0 ? -g : T(0)); });
    // From the output, as PyTorch's threshold_backward(grad, result, 0): y > 0 exactly where
    // x > 0, and saving y instead of x lets the input (often a BatchNorm output nothing else
    // keeps) be freed at once. Selects rather than multiplies: where y is 0 the gradient is 0
    // even if the incoming one is inf or NaN.
    case UnaryOp::Relu: return run([](T, T out, T g) { return out > T(0) ? g : T(0); });
    case UnaryOp::Sigmoid: return run([](T, T out, T g) { return g * (out * (T(1) - out)); });
    case UnaryOp::Tanh: return run([](T, T out, T g) { return g * (T(1) - out * out); });
    // Inside [low, high] the gradient passes; PyTorch also passes it at the boundaries.
    case UnaryOp::Clamp: return run([=](T in, T, T g) { return in >= p0 && in <= p1 ? g : T(0); });
    case UnaryOp::PowScalar:
      return run([=](T in, T, T g) {
        return p0 == T(0) ? T(0) : g * (p0 * std::pow(in, p0 - T(1)));
      });
  }
}

template void binary<float>(BinaryOp, int, const int64_t*, const float*, const int64_t*,
                            const float*, const int64_t*, float*);
template void binary<double>(BinaryOp, int, const int64_t*, const double*, const int64_t*,
                             const double*, const int64_t*, double*);
template void unary<float>(UnaryOp, int64_t, const float*, float*, float, float);
template void unary<double>(UnaryOp, int64_t, const double*, double*, double, double);
template void unary_backward<float>(UnaryOp, int64_t, const float*, const float*, const float*,
                                    float*, float, float);
template void unary_backward<double>(UnaryOp, int64_t, const double*, const double*,
                                     const double*, double*, double, double);

}  // namespace kernels::cpu
