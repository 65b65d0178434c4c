#include "models/small_cnn.h"

#include "nn/init.h"

namespace models {

SmallCnn::SmallCnn(int64_t num_outputs, Head head, const ModelOptions& options)
    : Model("small_cnn", 128, num_outputs, head, "fc", options) {
  engine::Generator gen(options.seed);
  conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(
                                       3, 16, 3, gen,
                                       nn::Conv2dOptions{.stride = 2, .padding = 1, .bias = false}));
  bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(16));
  int64_t in = 16;
  for (int s = 0; s < 4; ++s) {
    const int64_t out = int64_t{16} << s;
    layers[s] = register_module("layer" + std::to_string(s + 1),
                                std::make_shared<BasicBlock>(in, out, s == 0 ? 1 : 2, gen));
    in = out;
  }
  for (auto& [name, m] : named_modules())
    if (auto* conv = dynamic_cast<nn::Conv2d*>(m)) nn::init::kaiming_normal_fan_out_relu_(conv->weight, gen);
  head_ = register_module("fc", make_head(gen));
}

Tensor SmallCnn::features(const Tensor& x) {
  check_input(x);
  Tensor y = engine::relu((*bn1)((*conv1)(x)));
  for (auto& block : layers) y = (*block)(y);
  return engine::global_avg_pool(y);
}

std::shared_ptr<SmallCnn> small_cnn(int64_t n, Head head, const ModelOptions& o) {
  return std::make_shared<SmallCnn>(n, head, o);
}

}  // namespace models
