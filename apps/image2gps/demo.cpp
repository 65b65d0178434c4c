#include "apps/image2gps/demo.h"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "apps/image2gps/bundle.h"
#include "apps/image2gps/dataset.h"
#include "apps/image2gps/geodesic.h"
#include "apps/image2gps/image_io.h"
#include "apps/image2gps/inference.h"
#include "apps/image2gps/split.h"
#include "apps/image2gps/svg_plot.h"
#include "apps/image2gps/synthetic_world.h"
#include "apps/image2gps/trainer.h"

namespace i2g {

namespace fs = std::filesystem;

namespace {

std::string view_name(size_t i) {
  char name[32];
  std::snprintf(name, sizeof name, "view_%05zu.png", i);
  return name;
}

// Renders the views of one split into DIR/<split>/ with its metadata.csv.
void write_split(const World& world, const std::vector<ViewSample>& views,
                 const std::vector<size_t>& rows, const fs::path& dir, int size) {
  fs::create_directories(dir);
  std::vector<GeoRecord> records;
  for (size_t r : rows) {
    const std::string name = view_name(r);
    RgbImage px = render_view(world, views[r].pose, size, size);
    Image img(px.width, px.height);
    img.rgb = std::move(px.pixels);
    save_png((dir / name).string(), img);
    records.push_back({name, views[r].latitude_deg, views[r].longitude_deg});
  }
  write_metadata_csv((dir / "metadata.csv").string(), records);
}

}  // namespace

DemoResult run_demo(const DemoOptions& o) {
  auto t0 = std::chrono::steady_clock::now();
  const fs::path out = o.out, data = out / "data";
  std::printf("1/5 rendering %d views of a synthetic campus around (%.4f, %.4f) at %dx%d\n",
              o.images, o.origin_lat, o.origin_lon, o.image_size, o.image_size);
  World world = make_world(o.seed, o.origin_lat, o.origin_lon);
  SampleOptions so_views;
  so_views.hfov_deg = o.hfov_deg;
  std::vector<ViewSample> views = sample_views(world, o.images, o.seed + 1, so_views);
  std::vector<GeoRecord> all;
  for (size_t i = 0; i < views.size(); ++i)
    all.push_back({view_name(i), views[i].latitude_deg, views[i].longitude_deg});
  SplitOptions so;
  so.seed = o.seed;
  SplitIndices idx = split_indices(all, so);
  write_split(world, views, idx.train, data / "train", o.image_size);
  write_split(world, views, idx.val, data / "val", o.image_size);
  write_split(world, views, idx.test, data / "test", o.image_size);
  plot_dataset(data.string(), (out / "labels.svg").string());

  std::fflush(stdout);
  std::printf("2/5 training %s on %zu images (%zu validation) for %d epochs\n", o.arch.c_str(),
              idx.train.size(), idx.val.size(), o.epochs);
  TrainConfig cfg;
  cfg.data_dir = data.string();
  cfg.run_dir = (out / "run").string();
  cfg.arch = o.arch;
  cfg.image_size = o.image_size;
  cfg.epochs = o.epochs;
  cfg.batch_size = o.batch_size;
  cfg.lr = o.lr;
  cfg.weight_decay = 1e-4;
  cfg.optimizer = "adamw";
  cfg.scheduler = "cosine";
  cfg.warmup_epochs = 1;
  cfg.seed = o.seed;
  cfg.device = o.device;
  cfg.workers = o.workers;
  cfg.augment = o.augment;
  if (fs::exists(out / "run")) fs::remove_all(out / "run");
  std::fflush(stdout);
  TrainResult tr = train(cfg);

  std::fflush(stdout);
  std::printf("3/5 evaluating the best checkpoint (epoch %d) on the test split\n",
              tr.best_epoch + 1);
  engine::Device device = resolve_device(o.device);
  LoadedModel lm = load_trained_model((out / "run" / "best.ckpt").string(), device);
  Dataset test = Dataset::open((data / "test").string());
  InferenceOptions io;
  io.image_size = o.image_size;
  io.batch_size = o.batch_size;
  io.embeddings = true;
  Predictions p = run_model(*lm.model, test, lm.norm, device, io);
  KnnBank bank = build_bank(*lm.model, Dataset::open((data / "train").string()), lm.norm,
                            device, o.image_size, o.batch_size, o.workers);
  std::vector<LatLon> knn, base;
  for (auto& ll : bank.predict(p.embeddings, 15, KnnMode::Mean)) knn.push_back({ll[0], ll[1]});
  base.assign(p.truth.size(), {lm.norm.mean_lat, lm.norm.mean_lon});
  GeoMetrics mb = geo_metrics(base, p.truth), mr = geo_metrics(p.pred, p.truth),
             mk = geo_metrics(knn, p.truth);

  std::printf("4/5 writing plots to %s\n", out.string().c_str());
  PlotOptions po;
  po.geographic = true;
  po.x_label = "longitude", po.y_label = "latitude";
  po.title = "Demo test split: regression prediction (tip) vs actual";
  write_prediction_svg((out / "test_regression.svg").string(), p.truth, p.pred, po);
  po.title = "Demo test split: k-NN prediction (tip) vs actual";
  write_prediction_svg((out / "test_knn.svg").string(), p.truth, knn, po);

  DemoResult r;
  r.baseline_mean_m = mb.mean_m, r.regression_mean_m = mr.mean_m, r.knn_mean_m = mk.mean_m;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("5/5 results on %zu test views (geodesic meters, WGS84):\n", p.truth.size());
  std::printf("  %-26s %9s %9s %9s %9s\n", "method", "mean", "median", "RMSE", "p90");
  auto row = [](const char* name, const GeoMetrics& m) {
    std::printf("  %-26s %9.1f %9.1f %9.1f %9.1f\n", name, m.mean_m, m.median_m, m.rmse_m, m.p90_m);
  };
  row("mean-position baseline", mb);
  row("regression (small_cnn)", mr);
  row("k-NN (k=15, L2)", mk);
  double best = std::min(mr.mean_m, mk.mean_m);
  std::printf("best mean error is %.0f%% below the baseline's; finished in %.0f s\n",
              100.0 * (1.0 - best / mb.mean_m), r.seconds);
  return r;
}

}  // namespace i2g
