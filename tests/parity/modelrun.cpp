// tests/parity/modelrun.cpp — runs a whole model for the PyTorch parity test (test_models.py).
//
//   modelrun SPEC.json WEIGHTS.safetensors IN.safetensors OUT.safetensors
//   modelrun --probe cuda      exit 0 if this build can run on a GPU here, else 77 and why
//
// WEIGHTS is a torchvision state_dict converted by weights/convert.py (PyTorch names, OIHW
// convs); it must fit the model exactly, head included. IN holds "x" (any float dtype) in NCHW
// layout [N, 3, H, W] (so the Python side writes what it feeds torchvision; we permute to our
// NHWC here), and "target" [N, num_outputs] for the training modes.
//
// SPEC: {"arch": "resnet18", "num_outputs": 1000, "head": "linear", "mode": "eval",
//        "dtype": "float32", "drop_path_rate": 0, ...}
//   device "cpu" (default) or "cuda": where the model, the input and the target live (weights
//   are loaded on the host first, then moved, as the app does). Outputs come back to the host.
//   On CUDA the cuBLAS/cuDNN-or-ours switches and TF32 follow the environment
//   (ENGINE_CUDA_IMPL_<FAMILY>, ENGINE_CUDA_TF32; engine/cuda/runtime.h).
//   dtype "float32" (default, what the app trains in) or "float64": every float parameter,
//   buffer and the input are converted before the run, so the model's math can be compared
//   with torch's float64 without float32 rounding (which flips ReLU / max-pool decisions on
//   pre-activations within ~1e-6 of zero and so moves gradients by more than 1e-3).
//   mode "eval":       eval(), no grad. OUT: "out" [N, num_outputs], "features" [N, D].
//   mode "train_grad": train() (BatchNorm uses batch statistics and updates its running
//                      stats), loss = mse_loss(out, target) (mean), backward. OUT: "out",
//                      "loss" [1], "grad.<name>" for every parameter and "state.<name>" for every
//                      parameter and buffer after the step, all in PyTorch names and layouts
//                      (conv weights and their gradients OIHW).
//   mode "adamw":      "steps" AdamW steps (spec "lr", "beta1", "beta2", "eps",
//                      "weight_decay") on the fixed batch in train mode, each: zero_grad,
//                      forward, mse loss, backward, step. OUT: "losses" [steps] (the loss each
//                      step saw, before its update) and "state.<name>" for everything at the end.
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/engine.h"
#include "engine/io/safetensors.h"
#ifdef ENGINE_WITH_CUDA
#include "engine/cuda/runtime.h"
#endif
#include "models/model.h"
#include "models/weights.h"
#include "nn/optimizer.h"

using namespace engine;
using json = nlohmann::json;

namespace {

using TensorMap = std::map<std::string, Tensor>;

// Dotted names of every Conv2d weight: those are [K, R, S, C/g] here and OIHW in PyTorch.
std::set<std::string> conv_weight_names(models::Model& model) {
  std::set<std::string> out;
  for (auto& [name, m] : model.named_modules())
    if (dynamic_cast<nn::Conv2d*>(m)) out.insert(name.empty() ? "weight" : name + ".weight");
  return out;
}

// Every parameter's gradient in PyTorch layout, keyed "grad.<name>".
void export_grads(models::Model& model, TensorMap& out) {
  const std::set<std::string> convs = conv_weight_names(model);
  NoGradGuard no_grad;
  for (const auto& [name, p] : model.named_parameters()) {
    Tensor g = p.grad();
    check(g.defined(), "modelrun: parameter '", name, "' received no gradient");
    if (convs.count(name)) g = g.permute({0, 3, 1, 2});  // [K,R,S,C] -> OIHW
    out["grad." + name] = g.contiguous().clone();
  }
}

void export_state(models::Model& model, TensorMap& out) {
  for (const auto& [name, t] : models::export_state_dict(model)) out["state." + name] = t;
}

Tensor loss_of(models::Model& model, const Tensor& x, const Tensor& target, TensorMap* out) {
  Tensor y = model.forward(x);
  if (out) (*out)["out"] = y.detach();
  return mse_loss(y, target);
}

// `modelrun --probe cuda`: can this binary put a tensor on a GPU? The test script asks before
// it spends minutes on PyTorch references; the engine's own message says why not.
int probe(const std::string& device) {
  check(device == "cuda", "modelrun: --probe takes 'cuda', got '", device, "'");
  if (engine::cuda_available()) {
#ifdef ENGINE_WITH_CUDA
    namespace ec = engine::cuda;
    std::cout << "cuda: " << ec::device_description() << "; TF32 " << (ec::tf32() ? "on" : "off");
    for (auto f : {ec::Family::Gemm, ec::Family::Conv, ec::Family::Depthwise,
                   ec::Family::BatchNorm, ec::Family::Pool})
      std::cout << "; " << ec::family_name(f) << " " << ec::impl_name(ec::impl(f));
    std::cout << "\n";
#endif
    return 0;
  }
  try {
    Tensor::zeros({1}, DType::Float32, Device::cuda());
    std::cout << "cuda: not available (no reason given)\n";
  } catch (const std::exception& e) {
    std::cout << "cuda: not available: " << e.what() << "\n";
  }
  return 77;
}

int run(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--probe") return probe(argv[2]);
  check(argc == 5, "usage: modelrun SPEC.json WEIGHTS.safetensors IN.safetensors OUT.safetensors");
  std::ifstream spec_file(argv[1]);
  check(spec_file.good(), "modelrun: cannot read ", argv[1]);
  const json spec = json::parse(spec_file);
  const std::string mode = spec.at("mode");

  models::ModelOptions mo;
  mo.drop_path_rate = spec.value("drop_path_rate", 0.0);  // stochastic depth is random: off
  auto model = models::create(spec.at("arch"), spec.at("num_outputs"),
                              models::parse_head(spec.value("head", "linear")), mo);
  const std::string dtype_name = spec.value("dtype", "float32");
  check(dtype_name == "float32" || dtype_name == "float64", "modelrun: dtype '", dtype_name,
        "' is not float32 or float64");
  const DType dtype = dtype_name == "float64" ? DType::Float64 : DType::Float32;
  model->to(dtype);  // before loading: loading copies (and converts) in place
  models::LoadOptions lo;
  lo.head = models::HeadMismatch::Error;  // the checkpoint carries exactly this head
  models::load_weights(*model, argv[2], lo);
  const Device device = Device::parse(spec.value("device", "cpu"));
  model->to(device);  // num_batches_tracked stays a host counter (nn::Module::to)

  auto in = io::load_safetensors(argv[3]).tensors;
  check(in.count("x"), "modelrun: ", argv[3], " has no 'x'");
  Tensor x_nchw = in.at("x");
  check(x_nchw.dim() == 4 && x_nchw.size(1) == 3, "modelrun: 'x' must be NCHW [N, 3, H, W]");
  const Tensor x = x_nchw.to(dtype).permute({0, 2, 3, 1}).contiguous().to(device);

  TensorMap out;
  if (mode == "eval") {
    model->eval();
    NoGradGuard no_grad;
    out["out"] = model->forward(x);
    out["features"] = model->features(x);
  } else if (mode == "train_grad" || mode == "adamw") {
    check(in.count("target"), "modelrun: mode ", mode, " needs 'target' in ", argv[3]);
    const Tensor target = in.at("target").to(dtype).to(device);
    model->train();
    if (mode == "train_grad") {
      Tensor loss = loss_of(*model, x, target, &out);
      loss.backward();
      out["loss"] = Tensor::from_vector(std::vector<double>{loss.item()}, {1});
      export_grads(*model, out);
    } else {
      nn::AdamWOptions o;
      o.lr = spec.at("lr"), o.beta1 = spec.at("beta1"), o.beta2 = spec.at("beta2");
      o.eps = spec.at("eps"), o.weight_decay = spec.at("weight_decay");
      nn::AdamW opt(model->parameters(), o);
      const int64_t steps = spec.at("steps");
      std::vector<double> losses;
      for (int64_t s = 0; s < steps; ++s) {
        opt.zero_grad();
        Tensor loss = loss_of(*model, x, target, nullptr);
        loss.backward();
        losses.push_back(loss.item());
        opt.step();
      }
      out["losses"] = Tensor::from_vector(losses, {steps});
    }
    export_state(*model, out);
  } else {
    fail("modelrun: unknown mode '", mode, "' (eval, train_grad, adamw)");
  }
  io::save_safetensors(argv[4], out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "modelrun: " << e.what() << "\n";
    return 1;
  }
}
