// apps/image2gps/resize.h — geometric ops on RGB uint8 images and conversion to model input.
//
// resize_bilinear reproduces Pillow's Image.resize(size, Image.BILINEAR) bit for bit: a
// triangle filter whose support grows with the downscale factor (so downscaling averages every
// source pixel instead of aliasing), applied as a horizontal pass then a vertical pass, each in
// 22-bit fixed point and rounded to uint8 between the passes, as Pillow's resample.c does.
// torchvision's Resize on PIL images calls exactly this, so our crops match the course's.
#pragma once

#include <array>
#include <vector>

#include "apps/image2gps/image_io.h"

namespace i2g {

// Pillow-exact bilinear (antialiased) resize to width x height (both >= 1).
Image resize_bilinear(const Image& src, int width, int height);

// The width x height rectangle whose top-left corner is (x, y); it must lie inside the image.
Image crop(const Image& src, int x, int y, int width, int height);

// Mirror left-right.
Image hflip(const Image& src);

// torchvision's ImageNet normalisation constants (ToTensor + Normalize).
inline constexpr std::array<float, 3> kImageNetMean{0.485f, 0.456f, 0.406f};
inline constexpr std::array<float, 3> kImageNetStd{0.229f, 0.224f, 0.225f};

// x = (pixel / 255 - mean[c]) / std[c] in float32, laid out HWC (one NHWC sample), i.e.
// width * height * 3 floats. The pointer form writes into a batch buffer without a copy.
void to_normalized_nhwc(const Image& image, float* out,
                        const std::array<float, 3>& mean = kImageNetMean,
                        const std::array<float, 3>& std = kImageNetStd);
std::vector<float> to_normalized_nhwc(const Image& image,
                                      const std::array<float, 3>& mean = kImageNetMean,
                                      const std::array<float, 3>& std = kImageNetStd);

}  // namespace i2g
