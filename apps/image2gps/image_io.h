// apps/image2gps/image_io.h — decode JPEG/PNG into an upright 8-bit RGB image, write PNG.
//
// Decoding uses stb_image (baseline and progressive JPEG; PNG of any bit depth and colour type).
// Every image comes out as 3 channels of uint8: gray is replicated, alpha is dropped (not
// composited), 16-bit samples keep their high byte. JPEGs are turned upright with their EXIF
// Orientation, as phones store the sensor's pixels and only record the rotation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace i2g {

// An 8-bit RGB image: `height` rows of `width` RGB triples, row-major, no padding.
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // size width * height * 3

  Image() = default;
  Image(int w, int h) : width(w), height(h), rgb(static_cast<size_t>(w) * h * 3) {}
  bool empty() const { return width == 0 || height == 0; }
  uint8_t* pixel(int x, int y) { return &rgb[(static_cast<size_t>(y) * width + x) * 3]; }
  const uint8_t* pixel(int x, int y) const {
    return &rgb[(static_cast<size_t>(y) * width + x) * 3];
  }
};

// Decodes a JPEG or PNG held in memory. `name` is only used in error messages (the file path).
// With `upright`, a JPEG's EXIF Orientation (1..8) is applied. Throws engine::Error naming
// `name` and the reason on empty, unknown, corrupt or truncated data, or images over 250 Mpixel.
Image decode_image(const uint8_t* data, size_t size, const std::string& name, bool upright = true);

// Reads and decodes a file as above.
Image load_image(const std::string& path, bool upright = true);

// The upright image for pixels stored with EXIF Orientation `orientation` (1 = as stored,
// 2 = mirrored, 3 = rotated 180, 4 = flipped, 5 = transposed, 6 = needs 90 deg clockwise,
// 7 = transversed, 8 = needs 90 deg counter-clockwise). Values outside 1..8 act as 1.
Image apply_orientation(const Image& stored, int orientation);

// Encodes as an 8-bit RGB PNG and writes it atomically (temporary file + rename).
void save_png(const std::string& path, const Image& image);

// True when a JPEG's marker structure reaches its end-of-image marker, false when the data
// stops before it (a truncated download or copy). stb_image decodes such files silently with
// grey rows at the bottom, so decode_image rejects them with this check.
bool jpeg_is_complete(const uint8_t* data, size_t size);

}  // namespace i2g
