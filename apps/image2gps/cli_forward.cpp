// `image2gps forward --arch NAME --weights FILE [--features] IMAGE` — prints a model's output
// (or embedding) for one image on one line, 9 significant digits per value. Students use it to
// look inside a model; the PyTorch parity tests compare it with torchvision.
#include <cstdio>

#include "apps/image2gps/cli.h"
#include "apps/image2gps/image_io.h"
#include "apps/image2gps/resize.h"
#include "apps/image2gps/trainer.h"
#include "engine/io/safetensors.h"
#include "models/weights.h"

namespace i2g {

namespace {

struct ForwardArgs {
  std::string arch, weights, image, device = "cpu";
  bool features = false;
};

// The head a checkpoint carries: its prefix tells linear from the MLP head, and the last
// Linear's rows give the number of outputs.
struct HeadShape {
  models::Head head = models::Head::Linear;
  int64_t outputs = 1000;
};

HeadShape head_of(const std::map<std::string, engine::Tensor>& st, const std::string& prefix,
                  const std::string& path) {
  auto rows = [&](const std::string& key) -> int64_t {
    auto it = st.find(key);
    return it == st.end() || it->second.dim() != 2 ? -1 : it->second.size(0);
  };
  if (int64_t n = rows(prefix + ".weight"); n > 0) return {models::Head::Linear, n};
  if (int64_t n = rows(prefix + ".3.weight"); n > 0) return {models::Head::Mlp, n};
  engine::fail(path, ": no head found (expected ", prefix, ".weight or ", prefix,
               ".3.weight)");
}

void run_forward(const ForwardArgs& a) {
  auto file = engine::io::load_safetensors(a.weights);
  bool convnext = a.arch.rfind("convnext", 0) == 0;
  HeadShape h = head_of(file.tensors, convnext ? "classifier.2" : "fc", a.weights);
  models::ModelOptions mo;
  if (h.head == models::Head::Mlp) {
    mo.mlp_hidden = file.tensors.at(std::string(convnext ? "classifier.2" : "fc") + ".1.weight").size(0);
  }
  auto model = models::create(a.arch, h.outputs, h.head, mo);
  models::LoadOptions lo;
  lo.head = models::HeadMismatch::Error;  // the model was built for this head
  models::LoadReport rep = models::load_state_dict(*model, file.tensors, lo);
  engine::check(rep.ok(), a.weights, ": ", rep.summary());
  engine::Device device = resolve_device(a.device);
  model->to(device);
  model->eval();

  Image img = load_image(a.image);
  if (img.width != 224 || img.height != 224) img = resize_bilinear(img, 224, 224);
  std::vector<float> x = to_normalized_nhwc(img);
  engine::NoGradGuard no_grad;
  engine::Tensor in = engine::Tensor::from_vector(x, {1, 224, 224, 3}).to(device);
  engine::Tensor out = a.features ? model->features(in) : model->forward(in);
  std::vector<float> v = out.to_float_vector();
  for (size_t i = 0; i < v.size(); ++i) std::printf(i ? " %.9g" : "%.9g", v[i]);
  std::printf("\n");
}

}  // namespace

void add_forward_command(CLI::App& app) {
  auto a = std::make_shared<ForwardArgs>();
  auto* f = app.add_subcommand(
      "forward", "Print a model's output (or --features embedding) for one image, eval mode. "
                 "A 224x224 RGB PNG is used as is (other sizes are resized); "
                 "x = (pixel/255 - ImageNet mean) / std");
  f->add_option("--arch", a->arch, "resnet18 | resnet34 | resnet50 | convnext_tiny | ...")
      ->required();
  f->add_option("--weights", a->weights, "Converted weights (.safetensors, PyTorch names)")
      ->required();
  f->add_flag("--features", a->features, "Print the embedding before the head");
  add_device_options(f, a->device, "cpu | cuda | auto");
  f->add_option("IMAGE", a->image, "Image file")->required();
  f->callback([a] { run_forward(*a); });
}

}  // namespace i2g
