// `image2gps eval`, `image2gps export` and `image2gps predict`.
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "apps/image2gps/bundle.h"
#include "apps/image2gps/cli.h"
#include "apps/image2gps/file_io.h"
#include "apps/image2gps/geodesic.h"
#include "apps/image2gps/inference.h"
#include "apps/image2gps/resize.h"
#include "apps/image2gps/svg_plot.h"

namespace i2g {

namespace fs = std::filesystem;

namespace {

struct EvalArgs {
  std::string data, ckpt, bundle, bank_dir, json, csv, plot, device = "auto";
  int64_t knn = 15, cosine_k = 20;
  double temperature = 0.1;
  int workers = 0;
  bool skip_bad = false;
};

struct MethodResult {
  std::string name;
  std::vector<LatLon> pred;
  GeoMetrics m;
};

std::vector<LatLon> to_latlon(const std::vector<std::array<double, 2>>& v) {
  std::vector<LatLon> out;
  for (auto& p : v) out.push_back({p[0], p[1]});
  return out;
}

void run_eval(const EvalArgs& a) {
  engine::check(a.ckpt.empty() != a.bundle.empty(), "eval: give exactly one of --ckpt or --bundle");
  engine::Device device = resolve_device(a.device);
  Bundle b;
  if (!a.bundle.empty()) {
    b = load_bundle(a.bundle, device);
  } else {
    b.net = load_trained_model(a.ckpt, device);
  }
  TrainConfig& cfg = b.net.config;
  Dataset data = Dataset::open(a.data);

  InferenceOptions io;
  io.image_size = cfg.image_size;
  io.batch_size = cfg.batch_size;
  io.workers = a.workers;
  io.embeddings = a.knn > 0;
  io.skip_bad = a.skip_bad;
  Predictions p = run_model(*b.net.model, data, b.net.norm, device, io);

  std::vector<MethodResult> methods;
  methods.push_back({"mean-position baseline",
                     std::vector<LatLon>(p.truth.size(), {b.net.norm.mean_lat, b.net.norm.mean_lon}),
                     {}});
  methods.push_back({"regression head", p.pred, {}});
  if (a.knn > 0) {
    if (!b.bank.embeddings.defined()) {
      std::string bank_dir = a.bank_dir.empty()
                                 ? (fs::path(cfg.data_dir) / "train").string()
                                 : a.bank_dir;
      b.bank = build_bank(*b.net.model, Dataset::open(bank_dir), b.net.norm, device,
                          cfg.image_size, cfg.batch_size, a.workers);
    }
    methods.push_back({"k-NN L2 mean (k=" + std::to_string(a.knn) + ")",
                       to_latlon(b.bank.predict(p.embeddings, a.knn, KnnMode::Mean)), {}});
    std::ostringstream name;
    name << "k-NN cosine softmax (k=" << a.cosine_k << ", T=" << a.temperature << ")";
    methods.push_back({name.str(), to_latlon(b.bank.predict(p.embeddings, a.cosine_k,
                                                            KnnMode::Cosine, a.temperature)),
                       {}});
  }
  for (auto& m : methods) m.m = geo_metrics(m.pred, p.truth);

  std::printf("%zu images from %s\n", p.truth.size(), a.data.c_str());
  std::printf("%-36s %10s %10s %9s %9s %9s %9s\n", "method", "MAE (deg)", "RMSE (deg)",
              "mean (m)", "median", "RMSE (m)", "p90 (m)");
  for (auto& m : methods)
    std::printf("%-36s %10.6f %10.6f %9.2f %9.2f %9.2f %9.2f\n", m.name.c_str(), m.m.mae_deg,
                m.m.rmse_deg, m.m.mean_m, m.m.median_m, m.m.rmse_m, m.m.p90_m);

  if (!a.json.empty()) {
    nlohmann::json j;
    j["images"] = p.truth.size();
    j["data"] = a.data;
    for (auto& m : methods)
      j["methods"][m.name] = {{"mae_deg", m.m.mae_deg},   {"rmse_deg", m.m.rmse_deg},
                              {"mean_m", m.m.mean_m},     {"median_m", m.m.median_m},
                              {"rmse_m", m.m.rmse_m},     {"p90_m", m.m.p90_m},
                              {"max_m", m.m.max_m}};
    write_file_atomic(a.json, j.dump(2) + "\n");
  }
  if (!a.csv.empty()) {
    std::ostringstream csv;
    csv.precision(10);
    csv << "image_file,Latitude,Longitude,pred_lat,pred_lon,error_m";
    if (methods.size() > 2) csv << ",knn_lat,knn_lon,knn_error_m";
    csv << "\n";
    for (size_t i = 0; i < p.truth.size(); ++i) {
      csv << data.records[p.rows[i]].image_file << ',' << p.truth[i].lat << ',' << p.truth[i].lon
          << ',' << p.pred[i].lat << ',' << p.pred[i].lon << ','
          << geodesic_distance_m(p.pred[i], p.truth[i]);
      if (methods.size() > 2) {
        const LatLon& k = methods[2].pred[i];
        csv << ',' << k.lat << ',' << k.lon << ',' << geodesic_distance_m(k, p.truth[i]);
      }
      csv << "\n";
    }
    write_file_atomic(a.csv, csv.str());
  }
  if (!a.plot.empty()) {
    PlotOptions o;
    o.geographic = true;
    o.x_label = "longitude", o.y_label = "latitude";
    o.title = "Regression: predicted (tip) vs actual";
    write_prediction_svg(a.plot, p.truth, p.pred, o);
    if (methods.size() > 2) {
      fs::path kp = a.plot;
      kp.replace_filename(kp.stem().string() + "-knn" + kp.extension().string());
      o.title = "k-NN: predicted (tip) vs actual";
      write_prediction_svg(kp.string(), p.truth, methods[2].pred, o);
    }
  }
}

}  // namespace

void add_eval_commands(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* e = app.add_subcommand("eval", "Errors in degrees and geodesic meters (WGS84) of a "
                                       "checkpoint or bundle on any folder with metadata.csv");
  e->add_option("--data", a->data, "Folder with metadata.csv (a test split or an external set)")
      ->required();
  e->add_option("--ckpt", a->ckpt, "Checkpoint (RUN_DIR/best.ckpt)");
  e->add_option("--bundle", a->bundle, "Bundle from image2gps export (has its own k-NN bank)");
  e->add_option("--knn", a->knn, "k for the L2 k-NN mean (0: no k-NN)")->capture_default_str();
  e->add_option("--cosine-k", a->cosine_k, "k for the cosine softmax k-NN")->capture_default_str();
  e->add_option("--temperature", a->temperature, "Softmax temperature of the cosine k-NN")
      ->capture_default_str();
  e->add_option("--bank", a->bank_dir, "Dataset whose embeddings form the k-NN bank (default: "
                                       "the checkpoint's training split)");
  e->add_option("--json", a->json, "Write the metrics as JSON");
  e->add_option("--csv", a->csv, "Write per-image predictions as CSV");
  e->add_option("--plot", a->plot, "Write predicted-vs-actual SVG (and NAME-knn.svg)");
  add_device_options(e, a->device);
  e->add_option("--workers", a->workers, kWorkersHelp)
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  e->add_flag("--skip-bad", a->skip_bad, "Skip unreadable images instead of failing");
  e->callback([a] { run_eval(*a); });

  struct ExportArgs {
    std::string run, out, device = "auto";
    int64_t k = 15;
    double t = 0.1;
    int workers = 0;
  };
  auto x = std::make_shared<ExportArgs>();
  auto* ex = app.add_subcommand("export", "One file with weights, k-NN bank, coordinate "
                                          "statistics and config");
  ex->add_option("RUN_DIR", x->run, "Training run folder (uses best.ckpt)")->required();
  ex->add_option("--out", x->out, "Bundle file, e.g. model.i2g")->required();
  ex->add_option("--knn", x->k, "Default k for predict")->capture_default_str();
  ex->add_option("--temperature", x->t, "Default cosine temperature")->capture_default_str();
  add_device_options(ex, x->device);
  ex->add_option("--workers", x->workers, kWorkersHelp)
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  ex->callback([x] {
    export_bundle(x->run, x->out, resolve_device(x->device), x->k, x->t, x->workers);
    std::printf("wrote %s\n", x->out.c_str());
  });

  struct PredictArgs {
    std::string bundle, mode = "knn", device = "auto";
    std::vector<std::string> images;
    bool json = false;
  };
  auto pa = std::make_shared<PredictArgs>();
  auto* pr = app.add_subcommand("predict", "Place photos: prints image,latitude,longitude");
  pr->add_option("--bundle", pa->bundle, "Bundle from image2gps export")->required();
  pr->add_option("--mode", pa->mode, "regression | knn | cosine")->capture_default_str();
  pr->add_flag("--json", pa->json, "Print a JSON array instead of CSV");
  add_device_options(pr, pa->device);
  pr->add_option("IMAGE", pa->images, "Photos (JPEG/PNG; EXIF orientation applied)")->required();
  pr->callback([pa] {
    engine::check(pa->mode == "regression" || pa->mode == "knn" || pa->mode == "cosine",
                  "predict: --mode must be regression, knn or cosine");
    engine::Device device = resolve_device(pa->device);
    Bundle b = load_bundle(pa->bundle, device);
    const int s = b.net.config.image_size;
    // Decode everything first: one bad file fails the command before anything is printed.
    std::vector<float> pixels;
    for (const std::string& path : pa->images) {
      Image img = resize_bilinear(load_image(path), s, s);
      std::vector<float> v = to_normalized_nhwc(img);
      pixels.insert(pixels.end(), v.begin(), v.end());
    }
    engine::NoGradGuard no_grad;
    const int64_t n = static_cast<int64_t>(pa->images.size());
    engine::Tensor x = engine::Tensor::from_vector(pixels, {n, s, s, 3}).to(device);
    engine::Tensor emb = b.net.model->features(x);
    std::vector<std::array<double, 2>> out;
    if (pa->mode == "regression") {
      std::vector<float> y = b.net.model->forward_head(emb).to_float_vector();
      for (int64_t i = 0; i < n; ++i) out.push_back(b.net.norm.denormalize(y[2 * i], y[2 * i + 1]));
    } else {
      out = b.bank.predict(emb, pa->mode == "knn" ? b.knn_k : 20,
                           pa->mode == "knn" ? KnnMode::Mean : KnnMode::Cosine, b.temperature);
    }
    if (pa->json) {
      nlohmann::json j = nlohmann::json::array();
      for (int64_t i = 0; i < n; ++i)
        j.push_back({{"image", pa->images[i]}, {"latitude", out[i][0]}, {"longitude", out[i][1]}});
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("image,latitude,longitude\n");
      for (int64_t i = 0; i < n; ++i)
        std::printf("%s,%.7f,%.7f\n", pa->images[i].c_str(), out[i][0], out[i][1]);
    }
  });
}

}  // namespace i2g
