#include "apps/image2gps/trainer.h"

#include <csignal>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "apps/image2gps/checkpoint.h"
#include "apps/image2gps/file_io.h"
#include "apps/image2gps/geodesic.h"
#include "apps/image2gps/inference.h"
#include "apps/image2gps/loader.h"
#include "apps/image2gps/progress.h"
#include "apps/image2gps/svg_plot.h"
#include "engine/profiler.h"
#include "engine/readback.h"
#include "kernels/cpu/parallel.h"
#include "models/weights.h"
#include "nn/scheduler.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace i2g {

namespace fs = std::filesystem;
using engine::Tensor;

GpuChoices& gpu_choices() {
  static GpuChoices choices;
  return choices;
}

engine::Device resolve_device(const std::string& name) {
  engine::Device d = name == "auto" ? (engine::cuda_available() ? engine::Device::cuda()
                                                                : engine::Device::cpu())
                                    : engine::Device::parse(name);
  engine::check(d.is_cpu() || engine::cuda_available(), "--device ", name,
                ": no CUDA GPU is available to this build");
  if (d.is_cuda()) {
    const GpuChoices& g = gpu_choices();
    engine::set_gpu_kernels(g.kernels);
    if (g.tf32) engine::set_gpu_tf32(true);
    if (g.cudnn_benchmark) engine::set_gpu_cudnn_benchmark(true);
    if (g.cudnn_nondeterministic) engine::set_gpu_cudnn_deterministic(false);
    static bool said = false;
    if (!said) std::fprintf(stderr, "kernels: %s\n", engine::gpu_kernels_summary().c_str());
    said = true;
  }
  return d;
}

namespace {

std::atomic<bool> g_stop{false};
void on_sigint(int) { g_stop = true; }

// Installs the Ctrl-C handler for the length of a training run.
class SigintScope {
 public:
  SigintScope() {
    g_stop = false;
    prev_ = std::signal(SIGINT, on_sigint);
  }
  ~SigintScope() { std::signal(SIGINT, prev_); }

 private:
  void (*prev_)(int);
};

std::string num(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

std::shared_ptr<models::Model> build_model(const TrainConfig& cfg) {
  models::ModelOptions mo;
  mo.seed = cfg.seed;
  mo.dropout_seed = cfg.seed + 1;
  mo.drop_path_rate = cfg.drop_path;
  return models::create(cfg.arch, 2, models::parse_head(cfg.head), mo);
}

// Everything a run needs, rebuilt identically for a fresh start and for a resume.
struct Run {
  TrainConfig cfg;
  engine::Device device;
  Dataset train_data, val_data;
  CoordNorm norm;
  std::shared_ptr<models::Model> model;
  std::unique_ptr<nn::Optimizer> opt;
  std::unique_ptr<nn::LRScheduler> sched;
  std::shared_ptr<ImageCache> cache = std::make_shared<ImageCache>(size_t{2} << 30);

  int epoch = 0;         // current epoch (0-based)
  size_t batch = 0;      // batches of `epoch` already done
  double loss_sum = 0;   // of the current epoch so far
  size_t loss_count = 0;
  double best_rmse = INFINITY, best_mean = INFINITY;
  int best_epoch = -1;

  fs::path dir() const { return cfg.run_dir; }
};

void make_optimizer(Run& r) {
  const TrainConfig& c = r.cfg;
  // Two groups: the backbone at lr, the head at head_lr. Frozen parameters simply get no
  // gradient, so the same optimizer serves both phases of freeze-then-unfreeze.
  nn::ParamGroup backbone, head;
  const std::string prefix = r.model->head_prefix() + ".";
  for (auto& [name, t] : r.model->named_parameters())
    (name.rfind(prefix, 0) == 0 ? head : backbone).params.push_back(t);
  head.lr = c.head_lr > 0 ? c.head_lr : c.lr;
  std::vector<nn::ParamGroup> groups{backbone, head};
  if (c.optimizer == "sgd") {
    nn::SGDOptions o;
    o.lr = c.lr, o.momentum = c.momentum, o.weight_decay = c.weight_decay;
    r.opt = std::make_unique<nn::SGD>(groups, o);
  } else if (c.optimizer == "adam") {
    nn::AdamOptions o;
    o.lr = c.lr, o.weight_decay = c.weight_decay;
    r.opt = std::make_unique<nn::Adam>(groups, o);
  } else {
    nn::AdamWOptions o;
    o.lr = c.lr, o.weight_decay = c.weight_decay;
    r.opt = std::make_unique<nn::AdamW>(groups, o);
  }
  if (c.scheduler == "step") r.sched = std::make_unique<nn::StepLR>(*r.opt, c.step_size, c.gamma);
  else if (c.scheduler == "cosine")
    r.sched = std::make_unique<nn::WarmupCosineLR>(*r.opt, c.warmup_epochs, c.epochs);
}

void setup(Run& r) {
  r.cfg.validate();
#if defined(_OPENMP)
  if (r.cfg.threads > 0) omp_set_num_threads(r.cfg.threads);
#endif
  r.device = resolve_device(r.cfg.device);
  fs::path data = r.cfg.data_dir;
  r.train_data = Dataset::open((data / "train").string());
  r.val_data = Dataset::open((data / "val").string());
  r.norm = CoordNorm::fit(r.train_data.records);
  r.model = build_model(r.cfg);
  if (!r.cfg.weights.empty()) {
    models::LoadReport rep = models::load_weights(*r.model, r.cfg.weights);
    std::fprintf(stderr, "weights: %s\n", rep.summary().c_str());
  }
  r.model->to(r.device);
  make_optimizer(r);
}

std::map<std::string, std::string> run_meta(const Run& r) {
  std::map<std::string, std::string> m = r.norm.to_metadata();
  m["format"] = "image2gps-checkpoint";
  m["config"] = r.cfg.to_json().dump();
  m["arch"] = r.cfg.arch;
  m["head"] = r.cfg.head;
  m["image_size"] = std::to_string(r.cfg.image_size);
  m["epoch"] = std::to_string(r.epoch);
  m["batch"] = std::to_string(r.batch);
  m["loss_sum"] = num(r.loss_sum);
  m["loss_count"] = std::to_string(r.loss_count);
  m["best_val_rmse_m"] = num(r.best_rmse);
  m["best_val_mean_m"] = num(r.best_mean);
  m["best_epoch"] = std::to_string(r.best_epoch);
  m["dropout_seed"] = std::to_string(r.model->dropout_generator().seed());
  m["dropout_offset"] = std::to_string(r.model->dropout_generator().offset());
  if (r.sched)
    for (auto& [k, v] : r.sched->state_dict()) m["sched." + k] = num(v);
  return m;
}

void save_last(const Run& r) {
  save_checkpoint((r.dir() / "last.ckpt").string(), *r.model, r.opt.get(), run_meta(r));
}

// Drops log lines of epochs at or after `epoch` (they are about to be redone).
void trim_log(const fs::path& log, int epoch) {
  if (!fs::exists(log)) return;
  std::ifstream in(log);
  std::string line, kept;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("epoch", 0) < epoch + 1) kept += line + "\n";
  }
  write_file_atomic(log.string(), kept);
}

void append_log(const fs::path& log, const nlohmann::json& j) {
  std::ofstream out(log, std::ios::app);
  out << j.dump() << "\n";
  engine::check(out.good(), log.string(), ": cannot append to the training log");
}

void plot_curves(const fs::path& dir) {
  std::ifstream in(dir / "log.jsonl");
  PlotSeries train{"train loss", {}, {}, ""}, val{"val loss", {}, {}, ""};
  PlotSeries meters{"val mean error (m)", {}, {}, ""};
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    double e = j.value("epoch", 0);
    train.x.push_back(e), train.y.push_back(j.value("train_loss", 0.0));
    val.x.push_back(e), val.y.push_back(j.value("val_loss", 0.0));
    meters.x.push_back(e), meters.y.push_back(j.value("val_mean_m", 0.0));
  }
  if (train.x.empty()) return;
  PlotOptions o;
  o.title = "Training and validation loss (normalised coordinates)";
  o.x_label = "epoch", o.y_label = "MSE";
  write_curves_svg((dir / "loss.svg").string(), {train, val}, o);
  o.title = "Validation mean error";
  o.y_label = "meters";
  write_curves_svg((dir / "val_error.svg").string(), {meters}, o);
}

// --profile N: steps 2 .. N+1 of the run (the first one allocates and tunes) run inside an
// engine::profiler session; its table goes to stderr and to RUN_DIR/profile.txt, its Chrome
// trace to RUN_DIR/profile.trace.json (open it in Perfetto). The span includes the time the loop
// spends outside the engine's ops (waiting for the loader, the host's own work): the table's gap.
class StepProfiler {
 public:
  StepProfiler(int steps, engine::Device device, fs::path dir)
      : steps_(steps), device_(device), dir_(std::move(dir)) {}
  // Before each training step.
  void before_step() {
    if (steps_ <= 0 || done_) return;
    if (seen_++ == 1) session_.emplace(device_);
  }
  // After each training step; stops after the last profiled one.
  void after_step() {
    if (session_ && ++profiled_ == steps_) finish();
  }
  // Stops early (an epoch ended, training stopped) if a session is open.
  void finish() {
    if (!session_) return;
    const engine::profiler::Profile p = session_->stop();
    session_.reset();
    done_ = true;
    const std::string table = "image2gps train: " + std::to_string(profiled_) +
                              " training steps on " + device_.str() + ", op by op\n" +
                              p.table(30);
    write_file_atomic((dir_ / "profile.txt").string(), table);
    write_file_atomic((dir_ / "profile.trace.json").string(), p.chrome_trace());
    std::fprintf(stderr, "%swrote %s (open it in Perfetto or chrome://tracing)\n", table.c_str(),
                 (dir_ / "profile.trace.json").string().c_str());
  }

 private:
  int steps_;
  engine::Device device_;
  fs::path dir_;
  std::optional<engine::profiler::Session> session_;
  int seen_ = 0, profiled_ = 0;
  bool done_ = false;
};

TrainResult loop(Run& r) {
  SigintScope sigint;
  const fs::path log = r.dir() / "log.jsonl";
  trim_log(log, r.epoch);
  TrainResult res;
  res.run_dir = r.dir().string();
  StepProfiler profiler(r.cfg.profile_steps, r.device, r.dir());

  for (; r.epoch < r.cfg.epochs; ++r.epoch) {
    r.model->freeze_backbone(r.epoch < r.cfg.freeze_epochs);
    r.model->train();
    LoaderOptions lo;
    lo.batch_size = r.cfg.batch_size;
    lo.shuffle = true;
    lo.drop_last = r.train_data.size() > static_cast<size_t>(r.cfg.batch_size);
    lo.seed = r.cfg.seed;
    lo.augment.preset = parse_augment_preset(r.cfg.augment);
    lo.augment.size = r.cfg.image_size;
    lo.augment.hflip = r.cfg.hflip;
    lo.workers = decode_workers(r.cfg.workers, r.device);
    lo.skip_bad = r.cfg.skip_bad;
    Loader loader(r.train_data, r.norm, lo, r.epoch, r.cache);
    Progress progress("epoch " + std::to_string(r.epoch + 1) + "/" + std::to_string(r.cfg.epochs),
                      loader.num_batches());
    auto t0 = std::chrono::steady_clock::now();
    size_t images = 0, b_index = 0;
    Batch batch;
    // Step b's loss is read after step b + 1 is queued (engine::Readback): reading it right
    // after its forward pass would make the host wait for the GPU there, and the GPU would
    // then idle while the host queued the backward pass and the next batch. So a NaN loss
    // stops training one step later, still before anything is saved: the checkpoint on disk
    // stays the last good one.
    engine::Readback pending;
    size_t pending_batch = 0, pending_images = 0;
    auto settle = [&] {
      if (!pending.started()) return;
      const double lv = pending.get()[0];
      pending = engine::Readback();
      engine::check(std::isfinite(lv), "training stopped: the loss became ", lv, " at epoch ",
                    r.epoch + 1, ", batch ", pending_batch, "; the last good checkpoint is ",
                    (r.dir() / "last.ckpt").string(), " (try a lower --lr)");
      r.loss_sum += lv * pending_images;
      r.loss_count += pending_images;
    };
    while (loader.next(batch)) {
      if (b_index++ < r.batch) continue;  // resumed mid-epoch: these batches are done
      profiler.before_step();
      Tensor x = batch.images.to(r.device), y = batch.targets.to(r.device);
      Tensor pred = r.model->forward(x);
      Tensor loss = r.cfg.loss == "huber" ? engine::huber_loss(pred, y, r.cfg.huber_delta)
                                          : engine::mse_loss(pred, y);
      loss.backward();
      r.opt->step();
      r.opt->zero_grad();
      r.batch = b_index;
      settle();  // the previous step's loss, computed long before this step's work
      pending = engine::Readback(loss);
      pending_batch = b_index, pending_images = batch.indices.size();
      profiler.after_step();
      images += batch.indices.size();
      progress.update(b_index, images, r.loss_sum / std::max<size_t>(r.loss_count, 1));
      if (g_stop) {
        profiler.finish();
        settle();
        save_last(r);
        progress.finish("interrupted: saved " + (r.dir() / "last.ckpt").string() +
                        "; continue with image2gps train --resume " + r.dir().string());
        res.interrupted = true;
        res.epochs_done = r.epoch;
        res.best_val_rmse_m = r.best_rmse, res.best_val_mean_m = r.best_mean;
        res.best_epoch = r.best_epoch;
        return res;
      }
    }
    profiler.finish();  // the epoch ended before N steps: what was profiled
    settle();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (loader.skipped() > 0)
      std::fprintf(stderr, "skipped %zu unreadable images (--skip-bad)\n", loader.skipped());

    InferenceOptions io;
    io.image_size = r.cfg.image_size;
    io.batch_size = r.cfg.batch_size;
    io.workers = r.cfg.workers;
    io.skip_bad = r.cfg.skip_bad;
    Predictions val = run_model(*r.model, r.val_data, r.norm, r.device, io);
    GeoMetrics m = geo_metrics(val.pred, val.truth);
    double train_loss = r.loss_sum / std::max<size_t>(r.loss_count, 1);
    double lr = r.opt->groups()[0].lr;
    if (r.sched) r.sched->step();

    bool best = m.rmse_m < r.best_rmse;
    if (best) {
      r.best_rmse = m.rmse_m, r.best_mean = m.mean_m, r.best_epoch = r.epoch;
    }
    nlohmann::json j = {{"epoch", r.epoch + 1},          {"train_loss", train_loss},
                        {"val_loss", val.loss},          {"val_rmse_m", m.rmse_m},
                        {"val_mean_m", m.mean_m},        {"val_median_m", m.median_m},
                        {"val_p90_m", m.p90_m},          {"lr", lr},
                        {"train_img_per_s", images / std::max(secs, 1e-9)},
                        {"decode_img_per_s_per_core", loader.images_per_second_per_worker()},
                        {"seconds", secs},               {"best", best}};
    append_log(log, j);
    // The epoch is done: the next resume starts at the next one.
    int finished = r.epoch;
    r.epoch = finished + 1, r.batch = 0, r.loss_sum = 0, r.loss_count = 0;
    if (best) save_checkpoint((r.dir() / "best.ckpt").string(), *r.model, nullptr, run_meta(r));
    save_last(r);
    r.epoch = finished;
    plot_curves(r.dir());
    std::ostringstream s;
    s.precision(4);
    s << "train loss " << train_loss << " | val loss " << val.loss << " | val RMSE "
      << m.rmse_m << " m, mean " << m.mean_m << " m, median " << m.median_m << " m"
      << (best ? " (best)" : "");
    progress.finish(s.str());
    res.epochs_done = r.epoch + 1;
  }
  res.best_val_rmse_m = r.best_rmse;
  res.best_val_mean_m = r.best_mean;
  res.best_epoch = r.best_epoch;
  return res;
}

}  // namespace

TrainResult train(const TrainConfig& cfg) {
  Run r;
  r.cfg = cfg;
  engine::check(!fs::exists(fs::path(cfg.run_dir) / "last.ckpt"), cfg.run_dir,
                " already holds a run (last.ckpt); continue it with --resume ", cfg.run_dir,
                " or choose another --out");
  setup(r);
  fs::create_directories(r.dir());
  write_file_atomic((r.dir() / "config.json").string(), r.cfg.to_json().dump(2) + "\n");
  if (fs::exists(r.dir() / "log.jsonl")) fs::remove(r.dir() / "log.jsonl");
  return loop(r);
}

TrainResult resume(const std::string& run_dir, int epochs) {
  const std::string path = (fs::path(run_dir) / "last.ckpt").string();
  engine::check(fs::exists(path), run_dir, ": no last.ckpt to resume from");
  Checkpoint ck = read_checkpoint(path);
  Run r;
  r.cfg = TrainConfig::from_json(nlohmann::json::parse(ck.get("config")));
  r.cfg.run_dir = run_dir;
  r.cfg.weights.clear();  // the checkpoint holds the weights now
  if (epochs > 0) r.cfg.epochs = epochs;
  setup(r);
  load_model_state(ck, *r.model);
  load_optimizer_state(ck, *r.opt);
  if (r.sched) {
    std::map<std::string, double> st;
    for (auto& [k, v] : ck.meta)
      if (k.rfind("sched.", 0) == 0) st[k.substr(6)] = std::stod(v);
    r.sched->load_state_dict(st);
  }
  r.epoch = static_cast<int>(ck.get_number("epoch"));
  r.batch = static_cast<size_t>(ck.get_number("batch"));
  r.loss_sum = ck.get_number("loss_sum");
  r.loss_count = static_cast<size_t>(ck.get_number("loss_count"));
  r.best_rmse = ck.get_number("best_val_rmse_m");
  r.best_mean = ck.get_number("best_val_mean_m");
  r.best_epoch = static_cast<int>(ck.get_number("best_epoch"));
  r.model->dropout_generator().set_state(static_cast<uint64_t>(std::stoull(ck.get("dropout_seed"))),
                                         static_cast<uint64_t>(std::stoull(ck.get("dropout_offset"))));
  return loop(r);
}

LoadedModel load_trained_model(const std::string& ckpt_path, engine::Device device) {
  Checkpoint ck = read_checkpoint(ckpt_path);
  LoadedModel lm;
  lm.config = TrainConfig::from_json(nlohmann::json::parse(ck.get("config")));
  lm.norm = CoordNorm::from_metadata(ck.meta, ckpt_path);
  lm.model = build_model(lm.config);
  load_model_state(ck, *lm.model);
  lm.model->to(device);
  lm.model->eval();
  return lm;
}

}  // namespace i2g
