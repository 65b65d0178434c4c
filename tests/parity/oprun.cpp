// tests/parity/oprun.cpp — runs one engine op for the PyTorch parity tests.
//
//   oprun SPEC.json IN.safetensors OUT.safetensors
// SPEC: {"op": "conv2d", "inputs": ["x", "w", "b"], "attrs": {...}, "grad": ["x", "w"]}
// IN holds the named inputs and, when backward is wanted, "grad_out". OUT receives "out" (and
// "out.indices" for topk, "running_mean"/"running_var" after batch_norm) and "grad.<name>" for
// every input listed in "grad". test_ops.py computes the same with torch and compares.
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "engine/io/safetensors.h"

using namespace engine;
using json = nlohmann::json;

namespace {

using Inputs = std::vector<Tensor>;
using OpFn = std::function<Tensor(const Inputs&, const json&, std::map<std::string, Tensor>&)>;

std::vector<int64_t> dims_of(const json& a, const char* key) {
  if (!a.contains(key)) return {};
  if (a[key].is_number()) return {a[key].get<int64_t>()};
  return a[key].get<std::vector<int64_t>>();
}

Reduction reduction_of(const json& a) {
  std::string r = a.value("reduction", "mean");
  return r == "sum" ? Reduction::Sum : r == "none" ? Reduction::None : Reduction::Mean;
}

const std::map<std::string, OpFn>& op_table() {
  static const std::map<std::string, OpFn> ops = {
      {"add", [](const Inputs& in, const json&, auto&) { return add(in[0], in[1]); }},
      {"sub", [](const Inputs& in, const json&, auto&) { return sub(in[0], in[1]); }},
      {"mul", [](const Inputs& in, const json&, auto&) { return mul(in[0], in[1]); }},
      {"div", [](const Inputs& in, const json&, auto&) { return div(in[0], in[1]); }},
      {"pow", [](const Inputs& in, const json&, auto&) { return pow(in[0], in[1]); }},
      {"pow_scalar",
       [](const Inputs& in, const json& a, auto&) { return pow(in[0], a["exponent"].get<double>()); }},
      {"maximum", [](const Inputs& in, const json&, auto&) { return maximum(in[0], in[1]); }},
      {"minimum", [](const Inputs& in, const json&, auto&) { return minimum(in[0], in[1]); }},
      {"neg", [](const Inputs& in, const json&, auto&) { return neg(in[0]); }},
      {"exp", [](const Inputs& in, const json&, auto&) { return exp(in[0]); }},
      {"log", [](const Inputs& in, const json&, auto&) { return log(in[0]); }},
      {"sqrt", [](const Inputs& in, const json&, auto&) { return sqrt(in[0]); }},
      {"abs", [](const Inputs& in, const json&, auto&) { return abs(in[0]); }},
      {"relu", [](const Inputs& in, const json&, auto&) { return relu(in[0]); }},
      {"sigmoid", [](const Inputs& in, const json&, auto&) { return sigmoid(in[0]); }},
      {"tanh", [](const Inputs& in, const json&, auto&) { return tanh(in[0]); }},
      {"gelu", [](const Inputs& in, const json&, auto&) { return gelu(in[0]); }},
      {"bias_gelu", [](const Inputs& in, const json&, auto&) { return bias_gelu(in[0], in[1]); }},
      {"clamp",
       [](const Inputs& in, const json& a, auto&) {
         return clamp(in[0], a["low"].get<double>(), a["high"].get<double>());
       }},
      {"sum",
       [](const Inputs& in, const json& a, auto&) {
         return sum(in[0], dims_of(a, "dims"), a.value("keepdim", false));
       }},
      {"mean",
       [](const Inputs& in, const json& a, auto&) {
         return mean(in[0], dims_of(a, "dims"), a.value("keepdim", false));
       }},
      {"max",
       [](const Inputs& in, const json& a, auto&) {
         return max(in[0], dims_of(a, "dims"), a.value("keepdim", false));
       }},
      {"var",
       [](const Inputs& in, const json& a, auto&) {
         return var(in[0], dims_of(a, "dims"), a.value("correction", 1), a.value("keepdim", false));
       }},
      {"matmul", [](const Inputs& in, const json&, auto&) { return matmul(in[0], in[1]); }},
      {"linear",
       [](const Inputs& in, const json&, auto&) {
         return linear(in[0], in[1], in.size() > 2 ? in[2] : Tensor());
       }},
      {"conv2d",
       [](const Inputs& in, const json& a, auto&) {
         Conv2dParams p;
         p.stride_h = a.value("stride_h", 1), p.stride_w = a.value("stride_w", 1);
         p.pad_h = a.value("pad_h", 0), p.pad_w = a.value("pad_w", 0);
         p.dilation_h = a.value("dilation_h", 1), p.dilation_w = a.value("dilation_w", 1);
         p.groups = a.value("groups", 1);
         return conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), p);
       }},
      {"max_pool2d",
       [](const Inputs& in, const json& a, auto&) {
         return max_pool2d(in[0], a["kernel"], a["stride"], a.value("padding", 0));
       }},
      {"adaptive_avg_pool2d",
       [](const Inputs& in, const json& a, auto&) {
         return adaptive_avg_pool2d(in[0], a["out_h"], a["out_w"]);
       }},
      {"global_avg_pool", [](const Inputs& in, const json&, auto&) { return global_avg_pool(in[0]); }},
      {"batch_norm",
       [](const Inputs& in, const json& a, std::map<std::string, Tensor>& extra) {
         Tensor rm = in[3].clone().detach(), rv = in[4].clone().detach();
         Tensor y = batch_norm(in[0], in[1], in[2], rm, rv, a.value("training", true),
                               a.value("momentum", 0.1), a.value("eps", 1e-5));
         extra["running_mean"] = rm;
         extra["running_var"] = rv;
         return y;
       }},
      {"layer_norm",
       [](const Inputs& in, const json& a, auto&) {
         return layer_norm(in[0], in[1], in[2], a.value("eps", 1e-6));
       }},
      {"mlp",
       [](const Inputs& in, const json&, auto&) { return mlp(in[0], in[1], in[2], in[3]); }},
      {"layer_norm_mlp",
       [](const Inputs& in, const json& a, auto&) {
         return layer_norm_mlp(in[0], in[1], in[2], a.value("eps", 1e-6), in[3], in[4], in[5]);
       }},
      {"softmax",
       [](const Inputs& in, const json& a, auto&) { return softmax(in[0], a.value("dim", -1)); }},
      {"log_softmax",
       [](const Inputs& in, const json& a, auto&) { return log_softmax(in[0], a.value("dim", -1)); }},
      {"cat",
       [](const Inputs& in, const json& a, auto&) { return cat(in, a.value("dim", 0)); }},
      {"stack",
       [](const Inputs& in, const json& a, auto&) { return stack(in, a.value("dim", 0)); }},
      {"index_select",
       [](const Inputs& in, const json& a, auto&) {
         return index_select(in[0], a.value("dim", 0), in[1]);
       }},
      {"gather",
       [](const Inputs& in, const json& a, auto&) { return gather(in[0], a.value("dim", 0), in[1]); }},
      {"mse_loss",
       [](const Inputs& in, const json& a, auto&) {
         return mse_loss(in[0], in[1], reduction_of(a));
       }},
      {"huber_loss",
       [](const Inputs& in, const json& a, auto&) {
         return huber_loss(in[0], in[1], a.value("delta", 1.0), reduction_of(a));
       }},
      {"pairwise_sq_l2",
       [](const Inputs& in, const json&, auto&) { return pairwise_sq_l2(in[0], in[1]); }},
      {"topk",
       [](const Inputs& in, const json& a, std::map<std::string, Tensor>& extra) {
         TopK r = topk(in[0], a["k"], a.value("dim", -1), a.value("largest", false));
         extra["out.indices"] = r.indices;
         return r.values;
       }},
      {"knn_search",
       [](const Inputs& in, const json& a, std::map<std::string, Tensor>& extra) {
         KnnMetric m = a.value("metric", "l2") == "cosine" ? KnnMetric::Cosine : KnnMetric::L2;
         TopK r = knn_search(in[0], in[1], a["k"], m);
         extra["out.indices"] = r.indices;
         return r.values;
       }},
  };
  return ops;
}

int run(int argc, char** argv) {
  check(argc == 4, "usage: oprun SPEC.json IN.safetensors OUT.safetensors");
  std::ifstream spec_file(argv[1]);
  check(spec_file.good(), "oprun: cannot read ", argv[1]);
  json spec = json::parse(spec_file);
  auto in = io::load_safetensors(argv[2]).tensors;

  std::string op = spec.at("op");
  auto it = op_table().find(op);
  check(it != op_table().end(), "oprun: unknown op '", op, "'");
  std::vector<std::string> grad_names = spec.value("grad", std::vector<std::string>{});
  Inputs inputs;
  for (const std::string& name : spec.at("inputs").get<std::vector<std::string>>()) {
    check(in.count(name), "oprun: input '", name, "' missing from ", argv[2]);
    Tensor t = in.at(name);
    if (std::find(grad_names.begin(), grad_names.end(), name) != grad_names.end())
      t.requires_grad_();
    inputs.push_back(t);
  }
  std::map<std::string, Tensor> out;
  Tensor y = it->second(inputs, spec.value("attrs", json::object()), out);
  out["out"] = y;
  if (!grad_names.empty()) {
    check(in.count("grad_out"), "oprun: spec asks for gradients but IN has no grad_out");
    y.backward(in.at("grad_out"));
    auto names = spec.at("inputs").get<std::vector<std::string>>();
    for (size_t i = 0; i < names.size(); ++i) {
      if (!inputs[i].requires_grad()) continue;
      check(inputs[i].grad().defined(), "oprun: no gradient reached input '", names[i], "'");
      out["grad." + names[i]] = inputs[i].grad();
    }
  }
  io::save_safetensors(argv[3], out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "oprun: " << e.what() << "\n";
    return 1;
  }
}
