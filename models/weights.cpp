// models/weights.cpp — see weights.h.
#include "models/weights.h"

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>

#include "engine/io/safetensors.h"
#include "nn/layers.h"

namespace models {

using engine::check;
using engine::Shape;

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// Names of every Conv2d weight in the model: these change layout between PyTorch and us.
std::set<std::string> conv_weights(const nn::Module& model) {
  std::set<std::string> out;
  for (auto& [name, m] : model.named_modules())
    if (dynamic_cast<const nn::Conv2d*>(m)) out.insert(name.empty() ? "weight" : name + ".weight");
  return out;
}

std::string shape_str(const Shape& s) { return engine::cat(s); }

void append_list(std::ostringstream& os, const char* what, const std::vector<std::string>& v) {
  if (v.empty()) return;
  os << "; " << v.size() << " " << what << " [";
  for (size_t i = 0; i < v.size() && i < 10; ++i) os << (i ? ", " : "") << v[i];
  if (v.size() > 10) os << ", ... and " << v.size() - 10 << " more";
  os << "]";
}

}  // namespace

std::string LoadReport::summary() const {
  std::ostringstream os;
  os << loaded.size() << " tensors loaded";
  append_list(os, "missing", missing);
  append_list(os, "unexpected", unexpected);
  append_list(os, "shape mismatches", mismatched);
  append_list(os, "checkpoint head keys dropped", dropped_head);
  append_list(os, "head keys left at their initial values", head_initialised);
  append_list(os, "num_batches_tracked absent (left as is)", defaulted);
  if (!renamed.empty()) os << "; " << renamed.size() << " timm keys renamed";
  return os.str();
}

// ---- timm names -------------------------------------------------------------------------------

bool looks_like_timm(const StateDict& state) {
  return std::any_of(state.begin(), state.end(), [](const auto& kv) {
    return starts_with(kv.first, "stem.") || starts_with(kv.first, "stages.") ||
           starts_with(kv.first, "head.fc.");
  });
}

StateDict timm_to_torchvision(const StateDict& state, std::vector<std::string>* renamed) {
  static const std::regex stem(R"(^stem\.([01])\.(.+)$)");
  static const std::regex down(R"(^stages\.(\d+)\.downsample\.([01])\.(.+)$)");
  static const std::regex blk(R"(^stages\.(\d+)\.blocks\.(\d+)\.(.+)$)");
  static const std::regex head(R"(^head\.(norm|fc)\.(.+)$)");
  // Inside a block: timm's submodule -> torchvision's index in CNBlock.block.
  static const std::vector<std::pair<std::string, std::string>> in_block = {
      {"conv_dw.", "block.0."}, {"norm.", "block.2."}, {"mlp.fc1.", "block.3."},
      {"mlp.fc2.", "block.5."}};

  StateDict out;
  for (const auto& [key, t] : state) {
    std::smatch m;
    std::string name = key;
    Tensor value = t;
    if (std::regex_match(key, m, stem)) {
      name = "features.0." + m[1].str() + "." + m[2].str();
    } else if (std::regex_match(key, m, down)) {
      const int n = std::stoi(m[1].str());
      check(n >= 1, "timm_to_torchvision: '", key, "' is a downsample before stage 0, which ",
            "torchvision's ConvNeXt does not have (a timm model with a non-standard stem?)");
      name = "features." + std::to_string(2 * n) + "." + m[2].str() + "." + m[3].str();
    } else if (std::regex_match(key, m, blk)) {
      const std::string base =
          "features." + std::to_string(2 * std::stoi(m[1].str()) + 1) + "." + m[2].str() + ".";
      const std::string rest = m[3].str();
      if (rest == "gamma") {
        name = base + "layer_scale";
        value = t.reshape({t.numel(), 1, 1});  // timm [C] -> torchvision [C, 1, 1]
      } else {
        for (const auto& [from, to] : in_block)
          if (starts_with(rest, from)) name = base + to + rest.substr(from.size());
      }
    } else if (std::regex_match(key, m, head)) {
      name = (m[1].str() == "norm" ? "classifier.0." : "classifier.2.") + m[2].str();
    }
    if (name != key && renamed) renamed->push_back(key + " -> " + name);
    check(out.emplace(name, value).second, "timm_to_torchvision: two keys map to '", name, "'");
  }
  return out;
}

// ---- loading ----------------------------------------------------------------------------------

LoadReport load_state_dict(nn::Module& model, const StateDict& state_in, LoadOptions opt) {
  LoadReport report;
  const bool timm = opt.keys == KeyStyle::Timm || (opt.keys == KeyStyle::Auto && looks_like_timm(state_in));
  const StateDict state = timm ? timm_to_torchvision(state_in, &report.renamed) : state_in;
  const std::set<std::string> convs = conv_weights(model);
  const StateDict ours = model.state_dict();

  // Pair every checkpoint tensor with a model slot, in the model's layout.
  std::map<std::string, Tensor> pending;       // model key -> converted checkpoint tensor
  std::map<std::string, std::string> problem;  // checkpoint key -> "unexpected" / "mismatched"
  std::vector<std::string> mismatch_text;
  for (const auto& [key, src] : state) {
    auto it = ours.find(key);
    if (it == ours.end()) {
      problem[key] = "unexpected";
      continue;
    }
    const Tensor& dst = it->second;
    Tensor value = src;
    std::string layout;
    if (convs.count(key)) {
      layout = " (OIHW)";
      if (src.dim() == 4) value = src.permute({0, 2, 3, 1});  // OIHW -> O,H,W,I = [K,R,S,C]
    }
    const bool int_mismatch = (dst.dtype() == engine::DType::Int64) != (src.dtype() == engine::DType::Int64);
    if (value.shape() != dst.shape() || int_mismatch) {
      problem[key] = "mismatched";
      mismatch_text.push_back(key + ": checkpoint " + shape_str(src.shape()) + layout + " " +
                              engine::dtype_name(src.dtype()) + " vs model " +
                              shape_str(convs.count(key) ? Shape{dst.size(0), dst.size(3), dst.size(1), dst.size(2)} : dst.shape()) +
                              layout + " " + engine::dtype_name(dst.dtype()));
      continue;
    }
    pending[key] = value;
  }
  for (const auto& [key, t] : ours) {
    if (state.count(key)) continue;
    if (ends_with(key, "num_batches_tracked")) report.defaulted.push_back(key);
    else report.missing.push_back(key);
  }

  // A head that does not fit: drop the checkpoint's, keep ours as initialised.
  if (!opt.head_prefix.empty() && opt.head != HeadMismatch::Error) {
    const std::string hp = opt.head_prefix + ".";
    bool head_problem = false;
    for (const auto& [key, what] : problem) head_problem = head_problem || starts_with(key, hp);
    for (const auto& key : report.missing) head_problem = head_problem || starts_with(key, hp);
    bool imagenet = false;
    if (auto w = state.find(opt.head_prefix + ".weight"); w != state.end())
      imagenet = w->second.dim() == 2 && w->second.size(0) == 1000;
    if (head_problem && (opt.head == HeadMismatch::Drop || imagenet)) {
      for (const auto& [key, t] : state) {
        if (!starts_with(key, hp)) continue;
        report.dropped_head.push_back(key);
        problem.erase(key);
        pending.erase(key);
      }
      std::erase_if(mismatch_text, [&](const std::string& s) { return starts_with(s, hp); });
      for (const auto& [key, t] : ours)
        if (starts_with(key, hp)) report.head_initialised.push_back(key);
      std::erase_if(report.missing, [&](const std::string& k) { return starts_with(k, hp); });
    }
  }
  for (const auto& [key, what] : problem)
    if (what == "unexpected") report.unexpected.push_back(key);
  report.mismatched = mismatch_text;

  if (opt.strict && !report.ok()) {
    engine::fail("load_state_dict: the checkpoint does not fit the model (nothing was loaded): ",
                 report.summary(),
                 ". Check that the architecture matches the checkpoint, or load with strict = false"
                 " to take the tensors that fit.");
  }
  engine::NoGradGuard no_grad;
  for (const auto& [key, value] : pending) {
    ours.at(key).copy_(value);  // in place: same tensor object, new values
    report.loaded.push_back(key);
  }
  return report;
}

LoadReport load_state_dict(Model& model, const StateDict& state, LoadOptions opt) {
  if (opt.head_prefix.empty()) opt.head_prefix = model.head_prefix();
  return load_state_dict(static_cast<nn::Module&>(model), state, std::move(opt));
}

LoadReport load_weights(nn::Module& model, const std::string& path, LoadOptions opt) {
  engine::io::SafetensorsFile f = engine::io::load_safetensors(path);
  try {
    return load_state_dict(model, f.tensors, std::move(opt));
  } catch (const engine::Error& e) {
    throw engine::Error(path + ": " + e.what());
  }
}

LoadReport load_weights(Model& model, const std::string& path, LoadOptions opt) {
  if (opt.head_prefix.empty()) opt.head_prefix = model.head_prefix();
  return load_weights(static_cast<nn::Module&>(model), path, std::move(opt));
}

// ---- saving -----------------------------------------------------------------------------------

StateDict export_state_dict(const nn::Module& model) {
  const std::set<std::string> convs = conv_weights(model);
  engine::NoGradGuard no_grad;
  StateDict out;
  for (const auto& [key, t] : model.state_dict()) {
    Tensor v = t.detach();
    if (convs.count(key)) v = v.permute({0, 3, 1, 2});  // [K,R,S,C] -> OIHW
    Tensor host = Tensor::empty(v.shape(), v.dtype());
    host.copy_(v);
    out.emplace(key, host);
  }
  return out;
}

void save_weights(const nn::Module& model, const std::string& path,
                  const std::map<std::string, std::string>& metadata) {
  std::map<std::string, std::string> meta = metadata;
  meta.emplace("format", "pt");
  engine::io::save_safetensors(path, export_state_dict(model), meta);
}

}  // namespace models
