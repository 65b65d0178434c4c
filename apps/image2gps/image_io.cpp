// apps/image2gps/image_io.cpp — see image_io.h. The one translation unit that compiles
// stb_image and stb_image_write (restricted to JPEG and PNG to keep the attack surface small).
#include "apps/image2gps/image_io.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "apps/image2gps/exif.h"
#include "apps/image2gps/file_io.h"
#include "engine/error.h"

// Third-party code: its warnings are not ours to fix.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_NO_STDIO
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>

#define STBI_WRITE_NO_STDIO
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace i2g {

namespace {

constexpr long long kMaxPixels = 250'000'000;

struct StbiFree {
  void operator()(stbi_uc* p) const { stbi_image_free(p); }
};

bool is_jpeg(const uint8_t* d, size_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }

}  // namespace

bool jpeg_is_complete(const uint8_t* d, size_t n) {
  if (n < 4 || d[0] != 0xFF || d[1] != 0xD8) return false;
  size_t i = 2;
  bool in_scan = false;  // after SOS, entropy-coded bytes follow until the next marker
  while (i < n) {
    if (in_scan) {
      // Inside entropy-coded data a 0xFF byte is followed by 0x00 (stuffing) or a restart
      // marker RST0..7; anything else is a real marker that ends the scan.
      if (d[i] != 0xFF) {  // most of a scan: jump to its next 0xFF (memchr is vectorised)
        const void* ff = std::memchr(d + i, 0xFF, n - i);
        if (ff == nullptr) return false;
        i = static_cast<size_t>(static_cast<const uint8_t*>(ff) - d);
      }
      if (i + 1 >= n) return false;
      const uint8_t m = d[i + 1];
      if (m == 0x00 || (m >= 0xD0 && m <= 0xD7) || m == 0xFF) {
        i += (m == 0xFF) ? 1 : 2;
        continue;
      }
      in_scan = false;
    }
    if (d[i] != 0xFF) {  // stray bytes between segments: libjpeg skips them, so do we
      in_scan = true;
      continue;
    }
    while (i < n && d[i] == 0xFF) ++i;  // fill bytes
    if (i >= n) return false;
    const uint8_t m = d[i++];
    if (m == 0xD9) return true;                          // EOI
    if ((m >= 0xD0 && m <= 0xD7) || m == 0x01) continue;  // markers without a length
    if (i + 2 > n) return false;
    const size_t len = (static_cast<size_t>(d[i]) << 8) | d[i + 1];  // includes its own 2 bytes
    if (len < 2 || i + len > n) return false;
    i += len;
    if (m == 0xDA) in_scan = true;  // SOS: its header is done, scan data follows
  }
  return false;
}

Image decode_image(const uint8_t* data, size_t size, const std::string& name, bool upright) {
  if (size == 0) engine::fail("cannot decode image ", name, ": the file is empty");
  if (size > 0x7fffffffu) engine::fail("cannot decode image ", name, ": file over 2 GiB");
  const int len = static_cast<int>(size);
  int w = 0, h = 0, channels = 0;
  if (!stbi_info_from_memory(data, len, &w, &h, &channels))
    engine::fail("cannot decode image ", name, ": ", stbi_failure_reason(),
                 " (only JPEG and PNG are supported)");
  if (static_cast<long long>(w) * h > kMaxPixels)
    engine::fail("cannot decode image ", name, ": ", w, "x", h, " is over the ", kMaxPixels,
                 "-pixel limit");
  const bool jpeg = is_jpeg(data, size);
  if (jpeg && !jpeg_is_complete(data, size))
    engine::fail("cannot decode image ", name, ": truncated JPEG (no end-of-image marker)");

  std::unique_ptr<stbi_uc, StbiFree> pixels(stbi_load_from_memory(data, len, &w, &h, &channels, 3));
  if (!pixels) engine::fail("cannot decode image ", name, ": ", stbi_failure_reason());
  Image img(w, h);
  std::copy(pixels.get(), pixels.get() + img.rgb.size(), img.rgb.begin());

  if (upright && jpeg) {
    const int orientation = read_exif_from_memory(data, size).orientation;
    if (orientation != 1) img = apply_orientation(img, orientation);
  }
  return img;
}

Image load_image(const std::string& path, bool upright) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return decode_image(bytes.data(), bytes.size(), path, upright);
}

Image apply_orientation(const Image& s, int orientation) {
  if (orientation < 2 || orientation > 8) return s;
  const int w = s.width, h = s.height;
  const bool swap = orientation >= 5;  // 5..8 exchange rows and columns
  Image out(swap ? h : w, swap ? w : h);
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sx = x, sy = y;  // the stored pixel that lands at upright (x, y)
      switch (orientation) {
        case 2: sx = w - 1 - x; break;
        case 3: sx = w - 1 - x; sy = h - 1 - y; break;
        case 4: sy = h - 1 - y; break;
        case 5: sx = y; sy = x; break;
        case 6: sx = y; sy = h - 1 - x; break;
        case 7: sx = w - 1 - y; sy = h - 1 - x; break;
        case 8: sx = w - 1 - y; sy = x; break;
      }
      const uint8_t* p = s.pixel(sx, sy);
      uint8_t* q = out.pixel(x, y);
      q[0] = p[0];
      q[1] = p[1];
      q[2] = p[2];
    }
  }
  return out;
}

void save_png(const std::string& path, const Image& image) {
  engine::check(!image.empty() && image.rgb.size() == static_cast<size_t>(image.width) * image.height * 3,
                "save_png ", path, ": image is empty or its pixel buffer has the wrong size (",
                image.width, "x", image.height, ", ", image.rgb.size(), " bytes)");
  std::vector<uint8_t> encoded;
  auto append = [](void* ctx, void* bytes, int n) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(bytes), static_cast<uint8_t*>(bytes) + n);
  };
  if (!stbi_write_png_to_func(append, &encoded, image.width, image.height, 3, image.rgb.data(),
                              image.width * 3))
    engine::fail("save_png ", path, ": PNG encoding failed");
  write_file_atomic(path, encoded.data(), encoded.size());
}

}  // namespace i2g
