// apps/image2gps/exif.h — the GPS position and orientation a camera wrote into a JPEG's EXIF.
//
// Phones store GPSLatitude / GPSLongitude as three unsigned rationals (degrees, minutes,
// seconds) plus a reference letter (N/S, E/W) that carries the sign. read_exif turns them into
// signed decimal degrees and says, in gps_problem, why a photo's GPS cannot be used as a label
// (no GPS IFD, a missing tag, a zero denominator, minutes >= 60, a bad reference letter, a value
// out of range, or the (0,0) "no fix" position). Parsing uses libexif and never crashes on
// garbage, truncated or hostile input: such input simply has no usable GPS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace i2g {

struct ExifInfo {
  bool has_gps = false;     // true when lat/lon are a usable position
  double lat = 0.0;         // signed decimal degrees, + = North (valid only when has_gps)
  double lon = 0.0;         // signed decimal degrees, + = East  (valid only when has_gps)
  int orientation = 1;      // EXIF Orientation 1..8; 1 when absent or invalid
  std::string make, model;  // IFD0 Make / Model, trailing spaces and NULs trimmed ("" if absent)
  std::string datetime;     // DateTimeOriginal, else DateTime ("YYYY:MM:DD HH:MM:SS"; "" if absent)
  std::string gps_problem;  // why has_gps is false, e.g. "no GPSLatitude tag"; "" when has_gps
};

// Parses EXIF from a JPEG file image in memory (or a raw "Exif\0\0" APP1 payload).
// Never throws: bytes with no parsable EXIF give has_gps=false and gps_problem="no EXIF data".
ExifInfo read_exif_from_memory(const uint8_t* data, size_t size);

// Reads the file and parses it as above. Throws engine::Error only when the file cannot be read.
ExifInfo read_exif(const std::string& path);

}  // namespace i2g
