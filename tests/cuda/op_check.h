// tests/cuda/op_check.h — one call that checks an op on the GPU against the CPU, forward and
// backward (ggml's test-backend-ops in spirit): the same host inputs go to both devices, the
// outputs are compared, then sum(out * w) with a fixed random w is backpropagated on both and
// every input's gradient is compared. Device blocks are NaN-poisoned by the CudaTest fixture,
// so an element a kernel forgot to write fails the comparison.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tests/cuda/cuda_util.h"

namespace cuda_test {

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct Tolerance {
  double rtol, atol;                      // forward
  double grad_rtol = -1, grad_atol = -1;  // backward (default: the forward's)
};

// The tensors an op sees on one device: float inputs become leaves that require grad.
inline std::vector<Tensor> leaves_on(const std::vector<Tensor>& host, engine::Device d) {
  std::vector<Tensor> out;
  for (const Tensor& x : host) {
    if (!x.defined()) {
      out.push_back(Tensor());
      continue;
    }
    Tensor t = x.detach().to(d);
    if (t.same(x)) t = x.detach().clone();  // never share a leaf between the two runs
    if (t.dtype() != DType::Int64) t.requires_grad_();
    out.push_back(t);
  }
  return out;
}

// Checks f on the GPU against f on the CPU; `what` names the case in failure messages.
inline ::testing::AssertionResult matches_cpu(const OpFn& f, const std::vector<Tensor>& host,
                                              const Tolerance& tol, const std::string& what,
                                              uint64_t seed = 12345) {
  std::vector<Tensor> cpu = leaves_on(host, engine::Device::cpu());
  std::vector<Tensor> gpu = leaves_on(host, kGpu);
  Tensor yc = f(cpu), yg = f(gpu);
  if (!yg.device().is_cuda())
    return ::testing::AssertionFailure() << what << ": the result is on " << yg.device();
  if (auto r = testing_util::all_close(yg, yc, tol.rtol, tol.atol); !r)
    return ::testing::AssertionFailure() << what << " forward: " << r.message();
  if (!yc.requires_grad()) return ::testing::AssertionSuccess();
  Tensor w = host_random(yc.shape(), seed, -1, 1, yc.dtype());
  engine::sum(engine::mul(yc, w)).backward();
  engine::sum(engine::mul(yg, w.to(kGpu))).backward();
  const double grtol = tol.grad_rtol >= 0 ? tol.grad_rtol : tol.rtol;
  const double gatol = tol.grad_atol >= 0 ? tol.grad_atol : tol.atol;
  for (size_t i = 0; i < cpu.size(); ++i) {
    if (!cpu[i].defined() || !cpu[i].requires_grad()) continue;
    Tensor gc = cpu[i].grad(), gg = gpu[i].grad();
    if (gc.defined() != gg.defined())
      return ::testing::AssertionFailure() << what << ": input " << i << " has a gradient on "
                                           << (gc.defined() ? "the CPU" : "the GPU") << " only";
    if (!gc.defined()) continue;
    if (!gg.device().is_cuda())
      return ::testing::AssertionFailure()
             << what << ": gradient " << i << " is on " << gg.device();
    if (auto r = testing_util::all_close(gg, gc, grtol, gatol); !r)
      return ::testing::AssertionFailure()
             << what << " gradient of input " << i << ": " << r.message();
  }
  return ::testing::AssertionSuccess();
}

// Per tensor, max |got - ref| <= tol * max |ref|: for results whose elements' rounding error
// scales with the terms they sum rather than with their own value (TF32 products, whole
// networks), where elementwise tolerances would fail on near-cancelling elements.
inline ::testing::AssertionResult close_to_scale(const Tensor& got, const Tensor& ref,
                                                 double tol) {
  if (!got.defined() || !ref.defined())
    return ::testing::AssertionFailure() << (got.defined() ? "the reference" : "the result")
                                         << " is missing";
  const Tensor g = got.to(engine::Device::cpu()).to(DType::Float64);
  const Tensor r = ref.to(engine::Device::cpu()).to(DType::Float64);
  const double scale = engine::max(engine::abs(r)).item();
  const double err = engine::max(engine::abs(engine::sub(g, r))).item();
  if (err <= tol * scale) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "max error " << err << " against max |ref| " << scale
                                       << " (tolerance " << tol << " of it)";
}

// Selects our kernel or the vendor's for one op family within a scope.
class ImplScope {
 public:
  ImplScope(engine::cuda::Family f, engine::cuda::Impl i) : f_(f), saved_(engine::cuda::impl(f)) {
    engine::cuda::set_impl(f, i);
  }
  ~ImplScope() { engine::cuda::set_impl(f_, saved_); }
  ImplScope(const ImplScope&) = delete;
  ImplScope& operator=(const ImplScope&) = delete;

 private:
  engine::cuda::Family f_;
  engine::cuda::Impl saved_;
};

inline const char* dtype_str(DType t) { return engine::dtype_name(t); }

// f's gradient with respect to each input alone (only that one requires grad, so a fused op's
// backward takes the branch for it), backpropagating g on both devices; undefined inputs are
// skipped. Within rtol = atol = tol of the CPU's.
inline ::testing::AssertionResult each_gradient_alone_matches_cpu(const OpFn& f,
                                                                  const std::vector<Tensor>& host,
                                                                  const Tensor& g, double tol) {
  for (size_t which = 0; which < host.size(); ++which) {
    if (!host[which].defined()) continue;
    std::vector<Tensor> cpu, gpu;
    for (size_t i = 0; i < host.size(); ++i) {
      cpu.push_back(host[i].defined() ? host[i].detach().clone() : Tensor());
      gpu.push_back(host[i].defined() ? host[i].to(kGpu) : Tensor());
    }
    cpu[which].requires_grad_(), gpu[which].requires_grad_();
    f(cpu).backward(g);
    f(gpu).backward(g.to(kGpu));
    if (auto r = testing_util::all_close(gpu[which].grad(), cpu[which].grad(), tol, tol); !r)
      return ::testing::AssertionFailure() << "input " << which << ": " << r.message();
  }
  return ::testing::AssertionSuccess();
}

// f on the GPU against the CPU per tensor, relative to its largest element (close_to_scale): the
// output, then every defined input's gradient of sum(out * w) for a random w. For results whose
// rounding scales with the terms they sum (TF32 products).
inline ::testing::AssertionResult matches_cpu_to_scale(const OpFn& f,
                                                       const std::vector<Tensor>& host,
                                                       double tol, uint64_t seed) {
  std::vector<Tensor> cpu = leaves_on(host, engine::Device::cpu());
  std::vector<Tensor> gpu = leaves_on(host, kGpu);
  Tensor yc = f(cpu), yg = f(gpu);
  if (auto r = close_to_scale(yg, yc, tol); !r)
    return ::testing::AssertionFailure() << "output: " << r.message();
  Tensor w = host_random(yc.shape(), seed, -1, 1, yc.dtype());
  engine::sum(engine::mul(yc, w)).backward();
  engine::sum(engine::mul(yg, w.to(kGpu))).backward();
  for (size_t i = 0; i < cpu.size(); ++i) {
    if (!cpu[i].defined()) continue;
    if (auto r = close_to_scale(gpu[i].grad(), cpu[i].grad(), tol); !r)
      return ::testing::AssertionFailure() << "gradient of input " << i << ": " << r.message();
  }
  return ::testing::AssertionSuccess();
}

// Calls f(path) once per way the GPU runs engine::mlp and engine::layer_norm_mlp: each available
// GEMM implementation with fusion on (the fused path, where our GEMM is selected) and off (the
// composed steps); `path` names it for failure messages.
template <class F>
void for_each_mlp_path(F&& f) {
  for (engine::cuda::Impl impl : available_impls())
    for (bool fusion : {true, false}) {
      ImplScope use(engine::cuda::Family::Gemm, impl);
      engine::set_mlp_fusion(fusion);
      f(std::string(engine::cuda::impl_name(impl)) + (fusion ? " fusion on" : " fusion off"));
      engine::set_mlp_fusion(true);
    }
}

}  // namespace cuda_test
