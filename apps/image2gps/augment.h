// apps/image2gps/augment.h — seeded training augmentation producing the model's square input.
//
// Presets:
//   none      — resize to size x size (the evaluation transform);
//   geo-safe  — torchvision's RandomResizedCrop(size, scale=(0.8,1), ratio=(0.9,1.1)),
//               optionally RandomHorizontalFlip (off by default: a mirrored street is a different
//               place), ColorJitter(brightness=0.2, contrast=0.2, saturation=0.15, hue=0.04) in a
//               random order of the four, then RandomApply([GaussianBlur(3, sigma=(0.1,2))], p=0.1).
//               Nothing moves content far or changes it beyond lighting, so the GPS label stays true.
// Each op is computed as torchvision computes it on a PIL image (Pillow's arithmetic, exposed
// below so tests can compare them with Pillow one by one); only the random numbers differ.
//
// The random stream of one augmentation is a pure function of (seed, sample index, epoch), so a
// batch is the same whichever worker thread builds which sample, and a resumed run repeats it.
#pragma once

#include <cstdint>
#include <random>
#include <string>

#include "apps/image2gps/image_io.h"

namespace i2g {

enum class AugmentPreset { None, GeoSafe };

// "none" | "geo-safe" (also "geo_safe"; case-insensitive); throws engine::Error listing choices.
AugmentPreset parse_augment_preset(const std::string& name);
const char* to_string(AugmentPreset preset);

struct AugmentOptions {
  AugmentPreset preset = AugmentPreset::None;
  int size = 224;      // output is size x size
  bool hflip = false;  // geo-safe only: mirror with probability 0.5
};

// Deterministic random numbers for one augmentation (mt19937_64 on a mixed seed; uniform draws
// use their own formulas so results do not depend on the standard library's distributions).
class AugmentRng {
 public:
  AugmentRng(uint64_t seed, uint64_t sample_index, uint64_t epoch);
  double uniform(double lo, double hi);  // [lo, hi)
  uint64_t below(uint64_t n);            // [0, n), n >= 1

 private:
  std::mt19937_64 gen_;
};

// The augmented size x size image. Throws engine::Error on an empty image or size < 1.
Image augment(const Image& src, const AugmentOptions& options, uint64_t seed,
              uint64_t sample_index, uint64_t epoch);

// ---- the ops, each as torchvision applies it to a PIL image ----

struct CropBox {
  int x = 0, y = 0, width = 0, height = 0;  // top-left corner and size, inside the image
};
// torchvision RandomResizedCrop.get_params: 10 tries at a random area fraction in scale and a
// log-uniform aspect ratio in ratio, else the centre crop clamped to ratio.
CropBox random_resized_crop_box(int width, int height, double scale_lo, double scale_hi,
                                double ratio_lo, double ratio_hi, AugmentRng& rng);

Image adjust_brightness(const Image& img, double factor);  // ImageEnhance.Brightness
Image adjust_contrast(const Image& img, double factor);    // ImageEnhance.Contrast
Image adjust_saturation(const Image& img, double factor);  // ImageEnhance.Color
Image adjust_hue(const Image& img, double hue_factor);     // F_pil.adjust_hue, |factor| <= 0.5
// torchvision gaussian_blur with a 3x3 kernel: reflect padding, float32, round half to even.
Image gaussian_blur3(const Image& img, double sigma);

// Pillow's RGB -> L conversion (ITU-R 601-2 luma in 16-bit fixed point).
uint8_t pil_luma(const uint8_t* rgb);

}  // namespace i2g
