// tests/apps/resize_test.cpp — Pillow-exact bilinear resize, crop, flip and normalisation.
#include "apps/image2gps/resize.h"

#include <array>
#include <cmath>

#include "data_test_util.h"
#include "engine/error.h"

namespace {

using namespace i2g_test;

i2g::Image noise_image(int w, int h, uint32_t seed) {
  i2g::Image img(w, h);
  img.rgb = random_bytes(img.rgb.size(), seed);
  return img;
}

// The same filter in float64 with no intermediate rounding: one axis of weights per output
// pixel from Pillow's definition (triangle scaled by max(1, in/out), centred on (i+0.5)*scale).
std::vector<std::vector<std::pair<int, double>>> weights(int in, int out) {
  const double scale = double(in) / out, fs = std::max(1.0, scale);
  std::vector<std::vector<std::pair<int, double>>> w(out);
  for (int i = 0; i < out; ++i) {
    const double c = (i + 0.5) * scale;
    double total = 0;
    for (int j = 0; j < in; ++j) {
      const double t = std::fabs((j + 0.5 - c) / fs);
      if (t < 1) {
        w[i].push_back({j, 1 - t});
        total += 1 - t;
      }
    }
    for (auto& p : w[i]) p.second /= total;
  }
  return w;
}

int max_diff_to_float_reference(const i2g::Image& src, const i2g::Image& got) {
  const auto wx = weights(src.width, got.width), wy = weights(src.height, got.height);
  int worst = 0;
  for (int y = 0; y < got.height; ++y)
    for (int x = 0; x < got.width; ++x)
      for (int c = 0; c < 3; ++c) {
        double v = 0;
        for (auto [sy, ky] : wy[y])
          for (auto [sx, kx] : wx[x]) v += ky * kx * src.pixel(sx, sy)[c];
        worst = std::max(worst, std::abs(int(std::lround(v)) - int(got.pixel(x, y)[c])));
      }
  return worst;
}

TEST(Resize, AgreesWithFloatReferenceWithinRounding) {
  const i2g::Image src = noise_image(53, 41, 11);
  // Down, up, mixed, one axis only, and to a single pixel.
  for (auto [w, h] : std::vector<std::pair<int, int>>{{17, 13}, {7, 40}, {120, 97}, {53, 20}, {24, 41}, {1, 1}}) {
    const i2g::Image out = i2g::resize_bilinear(src, w, h);
    ASSERT_EQ(out.width, w);
    ASSERT_EQ(out.height, h);
    // Two passes that each round to uint8 can be off by one from the exact value.
    EXPECT_LE(max_diff_to_float_reference(src, out), 1) << w << "x" << h;
  }
}

TEST(Resize, SameSizeIsExactCopyAndConstantStaysConstant) {
  const i2g::Image src = noise_image(9, 5, 3);
  EXPECT_EQ(i2g::resize_bilinear(src, 9, 5).rgb, src.rgb);
  i2g::Image flat(31, 17);
  for (size_t i = 0; i < flat.rgb.size(); i += 3) {
    flat.rgb[i] = 200;
    flat.rgb[i + 1] = 7;
    flat.rgb[i + 2] = 255;
  }
  const i2g::Image out = i2g::resize_bilinear(flat, 10, 45);
  for (size_t i = 0; i < out.rgb.size(); i += 3) {
    ASSERT_EQ(out.rgb[i], 200);
    ASSERT_EQ(out.rgb[i + 1], 7);
    ASSERT_EQ(out.rgb[i + 2], 255);
  }
  EXPECT_THROW(i2g::resize_bilinear(src, 0, 5), engine::Error);
  EXPECT_THROW(i2g::resize_bilinear(i2g::Image(), 5, 5), engine::Error);
}

TEST(Resize, MatchesPillowOnRealPhotoAndUpscale) {
  I2G_REQUIRE_PENN();
  TempDir tmp;
  const i2g::Image photo = i2g::load_image(photos_dir() + "/img_00010.jpg");  // 750x1000 upright
  const i2g::Image small = i2g::crop(photo, 301, 517, 37, 29);
  i2g::save_png(tmp.file("photo.png"), photo);
  i2g::save_png(tmp.file("small.png"), small);
  I2G_RUN_PIL_OR_SKIP("resize " + tmp.file("photo.png") + " 224 224 " + tmp.file("p224.png") +
                      " 333 171 " + tmp.file("p333.png") + " 750 500 " + tmp.file("p750.png"));
  I2G_RUN_PIL_OR_SKIP("resize " + tmp.file("small.png") + " 101 83 " + tmp.file("s101.png") +
                      " 224 224 " + tmp.file("s224.png"));
  struct Case {
    const i2g::Image* src;
    int w, h;
    std::string ref;
  };
  for (const Case& c : {Case{&photo, 224, 224, "p224.png"}, Case{&photo, 333, 171, "p333.png"},
                        Case{&photo, 750, 500, "p750.png"}, Case{&small, 101, 83, "s101.png"},
                        Case{&small, 224, 224, "s224.png"}}) {
    const i2g::Image ref = i2g::load_image(tmp.file(c.ref));
    const i2g::Image got = i2g::resize_bilinear(*c.src, c.w, c.h);
    ASSERT_EQ(got.width, ref.width);
    ASSERT_EQ(got.height, ref.height);
    int worst = 0;
    for (size_t i = 0; i < got.rgb.size(); ++i)
      worst = std::max(worst, std::abs(int(got.rgb[i]) - int(ref.rgb[i])));
    EXPECT_LE(worst, 1) << c.ref;
    RecordProperty(c.ref, worst);
  }
}

TEST(Resize, CropAndFlip) {
  const i2g::Image src = noise_image(11, 6, 5);
  const i2g::Image c = i2g::crop(src, 3, 2, 5, 4);
  ASSERT_EQ(c.width, 5);
  ASSERT_EQ(c.height, 4);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 5; ++x)
      for (int k = 0; k < 3; ++k) ASSERT_EQ(c.pixel(x, y)[k], src.pixel(x + 3, y + 2)[k]);
  EXPECT_EQ(i2g::crop(src, 0, 0, 11, 6).rgb, src.rgb);
  EXPECT_THROW(i2g::crop(src, 7, 0, 5, 6), engine::Error);
  EXPECT_THROW(i2g::crop(src, -1, 0, 5, 6), engine::Error);
  EXPECT_THROW(i2g::crop(src, 0, 0, 0, 6), engine::Error);

  const i2g::Image f = i2g::hflip(src);
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 11; ++x)
      for (int k = 0; k < 3; ++k) ASSERT_EQ(f.pixel(x, y)[k], src.pixel(10 - x, y)[k]);
  EXPECT_EQ(i2g::hflip(f).rgb, src.rgb);
}

TEST(Resize, NormalizedNhwcMatchesToTensorNormalize) {
  const i2g::Image src = noise_image(7, 3, 9);
  const std::vector<float> x = i2g::to_normalized_nhwc(src);
  ASSERT_EQ(x.size(), 7u * 3u * 3u);
  const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
  for (int y = 0; y < 3; ++y)
    for (int xx = 0; xx < 7; ++xx)
      for (int c = 0; c < 3; ++c) {
        const double want = (src.pixel(xx, y)[c] / 255.0 - mean[c]) / std[c];
        EXPECT_NEAR(x[(y * 7 + xx) * 3 + c], want, 1e-5);
      }
  const std::vector<float> plain = i2g::to_normalized_nhwc(src, {0, 0, 0}, {1, 1, 1});
  for (size_t i = 0; i < plain.size(); ++i) ASSERT_FLOAT_EQ(plain[i], src.rgb[i] / 255.0f);
  EXPECT_THROW(i2g::to_normalized_nhwc(src, {0, 0, 0}, {1, 0, 1}), engine::Error);
}

// Bit-identical to torchvision's float32 ToTensor + Normalize for every byte value in every
// channel (the function uses a per-channel table of exactly these operations).
TEST(Resize, NormalizedNhwcIsBitExactForEveryByteValue) {
  i2g::Image src;
  src.width = 256, src.height = 1;
  for (int v = 0; v < 256; ++v)
    for (int c = 0; c < 3; ++c) src.rgb.push_back(static_cast<uint8_t>((v + 85 * c) % 256));
  const std::array<float, 3> mean = {0.485f, 0.456f, 0.406f}, std = {0.229f, 0.224f, 0.225f};
  const std::vector<float> x = i2g::to_normalized_nhwc(src, mean, std);
  ASSERT_EQ(x.size(), src.rgb.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const int c = static_cast<int>(i % 3);
    ASSERT_EQ(x[i], (static_cast<float>(src.rgb[i]) / 255.0f - mean[c]) / std[c]) << i;
  }
}

}  // namespace
