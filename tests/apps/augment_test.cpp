// tests/apps/augment_test.cpp — seeded augmentation: reproducible per (seed, index, epoch),
// independent of thread scheduling, different across seeds; each colour op against torchvision.
#include "apps/image2gps/augment.h"

#include <cmath>
#include <functional>
#include <thread>

#include "apps/image2gps/resize.h"
#include "data_test_util.h"
#include "engine/error.h"

namespace {

using namespace i2g_test;

// A smooth colourful test picture (noise would hide geometric and colour errors).
i2g::Image gradient(int w, int h) {
  i2g::Image img(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = img.pixel(x, y);
      p[0] = static_cast<uint8_t>(255.0 * x / (w - 1));
      p[1] = static_cast<uint8_t>(255.0 * y / (h - 1));
      p[2] = static_cast<uint8_t>(128 + 100 * std::sin(0.05 * (x + 2 * y)));
    }
  return img;
}

double mean_value(const i2g::Image& img) {
  double s = 0;
  for (uint8_t v : img.rgb) s += v;
  return s / img.rgb.size();
}

TEST(Augment, NonePresetIsPlainResize) {
  const i2g::Image src = gradient(300, 400);
  const i2g::AugmentOptions o;  // none, 224
  const i2g::Image a = i2g::augment(src, o, 1, 2, 3);
  EXPECT_EQ(a.width, 224);
  EXPECT_EQ(a.height, 224);
  EXPECT_EQ(a.rgb, i2g::resize_bilinear(src, 224, 224).rgb);
  EXPECT_EQ(i2g::augment(src, o, 9, 9, 9).rgb, a.rgb);  // no randomness
}

TEST(Augment, GeoSafeIsReproducibleAndSeedSensitive) {
  const i2g::Image src = gradient(300, 400);
  i2g::AugmentOptions o;
  o.preset = i2g::parse_augment_preset("geo-safe");
  o.size = 64;
  const i2g::Image a = i2g::augment(src, o, 5, 10, 0);
  EXPECT_EQ(a.width, 64);
  EXPECT_EQ(a.height, 64);
  EXPECT_EQ(i2g::augment(src, o, 5, 10, 0).rgb, a.rgb);
  EXPECT_NE(i2g::augment(src, o, 6, 10, 0).rgb, a.rgb);  // other seed
  EXPECT_NE(i2g::augment(src, o, 5, 11, 0).rgb, a.rgb);  // other sample
  EXPECT_NE(i2g::augment(src, o, 5, 10, 1).rgb, a.rgb);  // other epoch
  // Lighting changes stay moderate: mean level within the jitter's reach of the plain resize.
  const double base = mean_value(i2g::resize_bilinear(src, 64, 64));
  for (uint64_t s = 0; s < 20; ++s) {
    const double m = mean_value(i2g::augment(src, o, s, 0, 0));
    EXPECT_GT(m, 0.7 * base) << s;
    EXPECT_LT(m, 1.3 * base) << s;
  }
}

TEST(Augment, IndependentOfThreadScheduling) {
  const i2g::Image src = gradient(120, 90);
  i2g::AugmentOptions o;
  o.preset = i2g::AugmentPreset::GeoSafe;
  o.size = 32;
  o.hflip = true;
  const int n = 16;
  std::vector<std::vector<uint8_t>> serial(n), threaded(n);
  for (int i = 0; i < n; ++i) serial[i] = i2g::augment(src, o, 77, i, 3).rgb;
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t)  // each thread takes every 4th sample, in reverse order
    workers.emplace_back([&, t] {
      for (int i = n - 1 - t; i >= 0; i -= 4) threaded[i] = i2g::augment(src, o, 77, i, 3).rgb;
    });
  for (auto& w : workers) w.join();
  EXPECT_EQ(serial, threaded);
}

TEST(Augment, CropBoxFollowsTorchvisionRules) {
  i2g::AugmentRng rng(1, 2, 3);
  int fallbacks = 0;
  for (int t = 0; t < 500; ++t) {
    const i2g::CropBox b = i2g::random_resized_crop_box(750, 1000, 0.8, 1.0, 0.9, 1.1, rng);
    ASSERT_GE(b.x, 0);
    ASSERT_GE(b.y, 0);
    ASSERT_LE(b.x + b.width, 750);
    ASSERT_LE(b.y + b.height, 1000);
    const double ratio = double(b.width) / b.height, area = double(b.width) * b.height / 750000;
    if (b.width == 750 && b.height == 833 && b.x == 0 && b.y == 83) {
      ++fallbacks;  // centre crop at ratio 0.9 (round(750 / 0.9) = 833)
      continue;
    }
    EXPECT_GE(ratio, 0.9 - 0.003);
    EXPECT_LE(ratio, 1.1 + 0.003);
    EXPECT_GE(area, 0.8 - 0.003);
    EXPECT_LE(area, 1.0);
  }
  // A 3:4 photo cannot hold most square-ish crops of 80-100% area: some tries fail, not all.
  EXPECT_GT(fallbacks, 0);
  EXPECT_LT(fallbacks, 500);
  // Square input: any draw fits, the box covers 80-100% of it.
  for (int t = 0; t < 100; ++t) {
    const i2g::CropBox b = i2g::random_resized_crop_box(500, 500, 0.8, 1.0, 0.9, 1.1, rng);
    EXPECT_GE(double(b.width) * b.height, 0.8 * 250000 - 1000);
  }
}

TEST(Augment, RngIsUniformEnough) {
  i2g::AugmentRng rng(0, 0, 0);
  int counts[10] = {};
  double lo = 1, hi = 0;
  for (int i = 0; i < 10000; ++i) {
    const double u = rng.uniform(0.0, 1.0);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    ++counts[static_cast<int>(u * 10)];
    ASSERT_LT(rng.below(7), 7u);
  }
  for (int c : counts) EXPECT_NEAR(c, 1000, 150);
  EXPECT_LT(lo, 0.01);
  EXPECT_GT(hi, 0.99);
}

TEST(Augment, ColourOpsIdentityAndErrors) {
  const i2g::Image src = gradient(40, 30);
  EXPECT_EQ(i2g::adjust_brightness(src, 1.0).rgb, src.rgb);
  EXPECT_EQ(i2g::adjust_contrast(src, 1.0).rgb, src.rgb);
  EXPECT_EQ(i2g::adjust_saturation(src, 1.0).rgb, src.rgb);
  // Brightness 0 is black; saturation 0 is grey (all channels equal).
  for (uint8_t v : i2g::adjust_brightness(src, 0.0).rgb) ASSERT_EQ(v, 0);
  const i2g::Image g = i2g::adjust_saturation(src, 0.0);
  for (size_t i = 0; i < g.rgb.size(); i += 3) {
    ASSERT_EQ(g.rgb[i], g.rgb[i + 1]);
    ASSERT_EQ(g.rgb[i], g.rgb[i + 2]);
  }
  EXPECT_THROW(i2g::adjust_hue(src, 0.6), engine::Error);
  EXPECT_THROW(i2g::gaussian_blur3(src, 0.0), engine::Error);
  EXPECT_THROW(i2g::parse_augment_preset("heavy"), engine::Error);
  EXPECT_EQ(i2g::parse_augment_preset("GEO_SAFE"), i2g::AugmentPreset::GeoSafe);
}

TEST(Augment, ColourOpsMatchTorchvisionOnPil) {
  I2G_REQUIRE_PENN();
  TempDir tmp;
  // A real 224x224 view: natural colours, skies, shadows.
  const i2g::Image img = i2g::resize_bilinear(i2g::load_image(photos_dir() + "/img_00020.jpg"), 224, 224);
  i2g::save_png(tmp.file("in.png"), img);
  struct Op {
    std::string name;
    double v;
    std::function<i2g::Image(const i2g::Image&, double)> ours;
  };
  const std::vector<Op> ops = {
      {"brightness", 0.83, i2g::adjust_brightness}, {"brightness", 1.17, i2g::adjust_brightness},
      {"contrast", 0.81, i2g::adjust_contrast},     {"contrast", 1.19, i2g::adjust_contrast},
      {"saturation", 0.86, i2g::adjust_saturation}, {"saturation", 1.14, i2g::adjust_saturation},
      {"hue", 0.037, i2g::adjust_hue},              {"hue", -0.031, i2g::adjust_hue},
      {"hue", 0.4, i2g::adjust_hue},                {"blur", 0.7, i2g::gaussian_blur3},
      {"blur", 1.9, i2g::gaussian_blur3}};
  std::string args = "tv " + tmp.file("in.png");
  for (size_t i = 0; i < ops.size(); ++i)
    args += " " + ops[i].name + " " + std::to_string(ops[i].v) + " " + tmp.file(std::to_string(i) + ".png");
  I2G_RUN_PIL_OR_SKIP(args);
  for (size_t i = 0; i < ops.size(); ++i) {
    const i2g::Image ref = i2g::load_image(tmp.file(std::to_string(i) + ".png"));
    const i2g::Image got = ops[i].ours(img, std::stod(std::to_string(ops[i].v)));
    int worst = 0;
    size_t differing = 0;
    for (size_t k = 0; k < got.rgb.size(); ++k) {
      const int d = std::abs(int(got.rgb[k]) - int(ref.rgb[k]));
      worst = std::max(worst, d);
      differing += d != 0;
    }
    // The blend and HSV ops copy Pillow's arithmetic, so they agree exactly; the blur is a
    // float32 convolution whose summation order differs from torch's, so one level may differ.
    EXPECT_LE(worst, ops[i].name == "blur" ? 1 : 0) << ops[i].name << " " << ops[i].v;
    RecordProperty(ops[i].name + "_" + std::to_string(i), std::to_string(worst) + "/" + std::to_string(differing));
  }
}

}  // namespace
