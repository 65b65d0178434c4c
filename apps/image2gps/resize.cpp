// apps/image2gps/resize.cpp — see resize.h. The resize follows Pillow 9's
// libImaging/Resample.c (precompute_coeffs, normalize_coeffs_8bpc, ImagingResample*_8bpc) line
// by line where the arithmetic matters, so that results are equal, not just close.
#include "apps/image2gps/resize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "engine/error.h"

namespace i2g {

namespace {

// Pillow: PRECISION_BITS = 32 - 8 - 2: coefficients in 22-bit fixed point leave room for a
// sum of 255 * (1 << 22) plus rounding in an int32.
constexpr int kPrecisionBits = 32 - 8 - 2;

// Output pixel i reads `count[i]` source pixels from `first[i]`, with weights
// `weights[i * ksize ...]` in fixed point.
struct Taps {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weights;
};

// Pillow's bilinear_filter: the triangle of support 1.
double triangle(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

Taps precompute_taps(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  // When shrinking, stretch the filter over `scale` source pixels: that is the antialiasing.
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = 1.0 * filterscale;
  Taps t;
  t.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.first.resize(out_size);
  t.count.resize(out_size);
  t.weights.assign(static_cast<size_t>(out_size) * t.ksize, 0);
  std::vector<double> k(t.ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);  // Pillow rounds by truncation
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      k[x] = triangle((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double w = ww != 0.0 ? k[x] / ww : k[x];
      // normalize_coeffs_8bpc: round half away from zero into fixed point.
      t.weights[static_cast<size_t>(xx) * t.ksize + x] =
          static_cast<int32_t>(w < 0 ? -0.5 + w * (1 << kPrecisionBits)
                                     : 0.5 + w * (1 << kPrecisionBits));
    }
    t.first[xx] = xmin;
    t.count[xx] = xmax;
  }
  return t;
}

// Pillow's clip8: drop the fraction bits and saturate to 0..255.
inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

Image resample_horizontal(const Image& src, int out_w) {
  const Taps t = precompute_taps(src.width, out_w);
  Image out(out_w, src.height);
  for (int y = 0; y < src.height; ++y) {
    for (int x = 0; x < out_w; ++x) {
      const int32_t* k = &t.weights[static_cast<size_t>(x) * t.ksize];
      const uint8_t* in = src.pixel(t.first[x], y);
      int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;  // + 0.5 so >> rounds
      for (int i = 0; i < t.count[x]; ++i) {
        s0 += in[3 * i + 0] * k[i];
        s1 += in[3 * i + 1] * k[i];
        s2 += in[3 * i + 2] * k[i];
      }
      uint8_t* o = out.pixel(x, y);
      o[0] = clip8(s0);
      o[1] = clip8(s1);
      o[2] = clip8(s2);
    }
  }
  return out;
}

Image resample_vertical(const Image& src, int out_h) {
  const Taps t = precompute_taps(src.height, out_h);
  Image out(src.width, out_h);
  const size_t row = static_cast<size_t>(src.width) * 3;
  for (int y = 0; y < out_h; ++y) {
    const int32_t* k = &t.weights[static_cast<size_t>(y) * t.ksize];
    const uint8_t* in = src.pixel(0, t.first[y]);
    uint8_t* o = out.pixel(0, y);
    for (size_t c = 0; c < row; ++c) {
      int32_t s = 1 << (kPrecisionBits - 1);
      for (int i = 0; i < t.count[y]; ++i) s += in[i * row + c] * k[i];
      o[c] = clip8(s);
    }
  }
  return out;
}

void check_image(const Image& img, const char* op) {
  engine::check(img.width > 0 && img.height > 0 &&
                    img.rgb.size() == static_cast<size_t>(img.width) * img.height * 3,
                op, ": image is empty or its pixel buffer has the wrong size (", img.width, "x",
                img.height, ", ", img.rgb.size(), " bytes)");
}

}  // namespace

Image resize_bilinear(const Image& src, int width, int height) {
  check_image(src, "resize_bilinear");
  engine::check(width >= 1 && height >= 1, "resize_bilinear: target size ", width, "x", height,
                " must be at least 1x1");
  // Pillow skips a pass whose size does not change (and then copies exactly).
  Image out = width != src.width ? resample_horizontal(src, width) : src;
  if (height != src.height) out = resample_vertical(out, height);
  return out;
}

Image crop(const Image& src, int x, int y, int width, int height) {
  check_image(src, "crop");
  engine::check(width >= 1 && height >= 1 && x >= 0 && y >= 0 && x <= src.width - width &&
                    y <= src.height - height,
                "crop: rectangle ", width, "x", height, " at (", x, ",", y,
                ") does not lie inside the ", src.width, "x", src.height, " image");
  Image out(width, height);
  for (int r = 0; r < height; ++r) {
    const uint8_t* in = src.pixel(x, y + r);
    std::copy(in, in + static_cast<size_t>(width) * 3, out.pixel(0, r));
  }
  return out;
}

Image hflip(const Image& src) {
  Image out(src.width, src.height);
  for (int y = 0; y < src.height; ++y) {
    for (int x = 0; x < src.width; ++x) {
      const uint8_t* p = src.pixel(src.width - 1 - x, y);
      uint8_t* q = out.pixel(x, y);
      q[0] = p[0];
      q[1] = p[1];
      q[2] = p[2];
    }
  }
  return out;
}

void to_normalized_nhwc(const Image& image, float* out, const std::array<float, 3>& mean,
                        const std::array<float, 3>& std) {
  check_image(image, "to_normalized_nhwc");
  for (int c = 0; c < 3; ++c)
    engine::check(std[c] > 0.0f, "to_normalized_nhwc: std[", c, "] = ", std[c],
                  " must be positive");
  // Same float32 operations as ToTensor (x / 255) then Normalize ((x - m) / s), done once per
  // channel and byte value: a lookup gives bit-identical results at a fraction of the cost of
  // two divisions per element (this loop was a fifth of the loader's time).
  float table[3][256];
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v)
      table[c][v] = (static_cast<float>(v) / 255.0f - mean[c]) / std[c];
  const size_t pixels = image.rgb.size() / 3;
  const uint8_t* rgb = image.rgb.data();
  for (size_t p = 0; p < pixels; ++p) {
    out[3 * p + 0] = table[0][rgb[3 * p + 0]];
    out[3 * p + 1] = table[1][rgb[3 * p + 1]];
    out[3 * p + 2] = table[2][rgb[3 * p + 2]];
  }
}

std::vector<float> to_normalized_nhwc(const Image& image, const std::array<float, 3>& mean,
                                      const std::array<float, 3>& std) {
  std::vector<float> out(image.rgb.size());
  to_normalized_nhwc(image, out.data(), mean, std);
  return out;
}

}  // namespace i2g
