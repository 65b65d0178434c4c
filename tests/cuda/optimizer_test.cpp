// CUDA optimizer steps against the CPU's fused kernels: SGD (momentum, dampening, Nesterov,
// weight decay) and Adam / AdamW over many parameters of awkward sizes, in two groups, for
// three steps. The parameter list is built to exercise the multi-tensor launch: more than 64
// tensors (two tables), one tensor split across many 65536-element chunks, empty and
// one-element tensors, float32 and float64 (one launch list each). The composed engine-op
// twin (fused = false) on the GPU must agree too.
#include "nn/optimizer.h"

#include <memory>

#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using CudaOptimizer = CudaTest;

// 70 small tensors + a 300001-element one + an empty and a scalar one, float32 and float64.
std::vector<Tensor> make_params(uint64_t seed) {
  std::vector<Tensor> ps;
  for (int i = 0; i < 70; ++i) ps.push_back(host_random({1 + (i * 37) % 129}, seed + i));
  ps.push_back(host_random({300001}, seed + 100));
  ps.push_back(Tensor::zeros({0}));
  ps.push_back(host_random({}, seed + 101));
  ps.push_back(host_random({3, 5}, seed + 102, -1, 1, DType::Float64));
  ps.push_back(host_random({70000}, seed + 103, -1, 1, DType::Float64));
  return ps;
}

std::vector<Tensor> leaves(const std::vector<Tensor>& host, engine::Device d) {
  std::vector<Tensor> out;
  for (const Tensor& p : host) {
    Tensor t = p.detach().to(d);
    if (t.same(p)) t = p.detach().clone();
    out.push_back(t.requires_grad_());
  }
  return out;
}

// The first 40 parameters in a group with its own lr and weight decay, the rest in another.
std::vector<nn::ParamGroup> groups_of(const std::vector<Tensor>& ps) {
  nn::ParamGroup a, b;
  for (size_t i = 0; i < ps.size(); ++i) (i < 40 ? a : b).params.push_back(ps[i]);
  a.lr = 0.05, a.weight_decay = 0.01;
  return {a, b};
}

// Three steps with fresh gradients each time (the same on both devices); compares the
// parameters after every step.
template <class MakeOpt>
void check_steps(MakeOpt make_opt, const std::string& what, bool gpu_fused = true) {
  std::vector<Tensor> host = make_params(7);
  std::vector<Tensor> pc = leaves(host, engine::Device::cpu()), pg = leaves(host, kGpu);
  std::unique_ptr<nn::Optimizer> oc = make_opt(groups_of(pc), true);
  std::unique_ptr<nn::Optimizer> og = make_opt(groups_of(pg), gpu_fused);
  for (int step = 0; step < 3; ++step) {
    for (size_t i = 0; i < host.size(); ++i) {
      // Parameter 5 gets no gradient in step 1: it must be skipped there, then resume.
      if (i == 5 && step == 1) {
        pc[i].zero_grad(), pg[i].zero_grad();
        continue;
      }
      Tensor g = host_random(host[i].shape(), 1000 * step + i, -1, 1, host[i].dtype());
      pc[i].set_grad(g.clone());
      pg[i].set_grad(g.to(kGpu));
    }
    oc->step();
    og->step();
    for (size_t i = 0; i < host.size(); ++i) {
      // One step moves a parameter by O(lr); float32 rounding of the update ~ 1e-7 relative,
      // plus FMA contraction on the GPU.
      const bool f64 = host[i].dtype() == DType::Float64;
      ASSERT_TRUE(testing_util::all_close(pg[i], pc[i], f64 ? 1e-13 : 2e-6, f64 ? 1e-14 : 1e-6))
          << what << " step " << step << " parameter " << i;
    }
  }
}

TEST_F(CudaOptimizer, SgdMatchesCpu) {
  struct Config {
    double momentum, dampening, weight_decay;
    bool nesterov;
  };
  for (Config c : {Config{0, 0, 0, false}, Config{0.9, 0, 1e-4, false}, Config{0.9, 0, 0, true},
                   Config{0.8, 0.3, 0.05, false}})
    for (bool gpu_fused : {true, false})
      check_steps(
          [c](std::vector<nn::ParamGroup> groups, bool fused) {
            nn::SGDOptions o;
            o.lr = 0.1, o.momentum = c.momentum, o.dampening = c.dampening;
            o.weight_decay = c.weight_decay, o.nesterov = c.nesterov, o.fused = fused;
            return std::unique_ptr<nn::Optimizer>(new nn::SGD(std::move(groups), o));
          },
          "SGD momentum " + std::to_string(c.momentum) + (c.nesterov ? " nesterov" : "") +
              (gpu_fused ? " fused" : " composed"),
          gpu_fused);
}

TEST_F(CudaOptimizer, AdamAndAdamWMatchCpu) {
  for (bool decoupled : {false, true})
    for (bool gpu_fused : {true, false})
      check_steps(
          [decoupled](std::vector<nn::ParamGroup> groups, bool fused) {
            if (decoupled) {
              nn::AdamWOptions o;
              o.lr = 1e-2, o.weight_decay = 0.05, o.fused = fused;
              return std::unique_ptr<nn::Optimizer>(new nn::AdamW(std::move(groups), o));
            }
            nn::AdamOptions o;
            o.lr = 1e-2, o.weight_decay = 1e-3, o.fused = fused;
            return std::unique_ptr<nn::Optimizer>(new nn::Adam(std::move(groups), o));
          },
          std::string(decoupled ? "AdamW" : "Adam") + (gpu_fused ? " fused" : " composed"),
          gpu_fused);
}

TEST_F(CudaOptimizer, StateMovesWithTheModel) {
  // A snapshot from a CPU optimizer loaded into a CUDA one continues identically.
  std::vector<Tensor> host = {host_random({1000}, 1), host_random({7, 3}, 2)};
  std::vector<Tensor> pc = leaves(host, engine::Device::cpu()), pg = leaves(host, kGpu);
  nn::AdamWOptions o;
  o.lr = 1e-2;
  nn::AdamW oc(pc, o), og(pg, o);
  for (size_t i = 0; i < host.size(); ++i) {
    Tensor g = host_random(host[i].shape(), 50 + i);
    pc[i].set_grad(g.clone()), pg[i].set_grad(g.to(kGpu));
  }
  oc.step();
  og.load_state_dict(oc.state_dict());
  for (size_t i = 0; i < host.size(); ++i) pg[i].detach().copy_(pc[i]);
  for (size_t i = 0; i < host.size(); ++i) {
    Tensor g = host_random(host[i].shape(), 60 + i);
    pc[i].set_grad(g.clone()), pg[i].set_grad(g.to(kGpu));
  }
  oc.step();
  og.step();
  for (size_t i = 0; i < host.size(); ++i)
    EXPECT_TRUE(testing_util::all_close(pg[i], pc[i], 2e-6, 1e-6)) << i;
}

}  // namespace
}  // namespace cuda_test
