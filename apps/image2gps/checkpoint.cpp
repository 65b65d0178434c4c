#include "apps/image2gps/checkpoint.h"

#include <sstream>

#include "engine/io/safetensors.h"

namespace i2g {

const std::string& Checkpoint::get(const std::string& key) const {
  auto it = meta.find(key);
  engine::check(it != meta.end(), path, ": missing '", key, "' (not an image2gps checkpoint?)");
  return it->second;
}

double Checkpoint::get_number(const std::string& key) const {
  const std::string& s = get(key);
  try {
    size_t used = 0;
    double v = std::stod(s, &used);
    if (used == s.size()) return v;
  } catch (const std::exception&) {
  }
  engine::fail(path, ": '", key, "' is not a number: '", s, "'");
}

namespace {
std::string exact(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}
}  // namespace

void save_checkpoint(const std::string& path, nn::Module& model, const nn::Optimizer* optimizer,
                     const std::map<std::string, std::string>& meta) {
  std::map<std::string, engine::Tensor> tensors;
  for (auto& [name, t] : model.state_dict()) tensors["model." + name] = t;
  std::map<std::string, std::string> m = meta;
  if (optimizer) {
    nn::OptimizerState st = optimizer->state_dict();
    for (auto& [name, t] : st.tensors) tensors["optim." + name] = t;
    for (auto& [name, v] : st.scalars) m["optim." + name] = exact(v);
  }
  engine::io::save_safetensors(path, tensors, m);
}

Checkpoint read_checkpoint(const std::string& path) {
  auto f = engine::io::load_safetensors(path);
  Checkpoint c;
  c.tensors = std::move(f.tensors);
  c.meta = std::move(f.metadata);
  c.path = path;
  engine::check(c.meta.count("format") && c.meta.at("format") == "image2gps-checkpoint", path,
                ": not an image2gps checkpoint (no format=image2gps-checkpoint in its metadata)");
  return c;
}

void load_model_state(const Checkpoint& ckpt, nn::Module& model) {
  std::ostringstream problems;
  int n = 0;
  for (auto& [name, t] : model.state_dict()) {
    auto it = ckpt.tensors.find("model." + name);
    if (it == ckpt.tensors.end()) {
      problems << (n++ ? ", " : "") << "missing " << name;
      continue;
    }
    if (it->second.shape() != t.shape()) {
      problems << (n++ ? ", " : "") << name << " has shape " << engine::cat(it->second.shape())
               << " but the model expects " << engine::cat(t.shape());
      continue;
    }
  }
  engine::check(n == 0, ckpt.path, ": does not match the model (", problems.str(),
                "); was it trained with another --arch or --head?");
  engine::NoGradGuard no_grad;
  for (auto& [name, t] : model.state_dict()) t.copy_(ckpt.tensors.at("model." + name));
}

void load_optimizer_state(const Checkpoint& ckpt, nn::Optimizer& optimizer) {
  nn::OptimizerState st;
  for (auto& [key, t] : ckpt.tensors)
    if (key.rfind("optim.", 0) == 0) st.tensors[key.substr(6)] = t;
  for (auto& [key, v] : ckpt.meta)
    if (key.rfind("optim.", 0) == 0) st.scalars[key.substr(6)] = std::stod(v);
  optimizer.load_state_dict(st);
}

}  // namespace i2g
