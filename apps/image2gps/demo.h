// apps/image2gps/demo.h — `image2gps demo`: the whole workflow on a synthetic world, offline.
//
// Renders a procedural campus around a real origin from random positions and headings
// (synthetic_world.h), writes the views as PNGs with metadata.csv, splits them 80/10/10, trains
// a small CNN, evaluates the test split in geodesic meters next to the mean-position baseline
// (regression and k-NN), and writes the plots. Sized to finish in minutes on 2 CPU cores.
#pragma once

#include <cstdint>
#include <string>

namespace i2g {

struct DemoOptions {
  std::string out = "demo-out";
  int images = 5000;
  int image_size = 64;
  int epochs = 15;
  int batch_size = 32;
  double lr = 3e-3;
  uint64_t seed = 7;
  double origin_lat = 39.9515, origin_lon = -75.1915;
  std::string arch = "small_cnn";
  std::string device = "auto";
  int workers = 1;
  double hfov_deg = 120;          // wide views see more landmarks (a phone's main camera: ~70)
  std::string augment = "none";  // none | geo-safe
};

struct DemoResult {
  double baseline_mean_m = 0, regression_mean_m = 0, knn_mean_m = 0;
  double seconds = 0;
};

DemoResult run_demo(const DemoOptions& options);

}  // namespace i2g
