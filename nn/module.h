// nn/module.h — the base of every layer and model: named parameters, buffers and children.
//
// Names join with '.', so a ResNet's parameters are called exactly like torchvision's
// state_dict keys ("layer1.0.conv1.weight", "bn1.running_var"). A module registers pointers to
// its own Tensor members, so `to(device)` and loading a state dict can replace them in place;
// modules are therefore neither copyable nor movable (hold them in std::shared_ptr).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/engine.h"

namespace nn {

using engine::Tensor;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Most layers map one tensor to one tensor; containers and models override this.
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }

  // Recursive, in registration order, with dotted names.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<Tensor> parameters() const;            // only those with requires_grad
  std::vector<Tensor> all_parameters() const;        // frozen ones too
  std::map<std::string, Tensor> state_dict() const;  // parameters and buffers
  // Looks up a parameter or buffer slot by its dotted name (nullptr if none).
  Tensor* find_tensor(const std::string& name);
  bool is_parameter(const std::string& name) const;  // a parameter (not a buffer) of that name
  // This module (name "") and every descendant, pre-order, with dotted names; lets code that
  // walks a model find layers by type (e.g. the weight loader finds every Conv2d).
  std::vector<std::pair<std::string, Module*>> named_modules();
  std::vector<std::pair<std::string, const Module*>> named_modules() const;

  // Switches this module and its children (BatchNorm statistics, dropout, drop path).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Moves every parameter and buffer (parameters stay leaves that require grad). The tensors
  // keep their identity (their storage is swapped in place), so an optimizer built before the
  // move still holds the right parameters. Integer buffers (BatchNorm's num_batches_tracked)
  // are host-side counters that no kernel reads: they stay on the CPU.
  void to(engine::Device device);
  // Converts every float parameter and buffer to `dtype` (float32 or float64) the same way,
  // in place; integer buffers keep theirs. Gradients are dropped (they had the old dtype).
  void to(engine::DType dtype);
  // Frozen parameters get no gradient and so no optimizer update (freezing drops any stale
  // gradient too).
  void set_requires_grad(bool on);
  void zero_grad();

  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }

 protected:
  // `slot` must be a member of the derived module (it is updated in place by to()/loading).
  void register_parameter(const std::string& name, Tensor* slot);
  void register_buffer(const std::string& name, Tensor* slot);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    children_.emplace_back(name, m);
    return m;
  }

 private:
  struct Slot {
    std::string name;
    Tensor* tensor;
  };
  void collect(const std::string& prefix, bool params, bool buffers,
               std::vector<std::pair<std::string, Tensor*>>& out) const;
  // to(Device) and to(DType): each float parameter and buffer (the int64 counters stay) is
  // replaced in place by convert(it), unless convert returns an undefined tensor (already so).
  void convert_floats(const std::function<Tensor(const Tensor&)>& convert);

  std::vector<Slot> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace nn
