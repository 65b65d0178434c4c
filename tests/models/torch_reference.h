// tests/models/torch_reference.h — reference files made by torchvision, once per test binary.
//
// Runs Debian's /usr/bin/python3 (which has python3-torch and python3-torchvision) and caches
// what it writes in <build dir>/tests/torch_reference:
//   keys_<arch>.txt          "name dtype d0 d1 ..." per state_dict entry of
//                            torchvision.models.<arch>(num_classes=1000)
//   <arch>_io.safetensors    a seeded <arch>(num_classes=7) with randomised BatchNorm stats,
//                            affine parameters and layer scales (so every part matters), in
//                            eval mode, plus "test.input" [2, 3, 72, 56] (NCHW) and
//                            "test.output" [2, 7], its output
// Tests skip with the reason when python, torch or torchvision is missing.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <unistd.h>

#include "engine/engine.h"

namespace torch_reference {

inline const char* kScript = R"PY(
import json, os, struct, sys
out = sys.argv[1]
try:
    import torch, torchvision
except Exception as e:
    print("SKIP cannot import torch/torchvision: %s" % e)
    sys.exit(0)

def save(path, tensors):
    header, blobs, off = {}, [], 0
    codes = {torch.float32: "F32", torch.int64: "I64"}
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        b = t.numpy().tobytes()
        header[name] = {"dtype": codes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)

for arch in ["resnet18", "resnet34", "resnet50", "convnext_tiny"]:
    m = getattr(torchvision.models, arch)(num_classes=1000)
    with open(os.path.join(out, "keys_%s.txt" % arch), "w") as f:
        for k, v in m.state_dict().items():
            f.write(" ".join([k, str(v.dtype).replace("torch.", "")] + [str(d) for d in v.shape]) + "\n")

for arch in ["resnet18", "convnext_tiny"]:
    torch.manual_seed(0)
    m = getattr(torchvision.models, arch)(num_classes=7)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.1)
                mod.num_batches_tracked.fill_(17)
            if isinstance(mod, torch.nn.LayerNorm) or type(mod).__name__ == "LayerNorm2d":
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.1)
            if hasattr(mod, "layer_scale"):
                mod.layer_scale.uniform_(0.2, 0.6)
    m.eval()
    x = torch.randn(2, 3, 72, 56)
    with torch.no_grad():
        y = m(x)
    sd = dict(m.state_dict())
    sd["test.input"] = x
    sd["test.output"] = y
    save(os.path.join(out, "%s_io.safetensors" % arch), sd)
print("OK")
)PY";

struct Reference {
  std::string dir;          // where the files are (empty when skipped)
  std::string skip_reason;  // why there are none
};

namespace detail {

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A finished cache: the same script produced it and it says OK.
inline bool valid(const std::filesystem::path& dir) {
  return std::filesystem::exists(dir / "OK") && read_file(dir / "make_reference.py") == kScript;
}

}  // namespace detail

// The files are made once and kept in the build directory (ctest runs every test in its own
// process, and the script takes ~15 s), keyed by the script text; a new script remakes them.
inline const Reference& get() {
  static const Reference ref = [] {
    namespace fs = std::filesystem;
    Reference r;
    const fs::path dir = fs::path(ENGINE_BINARY_DIR) / "tests" / "torch_reference";
    if (detail::valid(dir)) {
      r.dir = dir.string();
      return r;
    }
    if (!fs::exists("/usr/bin/python3")) {
      r.skip_reason = "/usr/bin/python3 not found (install python3-torch python3-torchvision)";
      return r;
    }
    // Made in a private directory, then renamed into place, so concurrent test processes
    // never see half a cache.
    const fs::path tmp = dir.string() + ".tmp-" + std::to_string(static_cast<long>(::getpid()));
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    std::ofstream(tmp / "make_reference.py") << kScript;
    const std::string cmd =
        "/usr/bin/python3 " + (tmp / "make_reference.py").string() + " " + tmp.string() + " 2>&1";
    std::string output;
    int status = -1;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
      char buf[512];
      while (std::fgets(buf, sizeof buf, p)) output += buf;
      status = ::pclose(p);
    }
    if (status != 0 || output.rfind("SKIP", 0) == 0 || output.find("OK") == std::string::npos) {
      fs::remove_all(tmp);
      r.skip_reason = output.rfind("SKIP", 0) == 0 ? output : "reference script failed: " + output;
      return r;
    }
    std::ofstream(tmp / "OK") << "ok\n";
    std::error_code ec;
    if (!detail::valid(dir)) fs::remove_all(dir, ec);  // a stale cache from another script
    fs::rename(tmp, dir, ec);
    if (ec) {  // another process won the race: use its copy if complete, else ours
      if (detail::valid(dir)) fs::remove_all(tmp, ec);
      else {
        r.dir = tmp.string();
        return r;
      }
    }
    r.dir = dir.string();
    return r;
  }();
  return ref;
}

struct KeyInfo {
  std::string dtype;
  engine::Shape shape;
};

// torchvision's state_dict of `arch` (1000 classes): name -> dtype and shape.
inline std::map<std::string, KeyInfo> keys(const std::string& arch) {
  std::map<std::string, KeyInfo> out;
  std::ifstream f(get().dir + "/keys_" + arch + ".txt");
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream is(line);
    std::string name;
    KeyInfo k;
    is >> name >> k.dtype;
    int64_t d;
    while (is >> d) k.shape.push_back(d);
    out[name] = k;
  }
  return out;
}

}  // namespace torch_reference

// Skips the current test when there is no torchvision reference.
#define REQUIRE_TORCH_REFERENCE()                                         \
  do {                                                                    \
    if (torch_reference::get().dir.empty())                               \
      GTEST_SKIP() << "no torchvision reference: " << torch_reference::get().skip_reason; \
  } while (0)

// ---- checks shared by the model tests -------------------------------------------------------

#include <algorithm>
#include <cmath>

#include "engine/io/safetensors.h"
#include "models/weights.h"

namespace torch_reference {

inline int64_t count_parameters(const nn::Module& m) {
  int64_t n = 0;
  for (auto& [name, t] : m.named_parameters()) n += t.numel();
  return n;
}

// Our state dict in PyTorch layouts has exactly torchvision's names, shapes and dtypes.
inline void expect_matches_torchvision(const nn::Module& model, const std::string& arch) {
  const auto ref = keys(arch);
  ASSERT_FALSE(ref.empty()) << "no keys for " << arch;
  const auto ours = models::export_state_dict(model);
  for (const auto& [name, k] : ref) {
    auto it = ours.find(name);
    if (it == ours.end()) {
      ADD_FAILURE() << arch << ": torchvision has " << name << ", we do not";
      continue;
    }
    EXPECT_EQ(it->second.shape(), k.shape) << arch << " " << name;
    EXPECT_EQ(engine::dtype_name(it->second.dtype()), k.dtype) << arch << " " << name;
  }
  for (const auto& [name, t] : ours)
    EXPECT_TRUE(ref.count(name)) << arch << ": we have " << name << ", torchvision does not";
}

// Loads <arch>_io.safetensors into `model` (7 outputs) and checks its eval-mode output on the
// saved input against torchvision's.
inline void expect_forward_matches_torchvision(models::Model& model, const std::string& arch,
                                               double rtol, double atol) {
  auto file = engine::io::load_safetensors(get().dir + "/" + arch + "_io.safetensors");
  engine::Tensor x = file.tensors.at("test.input"), y_ref = file.tensors.at("test.output");
  file.tensors.erase("test.input");
  file.tensors.erase("test.output");
  models::LoadReport r = models::load_state_dict(model, file.tensors);
  EXPECT_TRUE(r.ok()) << r.summary();
  EXPECT_TRUE(r.dropped_head.empty());
  model.eval();
  engine::NoGradGuard no_grad;
  engine::Tensor y = model.forward(x.permute({0, 2, 3, 1}).contiguous());  // NCHW -> NHWC
  ASSERT_EQ(y.shape(), y_ref.shape());
  // Compared on the whole output and relative to its scale.
  double scale = 0;
  for (double v : y_ref.to_vector()) scale = std::max(scale, std::abs(v));
  auto got = y.to_vector(), want = y_ref.to_vector();
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], atol * scale + rtol * std::abs(want[i])) << arch << " output " << i;
}

}  // namespace torch_reference
