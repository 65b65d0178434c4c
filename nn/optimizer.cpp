// nn/optimizer.cpp — see optimizer.h. The formulas are torch 1.13's _single_tensor_sgd /
// _single_tensor_adam / _single_tensor_adamw; the fused CPU kernels are in
// kernels/cpu/optimizer.cpp, the fused CUDA ones (all parameters in a few launches) in
// kernels/cuda/optimizer.cu, and the composed twins (any device) are below.
#include "nn/optimizer.h"

#include <cmath>
#include <set>

#include "engine/profiler.h"
#include "kernels/cpu/optimizer.h"
#ifdef ENGINE_WITH_CUDA
#include "kernels/cuda/optimizer.h"
#endif

namespace nn {

using engine::check;

// ---- Optimizer: groups, state, snapshots --------------------------------------------------

Optimizer::Optimizer(std::vector<ParamGroup> groups, double default_lr,
                     double default_weight_decay, const char* name)
    : name_(name) {
  check(!groups.empty(), name, ": needs at least one parameter group");
  std::set<const engine::TensorImpl*> seen;
  for (size_t g = 0; g < groups.size(); ++g) {
    ParamGroup& pg = groups[g];
    const double lr = pg.lr.value_or(default_lr);
    const double wd = pg.weight_decay.value_or(default_weight_decay);
    check(lr >= 0 && std::isfinite(lr), name, ": group ", g, " has an invalid lr ", lr);
    check(wd >= 0 && std::isfinite(wd), name, ": group ", g, " has an invalid weight_decay ", wd);
    for (size_t i = 0; i < pg.params.size(); ++i) {
      const Tensor& p = pg.params[i];
      check(p.defined(), name, ": group ", g, " parameter ", i, " is an undefined tensor");
      check(p.is_leaf(), name, ": group ", g, " parameter ", i, " (shape ", p.shape(),
            ") is not a leaf tensor; optimizers update leaves (model parameters)");
      check(p.dtype() != engine::DType::Int64, name, ": group ", g, " parameter ", i,
            " is an int64 tensor; only float parameters can be optimised");
      check(seen.insert(p.impl_ptr().get()).second, name, ": group ", g, " parameter ", i,
            " (shape ", p.shape(), ") appears more than once in the parameter groups");
      flat_.push_back(p);
      group_of_.push_back(g);
    }
    groups_.push_back({std::move(pg.params), lr, wd});
  }
  state_.resize(flat_.size());
}

void Optimizer::zero_grad() {
  for (const Tensor& p : flat_) p.zero_grad();
}

template <class F>
void Optimizer::for_each_update(F&& f) {
  engine::NoGradGuard no_grad;
  for (size_t i = 0; i < flat_.size(); ++i) {
    const Tensor& p = flat_[i];
    // Frozen parameters are skipped even if an old gradient is still attached.
    if (!p.requires_grad()) continue;
    Tensor g = p.grad();
    if (!g.defined()) continue;
    check(g.dtype() == p.dtype() && g.device() == p.device(), name_, ": parameter ", i, " is ",
          p.dtype(), " on ", p.device(), " but its gradient is ", g.dtype(), " on ", g.device());
    g = g.contiguous();
    ParamState& st = state_[i];
    // A model moved after the optimizer was built (Module::to keeps the parameter objects):
    // move the state with it.
    for (auto& [k, t] : st.tensors)
      if (t.device() != p.device()) t = t.to(p.device());
    f(p, g, st, groups_[group_of_[i]]);
  }
}

OptimizerState Optimizer::state_dict() const {
  OptimizerState s;
  s.scalars["num_params"] = static_cast<double>(flat_.size());
  s.scalars["num_groups"] = static_cast<double>(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string pre = "group." + std::to_string(g) + ".";
    s.scalars[pre + "lr"] = groups_[g].lr;
    s.scalars[pre + "weight_decay"] = groups_[g].weight_decay;
  }
  for (auto& [k, v] : hyper()) s.scalars["hyper." + k] = v;
  engine::NoGradGuard no_grad;
  for (size_t i = 0; i < state_.size(); ++i) {
    if (state_[i].step == 0 && state_[i].tensors.empty()) continue;  // never stepped
    const std::string pre = "state." + std::to_string(i) + ".";
    s.scalars[pre + "step"] = static_cast<double>(state_[i].step);
    for (auto& [k, t] : state_[i].tensors) s.tensors[pre + k] = t.detach().clone();
  }
  return s;
}

namespace {
// "state.<i>.<rest>" -> i, or throws naming the key.
size_t state_index(const char* opt, const std::string& key, size_t end, size_t n) {
  const std::string digits = key.substr(6, end - 6);
  check(!digits.empty() && digits.find_first_not_of("0123456789") == std::string::npos, opt,
        ".load_state_dict: malformed key '", key, "'");
  const size_t i = std::stoul(digits);
  check(i < n, opt, ".load_state_dict: '", key, "' names parameter ", i, " but there are ", n);
  return i;
}
}  // namespace

void Optimizer::load_state_dict(const OptimizerState& s) {
  auto scalar = [&](const std::string& k) {
    auto it = s.scalars.find(k);
    check(it != s.scalars.end(), name_, ".load_state_dict: the snapshot has no '", k,
          "' (was it saved by an optimizer?)");
    return it->second;
  };
  const auto n = static_cast<size_t>(scalar("num_params"));
  const auto ng = static_cast<size_t>(scalar("num_groups"));
  check(n == flat_.size() && ng == groups_.size(), name_, ".load_state_dict: the snapshot has ",
        n, " parameters in ", ng, " groups, this optimizer has ", flat_.size(), " in ",
        groups_.size());

  // Build everything first, so a bad snapshot changes nothing.
  std::vector<ParamState> state(flat_.size());
  std::map<std::string, double> h;
  for (auto& [k, v] : s.scalars) {
    if (k.rfind("hyper.", 0) == 0) h[k.substr(6)] = v;
    if (k.rfind("state.", 0) != 0) continue;
    const size_t dot = k.find('.', 6);
    check(dot != std::string::npos && k.substr(dot + 1) == "step", name_,
          ".load_state_dict: unexpected scalar '", k, "'");
    const size_t i = state_index(name_, k, dot, flat_.size());
    state[i].step = static_cast<int64_t>(v);
  }
  engine::NoGradGuard no_grad;
  for (auto& [k, t] : s.tensors) {
    const size_t dot = k.rfind('.');
    check(k.rfind("state.", 0) == 0 && dot > 6, name_, ".load_state_dict: unexpected tensor '",
          k, "'");
    const size_t i = state_index(name_, k, dot, flat_.size());
    const Tensor& p = flat_[i];
    check(t.shape() == p.shape(), name_, ".load_state_dict: '", k, "' has shape ", t.shape(),
          " but parameter ", i, " has shape ", p.shape());
    Tensor copy = Tensor::empty(p.shape(), p.dtype(), p.device());
    copy.copy_(t);
    state[i].tensors[k.substr(dot + 1)] = copy;
  }
  std::vector<std::pair<double, double>> lr_wd(groups_.size());
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string pre = "group." + std::to_string(g) + ".";
    lr_wd[g] = {scalar(pre + "lr"), scalar(pre + "weight_decay")};
  }
  set_hyper(h);
  for (size_t g = 0; g < groups_.size(); ++g) {
    groups_[g].lr = lr_wd[g].first;
    groups_[g].weight_decay = lr_wd[g].second;
  }
  state_ = std::move(state);
}

Tensor Optimizer::state_tensor(int64_t i, const std::string& name) const {
  check(i >= 0 && i < num_params(), name_, ": no parameter ", i);
  auto it = state_[i].tensors.find(name);
  return it == state_[i].tensors.end() ? Tensor() : it->second;
}

int64_t Optimizer::state_step(int64_t i) const {
  check(i >= 0 && i < num_params(), name_, ": no parameter ", i);
  return state_[i].step;
}

namespace {

std::vector<ParamGroup> one_group(const std::vector<Tensor>& params) {
  return {ParamGroup{params, std::nullopt, std::nullopt}};
}

bool use_fused(bool fused, const Tensor& p) { return fused && p.device().is_cpu() && p.is_contiguous(); }

Tensor zeros_like(const Tensor& p) { return Tensor::zeros(p.shape(), p.dtype(), p.device()); }

// The CUDA parameters of one step, gathered while walking the groups and updated together
// (one multi-tensor launch per dtype, kernels/cuda/optimizer.h) once the walk is done.
template <class Entry>
struct CudaBatch {
  std::vector<Entry> f32, f64;
  // Handles on the gradients, which may be temporary contiguous copies: they must stay
  // allocated until the launch is queued (after that the stream orders any reuse).
  std::vector<Tensor> keep;
  bool takes(bool fused, const Tensor& p) const {
    return fused && p.device().is_cuda() && p.is_contiguous();
  }
  void add(const Tensor& p, const Tensor& g, const Entry& e) {
    (p.dtype() == engine::DType::Float32 ? f32 : f64).push_back(e);
    keep.push_back(g);
  }
};

}  // namespace

// ---- SGD ------------------------------------------------------------------------------------

SGD::SGD(std::vector<ParamGroup> groups, const SGDOptions& o)
    : Optimizer(std::move(groups), o.lr, o.weight_decay, "SGD"), opt_(o) {
  check(o.momentum >= 0 && o.dampening >= 0, "SGD: momentum and dampening must be >= 0 (got ",
        o.momentum, ", ", o.dampening, ")");
  check(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
        "SGD: nesterov needs momentum > 0 and dampening = 0 (as torch.optim.SGD)");
}

SGD::SGD(const std::vector<Tensor>& params, const SGDOptions& o) : SGD(one_group(params), o) {}

void SGD::step() {
  engine::profiler::Range range("sgd_step", engine::profiler::Phase::Optimizer);
  const double mom = opt_.momentum, damp = opt_.dampening;
#ifdef ENGINE_WITH_CUDA
  CudaBatch<kernels::cuda::SgdParam> cuda;
#endif
  for_each_update([&](const Tensor& p, const Tensor& g, ParamState& st, const Group& grp) {
    const double lr = grp.lr, wd = grp.weight_decay;
    Tensor buf;  // a handle on the state slot: writes through it update the state
    bool first = false;
    if (mom != 0) {
      Tensor& slot = st.tensors["momentum_buffer"];
      first = !slot.defined();  // torch: buf = clone(d_p) when there is none yet
      if (first) slot = zeros_like(p);
      buf = slot;
    }
    st.step += 1;
    if (use_fused(opt_.fused, p)) {
      engine::dispatch_float(p.dtype(), "SGD", [&](auto zero) {
        using T = decltype(zero);
        kernels::cpu::sgd_update<T>(p.numel(), p.data<T>(), g.data<T>(),
                                    mom != 0 ? buf.data<T>() : nullptr, lr, mom, damp, wd,
                                    opt_.nesterov, first);
      });
      return;
    }
#ifdef ENGINE_WITH_CUDA
    if (cuda.takes(opt_.fused, p)) {
      cuda.add(p, g, {p.raw_data(), g.raw_data(), mom != 0 ? buf.raw_data() : nullptr, p.numel(),
                      lr, wd, first});
      return;
    }
#endif
    // Composed twin, the same formula in engine ops.
    Tensor d = wd != 0 ? g + p * wd : g;
    if (mom != 0) {
      if (first) buf.copy_(d);
      else buf.copy_(buf * mom + d * (1.0 - damp));
      d = opt_.nesterov ? d + buf * mom : buf;
    }
    p.copy_(p + d * (-lr));
  });
#ifdef ENGINE_WITH_CUDA
  if (!cuda.f32.empty())
    kernels::cuda::sgd_update_multi(cuda.f32.data(), static_cast<int64_t>(cuda.f32.size()), mom,
                                    damp, opt_.nesterov, engine::DType::Float32);
  if (!cuda.f64.empty())
    kernels::cuda::sgd_update_multi(cuda.f64.data(), static_cast<int64_t>(cuda.f64.size()), mom,
                                    damp, opt_.nesterov, engine::DType::Float64);
#endif
}

std::map<std::string, double> SGD::hyper() const {
  return {{"momentum", opt_.momentum},
          {"dampening", opt_.dampening},
          {"nesterov", opt_.nesterov ? 1.0 : 0.0}};
}

void SGD::set_hyper(const std::map<std::string, double>& h) {
  if (auto it = h.find("momentum"); it != h.end()) opt_.momentum = it->second;
  if (auto it = h.find("dampening"); it != h.end()) opt_.dampening = it->second;
  if (auto it = h.find("nesterov"); it != h.end()) opt_.nesterov = it->second != 0;
}

// ---- Adam / AdamW ---------------------------------------------------------------------------

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& o, bool decoupled, const char* name)
    : Optimizer(std::move(groups), o.lr, o.weight_decay, name), opt_(o), decoupled_(decoupled) {
  check(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, name,
        ": betas must be in [0, 1), got (", o.beta1, ", ", o.beta2, ")");
  check(o.eps >= 0, name, ": eps must be >= 0, got ", o.eps);
}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& o)
    : Adam(std::move(groups), o, false, "Adam") {}
Adam::Adam(const std::vector<Tensor>& params, const AdamOptions& o) : Adam(one_group(params), o) {}

namespace {
AdamOptions as_adam(const AdamWOptions& o) {
  return {o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.fused};
}
}  // namespace

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& o)
    : Adam(std::move(groups), as_adam(o), true, "AdamW") {}
AdamW::AdamW(const std::vector<Tensor>& params, const AdamWOptions& o)
    : AdamW(one_group(params), o) {}

void Adam::step() {
  engine::profiler::Range range(decoupled_ ? "adamw_step" : "adam_step",
                                engine::profiler::Phase::Optimizer);
  const double b1 = opt_.beta1, b2 = opt_.beta2, eps = opt_.eps;
#ifdef ENGINE_WITH_CUDA
  CudaBatch<kernels::cuda::AdamParam> cuda;
#endif
  for_each_update([&](const Tensor& p, const Tensor& g_in, ParamState& st, const Group& grp) {
    const double lr = grp.lr, wd = grp.weight_decay;
    Tensor& m = st.tensors["exp_avg"];
    Tensor& v = st.tensors["exp_avg_sq"];
    if (!m.defined()) m = zeros_like(p);
    if (!v.defined()) v = zeros_like(p);
    st.step += 1;
    if (use_fused(opt_.fused, p)) {
      engine::dispatch_float(p.dtype(), "Adam", [&](auto zero) {
        using T = decltype(zero);
        kernels::cpu::adam_update<T>(p.numel(), p.data<T>(), g_in.data<T>(), m.data<T>(),
                                     v.data<T>(), lr, b1, b2, eps, wd, decoupled_, st.step);
      });
      return;
    }
#ifdef ENGINE_WITH_CUDA
    if (cuda.takes(opt_.fused, p)) {
      cuda.add(p, g_in, {p.raw_data(), g_in.raw_data(), m.raw_data(), v.raw_data(), p.numel(), lr,
                         wd, st.step});
      return;
    }
#endif
    // Composed twin, the same formula in engine ops.
    Tensor g = g_in;
    if (decoupled_) {
      if (wd != 0) p.copy_(p * (1.0 - lr * wd));
    } else if (wd != 0) {
      g = g + p * wd;
    }
    m.copy_(m * b1 + g * (1.0 - b1));
    v.copy_(v * b2 + g * g * (1.0 - b2));
    const double bc1 = 1.0 - std::pow(b1, static_cast<double>(st.step));
    const double bc2 = 1.0 - std::pow(b2, static_cast<double>(st.step));
    Tensor denom = engine::sqrt(v) / std::sqrt(bc2) + eps;
    p.copy_(p + m * (-(lr / bc1)) / denom);
  });
#ifdef ENGINE_WITH_CUDA
  if (!cuda.f32.empty())
    kernels::cuda::adam_update_multi(cuda.f32.data(), static_cast<int64_t>(cuda.f32.size()), b1,
                                     b2, eps, decoupled_, engine::DType::Float32);
  if (!cuda.f64.empty())
    kernels::cuda::adam_update_multi(cuda.f64.data(), static_cast<int64_t>(cuda.f64.size()), b1,
                                     b2, eps, decoupled_, engine::DType::Float64);
#endif
}

std::map<std::string, double> Adam::hyper() const {
  return {{"beta1", opt_.beta1}, {"beta2", opt_.beta2}, {"eps", opt_.eps}};
}

void Adam::set_hyper(const std::map<std::string, double>& h) {
  if (auto it = h.find("beta1"); it != h.end()) opt_.beta1 = it->second;
  if (auto it = h.find("beta2"); it != h.end()) opt_.beta2 = it->second;
  if (auto it = h.find("eps"); it != h.end()) opt_.eps = it->second;
}

}  // namespace nn
