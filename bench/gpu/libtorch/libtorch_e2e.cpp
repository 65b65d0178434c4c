// bench/gpu/libtorch/libtorch_e2e.cpp — LibTorch (C++, no Python) doing the same training step
// and inference pass as our bench/gpu/gpu_e2e_bench.cpp, on the networks of
// bench/e2e/torch_models.h (torchvision's resnet18 / resnet50 / convnext_tiny rebuilt with
// torch::nn), in the JSON schema of the suite (bench/gpu/e2e_common.h). Built and run by
// tools/gpu_bench.sh on the GPU machine against the torch package's LibTorch (see CMakeLists.txt).
//
//   libtorch_e2e --json out.json                       # CUDA: 3 models x fp32/TF32 x 2 layouts
//   libtorch_e2e --device cpu --batch 2 --steps 2      # smoke test on a machine without a GPU
//
// train: gradients dropped (each parameter's grad reset, as zero_grad(set_to_none)), forward,
//   torch::mse_loss against a [B, 2] target, backward, torch::optim::AdamW(lr 1e-4, weight decay
//   0.01; LibTorch's C++ AdamW is its single-tensor loop: C++ has no foreach/fused variant).
// infer: eval mode, NoGradGuard, forward only.
// precision: fp32 = setAllowTF32CuBLAS(false) + setAllowTF32CuDNN(false); tf32 = both true.
//   cuDNN benchmark mode on (setBenchmarkCuDNN), as PyTorch's cudnn.benchmark = True.
// layouts: channels_last (parameters and input NHWC, the layout ours uses) and contiguous (NCHW).
// Inputs: e2e::fill_uniform, the values ours and torch_e2e.py use. Timing as e2e_common.h:
// torch::cuda::synchronize(), step, synchronize; wall ms; median of the timed steps. Memory is
// not measured here (that needs LibTorch's CUDA allocator headers): PyTorch's rows report the
// same caching allocator running the same ATen kernels.
#include <torch/torch.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench/e2e/torch_models.h"
#include "bench/gpu/e2e_common.h"

namespace {

constexpr int64_t kOutputs = 2;
constexpr double kLr = 1e-4, kWeightDecay = 1e-2;

torch::Tensor uniform(const std::vector<int64_t>& shape, uint32_t seed) {
  torch::Tensor t = torch::empty(shape, torch::kFloat32);
  e2e::fill_uniform(t.data_ptr<float>(), t.numel(), seed);
  return t;
}

struct Config {
  torch::Device device{torch::kCPU};
  int64_t batch = 64, res = 224;
  e2e::Plan plan;
};

e2e::Record model_bench(const Config& c, const std::string& arch, bool train,
                        const std::string& precision, const std::string& layout) {
  e2e::Record r;
  r.set("bench", train ? "train" : "infer").set("model", arch).set("side", "libtorch");
  r.set("precision", precision).set("variant", "eager_" + layout).set("layout", layout);
  r.set("batch", c.batch).set("res", c.res);
  const bool gpu = c.device.is_cuda();
  at::globalContext().setAllowTF32CuBLAS(precision == "tf32");
  at::globalContext().setAllowTF32CuDNN(precision == "tf32");
  at::globalContext().setBenchmarkCuDNN(true);
  torch::manual_seed(0);
  std::shared_ptr<bench::TorchNet> net = bench::torch_model(arch, kOutputs);
  if (!net) throw std::runtime_error("unknown architecture '" + arch + "'");
  net->to(c.device);
  const bool cl = layout == "channels_last";
  if (cl) bench::to_channels_last(*net);
  const auto format = cl ? torch::MemoryFormat::ChannelsLast : torch::MemoryFormat::Contiguous;
  // Our NHWC values viewed as NCHW (channels_last strides), then the layout asked for.
  torch::Tensor images = uniform({c.batch, c.res, c.res, 3}, e2e::kSeedImages)
                             .to(c.device).permute({0, 3, 1, 2}).contiguous(format);
  torch::Tensor targets = uniform({c.batch, kOutputs}, e2e::kSeedTargets).to(c.device);
  net->train(train);
  std::vector<torch::Tensor> params = net->parameters();
  std::unique_ptr<torch::optim::AdamW> opt;
  if (train)
    opt = std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(kLr).weight_decay(kWeightDecay));
  torch::Tensor first, last;
  const e2e::StepTimes st = e2e::run_steps(
      c.plan,
      [&](bool) {
        if (train) {
          for (auto& p : params) p.mutable_grad().reset();
          torch::Tensor loss = torch::mse_loss(net->forward(images), targets);
          loss.backward();
          opt->step();
          last = loss.detach();
        } else {
          torch::NoGradGuard no_grad;
          last = net->forward(images);
        }
        if (!first.defined()) first = last;
      },
      [&] {
        if (gpu) torch::cuda::synchronize();
      });
  e2e::put_times(r, st);
  r.set("img_s", c.batch / (e2e::median(st.ms) * 1e-3));
  if (train) r.set("optimizer", "torch::optim::AdamW(lr 1e-4, weight_decay 0.01), C++ for-loop");
  const double s_first = first.sum().item<double>(), s_last = last.sum().item<double>();
  r.set(train ? "loss_first" : "out_sum_first", s_first);
  r.set(train ? "loss_last" : "out_sum_last", s_last);
  r.set("status", std::isfinite(s_first) && std::isfinite(s_last) ? "ok" : "nonfinite");
  return r;
}

int run(int argc, char** argv) {
  e2e::Args a(argc, argv, {
      {"device", "cuda (default) or cpu (a smoke test)"},
      {"bench", "train,infer (default both)"},
      {"arch", "resnet18,resnet50,convnext_tiny (default all)"},
      {"precision", "fp32,tf32 (default both)"},
      {"layouts", "channels_last,contiguous (default both)"},
      {"batch", "images per step (default 64)"},
      {"res", "image side (default 224)"},
      {"warmup", "untimed steps per benchmark (default 5)"},
      {"steps", "timed steps per benchmark (default 20)"},
      {"max-seconds", "time cap per benchmark (default 20)"},
      {"budget", "seconds; no new benchmark starts after (default 0: no limit)"},
      {"json", "write the results there"},
  });
  if (a.help()) {
    std::printf("libtorch_e2e: LibTorch's training step and inference (see the source)\n%s",
                a.usage().c_str());
    return 0;
  }
  Config c;
  const std::string dev = a.str("device", "cuda");
  if (dev != "cuda" && dev != "cpu") throw std::runtime_error("--device: cuda or cpu");
  if (dev == "cuda") {
    if (!torch::cuda::is_available()) {
      std::printf("libtorch_e2e: LibTorch sees no CUDA device, skipped\n");
      return 77;
    }
    c.device = torch::Device(torch::kCUDA, 0);
  }
  c.batch = static_cast<int64_t>(a.num("batch", 64));
  c.res = static_cast<int64_t>(a.num("res", 224));
  c.plan.warmup = static_cast<int>(a.num("warmup", 5));
  c.plan.steps = static_cast<int>(a.num("steps", 20));
  c.plan.max_seconds = a.num("max-seconds", 20);
  const double budget = a.num("budget", 0);
  const auto benches = a.list("bench", "train,infer", {"train", "infer"});
  const auto archs = a.list("arch", "resnet18,resnet50,convnext_tiny");
  const auto precisions = a.list("precision", "fp32,tf32", {"fp32", "tf32"});
  const auto layouts = a.list("layouts", "channels_last,contiguous", {"channels_last", "contiguous"});

  e2e::JsonLog log(a.str("json", ""));
  log.context().set("side", "libtorch").set("date", e2e::utc_now()).set("device_kind", dev);
  log.context().set("libtorch", std::to_string(TORCH_VERSION_MAJOR) + "." +
                                    std::to_string(TORCH_VERSION_MINOR) + "." +
                                    std::to_string(TORCH_VERSION_PATCH));
  log.context().set("batch", c.batch).set("res", c.res).set("cudnn_benchmark", true);
  log.context().set("timing", "wall ms of synchronize-step-synchronize, median of timed steps");
  log.flush();
  const auto start = std::chrono::steady_clock::now();
  int failures = 0;
  for (const auto& arch : archs)
    for (const auto& precision : precisions)
      for (const auto& layout : layouts)
        for (const bool train : {true, false}) {
          const char* bench = train ? "train" : "infer";
          if (std::find(benches.begin(), benches.end(), bench) == benches.end()) continue;
          e2e::Record r;
          const double spent =
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
          if (budget > 0 && spent > budget) {
            r.set("bench", bench).set("model", arch).set("side", "libtorch");
            r.set("precision", precision).set("variant", "eager_" + layout);
            r.set("status", "skipped").set("note", "time budget spent");
          } else {
            try {
              r = model_bench(c, arch, train, precision, layout);
            } catch (const std::exception& e) {
              r.set("bench", bench).set("model", arch).set("side", "libtorch");
              r.set("precision", precision).set("variant", "eager_" + layout);
              r.set("status", "error").set("error", e.what());
              ++failures;
            }
          }
          log.add(r);
          std::printf("%s\n", r.str().c_str());
          std::fflush(stdout);
        }
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "libtorch_e2e: %s\n", e.what());
    return 2;
  }
}
