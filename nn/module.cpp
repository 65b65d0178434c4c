// nn/module.cpp — parameter/buffer/child bookkeeping shared by every layer and model.
#include "nn/module.h"

#include <algorithm>

namespace nn {

namespace {

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// Names are path components: a '.' inside one would make "a.b" ambiguous when loading.
void check_name(const std::string& name, const char* what) {
  engine::check(!name.empty() && name.find('.') == std::string::npos, "Module: ", what,
                " name '", name, "' must be non-empty and contain no '.'");
}

// Puts `next`'s bytes (and dtype) under t's existing TensorImpl and drops its gradient: every
// handle to this parameter (an optimizer's list, a user's copy) sees the new tensor, as
// PyTorch's param.data = ... does.
void swap_in_place(Tensor& t, const Tensor& next) {
  engine::TensorImpl& impl = t.impl();
  impl.storage = next.impl().storage;
  impl.strides = next.strides();
  impl.offset = next.offset();
  impl.dtype = next.dtype();
  impl.grad = nullptr;
}

}  // namespace

void Module::register_parameter(const std::string& name, Tensor* slot) {
  check_name(name, "parameter");
  engine::check(slot != nullptr && slot->defined(), "Module: parameter '", name,
                "' is an undefined tensor (register optional parameters only when present)");
  engine::check(slot->is_leaf(), "Module: parameter '", name, "' must be a leaf tensor");
  for (const Slot& s : params_)
    engine::check(s.name != name, "Module: parameter '", name, "' registered twice");
  for (const Slot& s : buffers_)
    engine::check(s.name != name, "Module: '", name, "' is already a buffer");
  slot->requires_grad_(true);
  params_.push_back({name, slot});
}

void Module::register_buffer(const std::string& name, Tensor* slot) {
  check_name(name, "buffer");
  engine::check(slot != nullptr && slot->defined(), "Module: buffer '", name,
                "' is an undefined tensor");
  for (const Slot& s : buffers_)
    engine::check(s.name != name, "Module: buffer '", name, "' registered twice");
  for (const Slot& s : params_)
    engine::check(s.name != name, "Module: '", name, "' is already a parameter");
  buffers_.push_back({name, slot});
}

// PyTorch's order: a module's own parameters (or buffers), then each child's, depth first.
void Module::collect(const std::string& prefix, bool params, bool buffers,
                     std::vector<std::pair<std::string, Tensor*>>& out) const {
  if (params)
    for (const Slot& s : params_) out.emplace_back(join(prefix, s.name), s.tensor);
  if (buffers)
    for (const Slot& s : buffers_) out.emplace_back(join(prefix, s.name), s.tensor);
  for (const auto& [name, child] : children_) child->collect(join(prefix, name), params, buffers, out);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", true, false, slots);
  std::vector<std::pair<std::string, Tensor>> out;
  out.reserve(slots.size());
  for (auto& [n, t] : slots) out.emplace_back(n, *t);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", false, true, slots);
  std::vector<std::pair<std::string, Tensor>> out;
  out.reserve(slots.size());
  for (auto& [n, t] : slots) out.emplace_back(n, *t);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters())
    if (t.requires_grad()) out.push_back(t);
  return out;
}

std::vector<Tensor> Module::all_parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", true, true, slots);
  std::map<std::string, Tensor> out;
  for (auto& [n, t] : slots) out.emplace(n, *t);
  return out;
}

Tensor* Module::find_tensor(const std::string& name) {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", true, true, slots);
  for (auto& [n, t] : slots)
    if (n == name) return t;
  return nullptr;
}

bool Module::is_parameter(const std::string& name) const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", true, false, slots);
  return std::any_of(slots.begin(), slots.end(), [&](const auto& s) { return s.first == name; });
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (const auto& [name, child] : children_)
    for (auto& [sub, m] : child->named_modules())
      out.emplace_back(sub.empty() ? name : name + "." + sub, m);
  return out;
}

std::vector<std::pair<std::string, const Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, const Module*>> out;
  for (auto& [n, m] : const_cast<Module*>(this)->named_modules()) out.emplace_back(n, m);
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (const auto& [name, child] : children_) child->train(on);
}

void Module::convert_floats(const std::function<Tensor(const Tensor&)>& convert) {
  engine::NoGradGuard no_grad;
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", true, true, slots);
  for (auto& [name, slot] : slots) {
    if (slot->dtype() == engine::DType::Int64) continue;
    const Tensor next = convert(*slot);
    if (next.defined()) swap_in_place(*slot, next);
  }
}

void Module::to(engine::Device device) {
  convert_floats([&](const Tensor& t) {
    return t.device() == device ? Tensor() : t.detach().to(device);
  });
}

void Module::to(engine::DType dtype) {
  engine::check(dtype == engine::DType::Float32 || dtype == engine::DType::Float64,
                "Module::to: expected float32 or float64, got ", engine::dtype_name(dtype));
  convert_floats([&](const Tensor& t) {  // on the tensor's own device
    return t.dtype() == dtype ? Tensor() : t.detach().to(dtype);
  });
}

void Module::set_requires_grad(bool on) {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", true, false, slots);
  for (auto& s : slots) {
    s.second->requires_grad_(on);
    if (!on) s.second->zero_grad();
  }
}

void Module::zero_grad() {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect("", true, false, slots);
  for (auto& s : slots) s.second->zero_grad();
}

}  // namespace nn
