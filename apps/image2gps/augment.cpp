// apps/image2gps/augment.cpp — see augment.h. The colour ops copy Pillow 9's arithmetic
// (libImaging/Blend.c, Convert.c rgb2hsv_row/hsv2rgb, ImageEnhance.py) including its float vs
// double mix, so that a test can compare them with Pillow at a tolerance of one grey level.
#include "apps/image2gps/augment.h"

// Pillow computes `a + alpha * b` with a rounded product; a fused multiply-add (which -march
// with FMA lets the compiler use) rounds once and lands on the other side of .0 for some pixels.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <limits>

#include "apps/image2gps/resize.h"
#include "engine/error.h"

namespace i2g {

namespace {

// SplitMix64's finaliser: a bijective mix, so distinct (seed, index, epoch) give distinct states.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint8_t clip8(int v) { return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v)); }

// Pillow's ImagingBlend on one sample: in1 + alpha * (in2 - in1) in float, truncated; clipped
// only when alpha extrapolates (outside [0, 1]).
inline uint8_t blend(int in1, int in2, float alpha) {
  const float v = static_cast<float>(in1) + alpha * static_cast<float>(in2 - in1);
  if (alpha >= 0.0f && alpha <= 1.0f) return static_cast<uint8_t>(v);
  if (v <= 0.0f) return 0;
  if (v >= 255.0f) return 255;
  return static_cast<uint8_t>(v);
}

// Pillow's rgb2hsv_row (float/double mix kept on purpose, see the file comment). Every case is
// computed and the right one selected instead of branched to: which channel is the largest
// changes from pixel to pixel, and mispredicted branches made this the loader's slowest step.
void rgb_to_hsv(const uint8_t* in, uint8_t* out) {
  const int r = in[0], g = in[1], b = in[2];
  // Plain comparisons: GCC does not inline std::max/std::min into code under this file's
  // optimize pragma (a different optimisation setting), and a call per pixel is costly.
  const int maxc = r > g ? (r > b ? r : b) : (g > b ? g : b);
  const int minc = r < g ? (r < b ? r : b) : (g < b ? g : b);
  const bool grey = maxc == minc;  // Pillow: h = s = 0 (cr = 1 below only avoids 0 / 0)
  const float cr = static_cast<float>(grey ? 1 : maxc - minc);
  const float s = cr / static_cast<float>(grey ? 1 : maxc);
  const float rc = static_cast<float>(maxc - r) / cr;
  const float gc = static_cast<float>(maxc - g) / cr;
  const float bc = static_cast<float>(maxc - b) / cr;
  const float h_r = bc - gc;                                // red is the largest
  const float h_g = static_cast<float>(2.0 + rc - bc);      // green
  const float h_b = static_cast<float>(4.0 + gc - rc);      // blue
  const float h = r == maxc ? h_r : (g == maxc ? h_g : h_b);  // in [-1, 5]
  double wrapped = h / 6.0 + 1.0;                      // in [5/6, 11/6]
  wrapped -= static_cast<double>(wrapped >= 1.0);     // fmod(wrapped, 1.0), exactly
  out[0] = grey ? 0 : clip8(static_cast<int>(static_cast<float>(wrapped) * 255.0));
  out[1] = grey ? 0 : clip8(static_cast<int>(s * 255.0));
  out[2] = static_cast<uint8_t>(maxc);
}

// std::round for x >= 0, inlined (std::round is a libm call) and without a branch (rounding up
// or down is a coin toss per pixel): exact, as x - trunc(x) is.
inline double round_nonneg(double x) {
  const double t = std::trunc(x);
  return t + static_cast<double>(x - t >= 0.5);
}

// Pillow's hsv2rgb splits the hue circle into six sectors: the sector i % 6 and the position f
// in it depend on h alone, so they are computed once per h value (by Pillow's expressions).
struct HueSector {
  int k;    // i % 6
  float f;  // position in the sector, [0, 1)
};
const std::array<HueSector, 256>& hue_sectors() {
  static const std::array<HueSector, 256> table = [] {
    std::array<HueSector, 256> t{};
    for (int h = 0; h < 256; ++h) {
      const double x = static_cast<float>(h) * 6.0 / 255.0;
      const int i = static_cast<int>(std::floor(x));
      t[h] = {i % 6, static_cast<float>(x - static_cast<float>(i))};
    }
    return t;
  }();
  return table;
}

// Pillow's hsv2rgb; its switch over the sector is a selection here (no branch to mispredict).
void hsv_to_rgb(const uint8_t* in, uint8_t* out) {
  const int h = in[0], s = in[1], v = in[2];
  const HueSector sector = hue_sectors()[h];
  const int k = sector.k;
  const float fs = sector.f * s;
  const double vd = static_cast<float>(v);  // Pillow's float v, in double arithmetic
  const int p = clip8(static_cast<int>(round_nonneg(vd * (255.0 - s) / 255.0)));
  const int q = clip8(static_cast<int>(round_nonneg(vd * (255.0 - fs) / 255.0)));
  const int t = clip8(static_cast<int>(round_nonneg(vd * (255.0 - s + fs) / 255.0)));
  // Sector:  0        1        2        3        4        5
  // (r,g,b): (v,t,p)  (q,v,p)  (p,v,t)  (p,q,v)  (t,p,v)  (v,p,q)
  const int red = k == 0 || k == 5 ? v : (k == 1 ? q : (k == 4 ? t : p));
  const int green = k == 1 || k == 2 ? v : (k == 0 ? t : (k == 3 ? q : p));
  const int blue = k == 3 || k == 4 ? v : (k == 2 ? t : (k == 5 ? q : p));
  out[0] = static_cast<uint8_t>(s == 0 ? v : red);  // no saturation: grey
  out[1] = static_cast<uint8_t>(s == 0 ? v : green);
  out[2] = static_cast<uint8_t>(s == 0 ? v : blue);
}

void check_image(const Image& img, const char* op) {
  engine::check(img.width > 0 && img.height > 0 &&
                    img.rgb.size() == static_cast<size_t>(img.width) * img.height * 3,
                op, ": image is empty or its pixel buffer has the wrong size (", img.width, "x",
                img.height, ", ", img.rgb.size(), " bytes)");
}

// torch.nn.functional.pad(mode="reflect") index: -1 -> 1, n -> n - 2.
inline int reflect(int i, int n) {
  if (n == 1) return 0;
  if (i < 0) return -i;
  if (i >= n) return 2 * n - 2 - i;
  return i;
}

}  // namespace

AugmentPreset parse_augment_preset(const std::string& name) {
  std::string s = name;
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "none") return AugmentPreset::None;
  if (s == "geo-safe" || s == "geo_safe") return AugmentPreset::GeoSafe;
  engine::fail("unknown augmentation preset '", name, "' (expected none or geo-safe)");
}

const char* to_string(AugmentPreset preset) {
  return preset == AugmentPreset::None ? "none" : "geo-safe";
}

AugmentRng::AugmentRng(uint64_t seed, uint64_t sample_index, uint64_t epoch)
    : gen_(mix64(mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (sample_index * 0xd1b54a32d192ed03ULL + 1)) ^
                 (epoch * 0x8cb92ba72f3d8dd7ULL + 2))) {}

double AugmentRng::uniform(double lo, double hi) {
  const double u = static_cast<double>(gen_() >> 11) * 0x1.0p-53;  // 53 random bits in [0, 1)
  return lo + (hi - lo) * u;
}

uint64_t AugmentRng::below(uint64_t n) {
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  const uint64_t limit = max - max % n;  // reject the uneven tail: no modulo bias
  uint64_t r;
  do {
    r = gen_();
  } while (r >= limit);
  return r % n;
}

CropBox random_resized_crop_box(int width, int height, double scale_lo, double scale_hi,
                                double ratio_lo, double ratio_hi, AugmentRng& rng) {
  const double area = static_cast<double>(width) * height;
  const double log_lo = std::log(ratio_lo), log_hi = std::log(ratio_hi);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.uniform(scale_lo, scale_hi);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    // Python's round() rounds half to even, as nearbyint does in the default rounding mode.
    const int w = static_cast<int>(std::nearbyint(std::sqrt(target_area * aspect)));
    const int h = static_cast<int>(std::nearbyint(std::sqrt(target_area / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int y = static_cast<int>(rng.below(static_cast<uint64_t>(height - h + 1)));
      const int x = static_cast<int>(rng.below(static_cast<uint64_t>(width - w + 1)));
      return {x, y, w, h};
    }
  }
  // Fallback: the largest centred crop whose aspect ratio lies in [ratio_lo, ratio_hi].
  const double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < std::min(ratio_lo, ratio_hi)) {
    h = static_cast<int>(std::nearbyint(w / std::min(ratio_lo, ratio_hi)));
  } else if (in_ratio > std::max(ratio_lo, ratio_hi)) {
    w = static_cast<int>(std::nearbyint(h * std::max(ratio_lo, ratio_hi)));
  }
  w = std::clamp(w, 1, width);
  h = std::clamp(h, 1, height);
  return {(width - w) / 2, (height - h) / 2, w, h};
}

uint8_t pil_luma(const uint8_t* p) {
  return static_cast<uint8_t>((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
}

Image adjust_brightness(const Image& img, double factor) {
  check_image(img, "adjust_brightness");
  Image out(img.width, img.height);
  const float a = static_cast<float>(factor);
  for (size_t i = 0; i < img.rgb.size(); ++i) out.rgb[i] = blend(0, img.rgb[i], a);
  return out;
}

Image adjust_contrast(const Image& img, double factor) {
  check_image(img, "adjust_contrast");
  uint64_t sum = 0;
  const size_t n = img.rgb.size() / 3;
  for (size_t i = 0; i < n; ++i) sum += pil_luma(&img.rgb[3 * i]);
  const int mean = static_cast<int>(static_cast<double>(sum) / static_cast<double>(n) + 0.5);
  Image out(img.width, img.height);
  const float a = static_cast<float>(factor);
  for (size_t i = 0; i < img.rgb.size(); ++i) out.rgb[i] = blend(mean, img.rgb[i], a);
  return out;
}

Image adjust_saturation(const Image& img, double factor) {
  check_image(img, "adjust_saturation");
  Image out(img.width, img.height);
  const float a = static_cast<float>(factor);
  for (size_t i = 0; i < img.rgb.size(); i += 3) {
    const int gray = pil_luma(&img.rgb[i]);
    for (int c = 0; c < 3; ++c) out.rgb[i + c] = blend(gray, img.rgb[i + c], a);
  }
  return out;
}

Image adjust_hue(const Image& img, double hue_factor) {
  check_image(img, "adjust_hue");
  engine::check(hue_factor >= -0.5 && hue_factor <= 0.5, "adjust_hue: factor ", hue_factor,
                " is not in [-0.5, 0.5]");
  // numpy's np.uint8(hue_factor * 255): truncate toward zero, then wrap modulo 256.
  const uint8_t shift = static_cast<uint8_t>(static_cast<int>(hue_factor * 255) & 0xFF);
  Image out(img.width, img.height);
  for (size_t i = 0; i < img.rgb.size(); i += 3) {
    uint8_t hsv[3];
    rgb_to_hsv(&img.rgb[i], hsv);
    hsv[0] = static_cast<uint8_t>(hsv[0] + shift);  // hue wraps around the colour circle
    hsv_to_rgb(hsv, &out.rgb[i]);
  }
  return out;
}

Image gaussian_blur3(const Image& img, double sigma) {
  check_image(img, "gaussian_blur3");
  engine::check(sigma > 0.0, "gaussian_blur3: sigma ", sigma, " must be positive");
  // torchvision _get_gaussian_kernel1d at x = -1, 0, 1, normalised, in float32.
  std::array<float, 3> k1;
  float total = 0.0f;
  for (int i = 0; i < 3; ++i) {
    const float x = static_cast<float>(i - 1) / static_cast<float>(sigma);
    k1[i] = std::exp(-0.5f * x * x);
    total += k1[i];
  }
  for (float& v : k1) v /= total;
  Image out(img.width, img.height);
  for (int y = 0; y < img.height; ++y) {
    for (int x = 0; x < img.width; ++x) {
      float acc[3] = {0.0f, 0.0f, 0.0f};
      for (int dy = -1; dy <= 1; ++dy) {
        for (int dx = -1; dx <= 1; ++dx) {
          const float w = k1[dy + 1] * k1[dx + 1];  // the 2-D kernel is the outer product
          const uint8_t* p = img.pixel(reflect(x + dx, img.width), reflect(y + dy, img.height));
          for (int c = 0; c < 3; ++c) acc[c] += w * static_cast<float>(p[c]);
        }
      }
      uint8_t* q = out.pixel(x, y);
      for (int c = 0; c < 3; ++c) q[c] = clip8(static_cast<int>(std::nearbyint(acc[c])));
    }
  }
  return out;
}

Image augment(const Image& src, const AugmentOptions& options, uint64_t seed,
              uint64_t sample_index, uint64_t epoch) {
  check_image(src, "augment");
  engine::check(options.size >= 1, "augment: output size ", options.size, " must be at least 1");
  if (options.preset == AugmentPreset::None) return resize_bilinear(src, options.size, options.size);

  AugmentRng rng(seed, sample_index, epoch);
  // Every random number is drawn whether or not its op runs, so switching hflip on or off
  // changes nothing else about a sample.
  const CropBox box = random_resized_crop_box(src.width, src.height, 0.8, 1.0, 0.9, 1.1, rng);
  Image out = resize_bilinear(crop(src, box.x, box.y, box.width, box.height), options.size,
                              options.size);
  const bool flip = rng.uniform(0.0, 1.0) < 0.5;
  if (options.hflip && flip) out = hflip(out);

  int order[4] = {0, 1, 2, 3};  // ColorJitter applies its four ops in a random order
  for (int i = 3; i > 0; --i) std::swap(order[i], order[rng.below(static_cast<uint64_t>(i + 1))]);
  const double brightness = rng.uniform(0.8, 1.2);
  const double contrast = rng.uniform(0.8, 1.2);
  const double saturation = rng.uniform(0.85, 1.15);
  const double hue = rng.uniform(-0.04, 0.04);
  for (int op : order) {
    switch (op) {
      case 0: out = adjust_brightness(out, brightness); break;
      case 1: out = adjust_contrast(out, contrast); break;
      case 2: out = adjust_saturation(out, saturation); break;
      default: out = adjust_hue(out, hue); break;
    }
  }
  const double blur_draw = rng.uniform(0.0, 1.0);
  const double sigma = rng.uniform(0.1, 2.0);
  if (blur_draw < 0.1) out = gaussian_blur3(out, sigma);
  return out;
}

}  // namespace i2g
