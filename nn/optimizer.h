// nn/optimizer.h — SGD, Adam and AdamW with torch.optim's exact update rules.
//
//   nn::AdamW opt(model->parameters(), {.lr = 1e-3, .weight_decay = 0.05});
//   loss.backward();
//   opt.step();       // params with no gradient (or frozen: requires_grad false) are skipped
//   opt.zero_grad();  // drops the gradients (torch's zero_grad(set_to_none=True))
//
// Parameter groups each carry their own lr and weight_decay (unset = the optimizer's
// default), e.g. a smaller lr for a pretrained backbone than for a new head. Schedulers
// (nn/scheduler.h) set the groups' lr.
//
// The update runs under NoGradGuard on the raw data: on the CPU with one fused kernel call per
// parameter (kernels/cpu/optimizer.h); on CUDA with fused multi-tensor kernels that update
// every parameter of a dtype in a few launches (kernels/cuda/optimizer.h); with fused = false
// (or a non-contiguous parameter) with the composed engine ops that spell out the same
// formula, which tests check against the fused kernels.
//
// The state (step counts, momentum buffers, Adam moments) and the group hyperparameters can be
// saved and restored (OptimizerState), so a resumed run takes exactly the steps it would have.
// Parameters are numbered in group order, as torch's state_dict does.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace nn {

using engine::Tensor;

// What a user passes: a list of parameters with optional per-group settings.
struct ParamGroup {
  std::vector<Tensor> params;
  std::optional<double> lr;            // unset: the optimizer's default
  std::optional<double> weight_decay;  // unset: the optimizer's default
};

// Snapshot of an optimizer: tensors keyed "state.<i>.<name>" (i = parameter number; names
// momentum_buffer, exp_avg, exp_avg_sq) and scalars: "state.<i>.step", "group.<g>.<hyper>"
// (lr, weight_decay, and the optimizer's others), "num_params", "num_groups". The tensors
// are copies, so stepping on does not change a saved snapshot.
struct OptimizerState {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, double> scalars;
};

class Optimizer {
 public:
  struct Group {
    std::vector<Tensor> params;
    double lr;
    double weight_decay;
  };

  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter that has a gradient and requires grad.
  virtual void step() = 0;
  // Drops every parameter's gradient.
  void zero_grad();

  std::vector<Group>& groups() { return groups_; }
  const std::vector<Group>& groups() const { return groups_; }
  int64_t num_params() const { return static_cast<int64_t>(flat_.size()); }

  OptimizerState state_dict() const;
  // Restores a snapshot taken from an optimizer over parameters of the same shapes in the same
  // order (throws engine::Error naming the first difference, changing nothing).
  void load_state_dict(const OptimizerState& state);

  // The per-parameter state tensor `name` of parameter i (undefined before its first step).
  Tensor state_tensor(int64_t i, const std::string& name) const;
  int64_t state_step(int64_t i) const;

 protected:
  Optimizer(std::vector<ParamGroup> groups, double default_lr, double default_weight_decay,
            const char* name);

  struct ParamState {
    int64_t step = 0;
    std::map<std::string, Tensor> tensors;  // allocated on the first step
  };
  // Calls f(param, grad, state, group) for every parameter that should be updated, with the
  // gradient contiguous and the state tensors on the parameter's device.
  template <class F>
  void for_each_update(F&& f);

  // The optimizer-specific hyperparameters, saved and restored with the groups.
  virtual std::map<std::string, double> hyper() const = 0;
  virtual void set_hyper(const std::map<std::string, double>& h) = 0;

  const char* name_;
  std::vector<Group> groups_;
  std::vector<Tensor> flat_;         // every parameter, numbered in group order
  std::vector<size_t> group_of_;     // flat index -> group index
  std::vector<ParamState> state_;    // flat index -> state
};

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  bool fused = true;  // false: always use the composed engine-op path (for tests)
};

// torch.optim.SGD: d = g + wd*p; buf = momentum*buf + (1-dampening)*d (buf = d on the first
// step); d = nesterov ? d + momentum*buf : buf; p -= lr*d.
class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, const SGDOptions& options);
  SGD(const std::vector<Tensor>& params, const SGDOptions& options);
  void step() override;
  const SGDOptions& options() const { return opt_; }

 private:
  std::map<std::string, double> hyper() const override;
  void set_hyper(const std::map<std::string, double>& h) override;
  SGDOptions opt_;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;  // torch.optim.Adam's default
  bool fused = true;
};
struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;  // torch.optim.AdamW's default
  bool fused = true;
};

// torch.optim.Adam (decoupled = false: L2 decay added to the gradient) and AdamW (decoupled:
// p *= 1 - lr*wd first). Then m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
// p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options);
  Adam(const std::vector<Tensor>& params, const AdamOptions& options);
  void step() override;
  const AdamOptions& options() const { return opt_; }

 protected:
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options, bool decoupled,
       const char* name);

 private:
  std::map<std::string, double> hyper() const override;
  void set_hyper(const std::map<std::string, double>& h) override;
  AdamOptions opt_;
  bool decoupled_;
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options);
  AdamW(const std::vector<Tensor>& params, const AdamWOptions& options);
};

}  // namespace nn
