// `image2gps train` and `image2gps grid`.
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "apps/image2gps/cli.h"
#include "apps/image2gps/file_io.h"
#include "apps/image2gps/trainer.h"
#include "models/model.h"

namespace i2g {

namespace {

// The options shared by train and grid (grid sweeps some of them).
void add_config_options(CLI::App* c, TrainConfig& cfg) {
  c->add_option("--data", cfg.data_dir, "Dataset folder with train/ and val/ (dataset build)");
  c->add_option("--arch", cfg.arch, "resnet18 | resnet34 | resnet50 | convnext_tiny | "
                                    "convnext_small | convnext_base | small_cnn")
      ->capture_default_str();
  c->add_option("--weights", cfg.weights,
                "Converted ImageNet weights (.safetensors, see weights/README.md); default: "
                "random init");
  c->add_option("--head", cfg.head, "linear | mlp (Dropout 0.2 -> 256 -> ReLU -> 2)")
      ->capture_default_str();
  c->add_option("--optimizer", cfg.optimizer, "adam | adamw | sgd")->capture_default_str();
  c->add_option("--lr", cfg.lr, "Learning rate")->capture_default_str();
  c->add_option("--weight-decay", cfg.weight_decay, "Weight decay")->capture_default_str();
  c->add_option("--momentum", cfg.momentum, "SGD momentum")->capture_default_str();
  c->add_option("--scheduler", cfg.scheduler, "step | cosine | none")->capture_default_str();
  c->add_option("--step-size", cfg.step_size, "StepLR: epochs between decays")
      ->capture_default_str();
  c->add_option("--gamma", cfg.gamma, "StepLR: decay factor")->capture_default_str();
  c->add_option("--warmup-epochs", cfg.warmup_epochs, "Cosine: linear warmup epochs")
      ->capture_default_str();
  c->add_option("--epochs", cfg.epochs, "Epochs")->capture_default_str();
  c->add_option("--batch-size", cfg.batch_size, "Batch size")->capture_default_str();
  c->add_option("--freeze-epochs", cfg.freeze_epochs,
                "Train only the head for this many epochs, then everything")
      ->capture_default_str();
  c->add_option("--head-lr", cfg.head_lr, "Head learning rate (default: --lr)");
  c->add_option("--loss", cfg.loss, "mse | huber")->capture_default_str();
  c->add_option("--huber-delta", cfg.huber_delta, "Huber delta (normalised units)")
      ->capture_default_str();
  c->add_option("--augment", cfg.augment,
                "none | geo-safe (RandomResizedCrop 0.8-1.0, ColorJitter, blur)")
      ->capture_default_str();
  c->add_flag("--hflip", cfg.hflip, "geo-safe: also mirror images (changes the scene!)");
  c->add_option("--image-size", cfg.image_size, "Input resolution")->capture_default_str();
  c->add_option("--drop-path", cfg.drop_path, "ConvNeXt stochastic depth rate");
  c->add_option("--seed", cfg.seed, "Seed of every random stream")->capture_default_str();
  add_device_options(c, cfg.device);
  c->add_option("--workers", cfg.workers, kWorkersHelp)
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  c->add_option("--threads", cfg.threads, "CPU compute threads (0: all cores)")
      ->capture_default_str();
  c->add_flag("--skip-bad", cfg.skip_bad, "Skip unreadable images (counted) instead of failing");
}

void print_result(const TrainResult& r) {
  if (r.best_epoch >= 0)
    std::printf("best validation: RMSE %.2f m, mean %.2f m (epoch %d); checkpoint %s/best.ckpt\n",
                r.best_val_rmse_m, r.best_val_mean_m, r.best_epoch + 1, r.run_dir.c_str());
}

std::vector<double> parse_list(const std::string& s, const char* flag) {
  std::vector<double> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      v.push_back(std::stod(item, &used));
      engine::check(used == item.size(), "");
    } catch (const std::exception&) {
      engine::fail(flag, ": '", item, "' is not a number");
    }
  }
  engine::check(!v.empty(), flag, ": empty list");
  return v;
}

}  // namespace

void add_train_commands(CLI::App& app) {
  auto cfg = std::make_shared<TrainConfig>();
  auto resume_dir = std::make_shared<std::string>();
  auto* t = app.add_subcommand("train", "Train a coordinate regressor (best-validation "
                                        "checkpoint, JSONL log, resumable)");
  add_config_options(t, *cfg);
  t->add_option("--out", cfg->run_dir, "Run folder (checkpoints, log.jsonl, plots)")
      ->capture_default_str();
  t->add_option("--profile", cfg->profile_steps,
                "Time training steps 2..N+1 op by op (engine::profiler): a table on stderr and in "
                "RUN_DIR/profile.txt, a trace for Perfetto in RUN_DIR/profile.trace.json")
      ->check(CLI::NonNegativeNumber);
  t->add_option("--resume", *resume_dir,
                "Continue the interrupted run in this folder exactly where it stopped "
                "(--epochs may extend it)");
  t->callback([t, cfg, resume_dir] {
    TrainResult r;
    if (!resume_dir->empty()) {
      r = resume(*resume_dir, t->count("--epochs") ? cfg->epochs : 0);
    } else {
      engine::check(!cfg->data_dir.empty(), "train: --data is required (or --resume RUN_DIR)");
      r = train(*cfg);
    }
    print_result(r);
  });

  struct GridArgs {
    TrainConfig base;
    std::string out = "runs/grid", lrs = "1e-3,3e-4", wds = "0,1e-4", gammas = "0.5",
                optimizers;
  };
  auto g = std::make_shared<GridArgs>();
  auto* grid = app.add_subcommand(
      "grid", "Grid search over lr x weight decay x gamma (x optimizer); each run is selected "
              "by its best validation RMSE in meters");
  add_config_options(grid, g->base);
  grid->add_option("--out", g->out, "Folder of the grid's runs")->capture_default_str();
  grid->add_option("--lrs", g->lrs, "Comma-separated learning rates")->capture_default_str();
  grid->add_option("--weight-decays", g->wds, "Comma-separated weight decays")
      ->capture_default_str();
  grid->add_option("--gammas", g->gammas, "Comma-separated StepLR gammas")->capture_default_str();
  grid->add_option("--optimizers", g->optimizers, "Comma-separated optimizers (default: --optimizer)");
  grid->callback([g] {
    engine::check(!g->base.data_dir.empty(), "grid: --data is required");
    std::vector<std::string> opts;
    {
      std::stringstream ss(g->optimizers.empty() ? g->base.optimizer : g->optimizers);
      std::string o;
      while (std::getline(ss, o, ',')) opts.push_back(o);
    }
    struct Row {
      std::string name, optimizer;
      double lr, wd, gamma;
      TrainResult r;
    };
    std::vector<Row> rows;
    int i = 0;
    for (const auto& o : opts)
      for (double lr : parse_list(g->lrs, "--lrs"))
        for (double wd : parse_list(g->wds, "--weight-decays"))
          for (double gm : parse_list(g->gammas, "--gammas")) {
            TrainConfig c = g->base;
            c.optimizer = o, c.lr = lr, c.weight_decay = wd, c.gamma = gm;
            char name[32];
            std::snprintf(name, sizeof name, "run_%03d", i++);
            c.run_dir = (std::filesystem::path(g->out) / name).string();
            std::fprintf(stderr, "== %s: %s lr %g wd %g gamma %g\n", name, o.c_str(), lr, wd, gm);
            rows.push_back({name, o, lr, wd, gm, train(c)});
          }
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      return a.r.best_val_rmse_m < b.r.best_val_rmse_m;
    });
    std::ostringstream csv, table;
    csv << "run,optimizer,lr,weight_decay,gamma,best_epoch,val_rmse_m,val_mean_m\n";
    table << "run      optimizer  lr        wd        gamma  epoch  val RMSE (m)  val mean (m)\n";
    for (const Row& r : rows) {
      csv << r.name << ',' << r.optimizer << ',' << r.lr << ',' << r.wd << ',' << r.gamma << ','
          << r.r.best_epoch + 1 << ',' << r.r.best_val_rmse_m << ',' << r.r.best_val_mean_m
          << "\n";
      char line[160];
      std::snprintf(line, sizeof line, "%-8s %-10s %-9.3g %-9.3g %-6.3g %-6d %-13.2f %.2f\n",
                    r.name.c_str(), r.optimizer.c_str(), r.lr, r.wd, r.gamma, r.r.best_epoch + 1,
                    r.r.best_val_rmse_m, r.r.best_val_mean_m);
      table << line;
    }
    write_file_atomic((std::filesystem::path(g->out) / "results.csv").string(), csv.str());
    std::printf("%s(best first; also in %s/results.csv)\n", table.str().c_str(), g->out.c_str());
  });
}

}  // namespace i2g
