// apps/image2gps/exif.cpp — see exif.h. libexif does the TIFF/IFD parsing; this file only
// validates the few tags we use, because every field of a hostile file may be malformed
// (wrong format, wrong component count, short data).
#include "apps/image2gps/exif.h"

#include <libexif/exif-data.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "apps/image2gps/file_io.h"
#include "engine/error.h"

namespace i2g {

namespace {

struct ExifDataUnref {
  void operator()(ExifData* d) const {
    if (d) exif_data_unref(d);
  }
};
using ExifDataPtr = std::unique_ptr<ExifData, ExifDataUnref>;

// GPS tag numbers (libexif spells them as #defines that alias the interoperability tags).
constexpr ExifTag kGpsLatitudeRef = static_cast<ExifTag>(0x0001);
constexpr ExifTag kGpsLatitude = static_cast<ExifTag>(0x0002);
constexpr ExifTag kGpsLongitudeRef = static_cast<ExifTag>(0x0003);
constexpr ExifTag kGpsLongitude = static_cast<ExifTag>(0x0004);
constexpr ExifTag kGpsStatus = static_cast<ExifTag>(0x0009);

ExifEntry* find(ExifData* d, ExifIfd ifd, ExifTag tag) {
  if (!d->ifd[ifd]) return nullptr;
  return exif_content_get_entry(d->ifd[ifd], tag);
}

// An ASCII entry as a string, cut at the first NUL and with trailing spaces removed
// (Samsung pads Make/Model with spaces to a fixed width).
std::string ascii_value(const ExifEntry* e) {
  if (!e || !e->data || (e->format != EXIF_FORMAT_ASCII && e->format != EXIF_FORMAT_UNDEFINED))
    return "";
  std::string s(reinterpret_cast<const char*>(e->data), e->size);
  if (auto nul = s.find('\0'); nul != std::string::npos) s.resize(nul);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
  return s;
}

int read_orientation(ExifData* d) {
  const ExifEntry* e = find(d, EXIF_IFD_0, EXIF_TAG_ORIENTATION);
  if (!e || !e->data || e->components < 1) return 1;
  int v = 0;
  if (e->format == EXIF_FORMAT_SHORT && e->size >= 2) {
    v = exif_get_short(e->data, exif_data_get_byte_order(d));
  } else if (e->format == EXIF_FORMAT_LONG && e->size >= 4) {
    v = static_cast<int>(exif_get_long(e->data, exif_data_get_byte_order(d)));
  }
  return (v >= 1 && v <= 8) ? v : 1;
}

// Degrees from a (deg, min, sec) rational triple; "" on success, otherwise the problem.
// One or two components (degrees only, or degrees + decimal minutes) are accepted too, as
// some writers use them; minutes and seconds must be < 60.
std::string dms_to_degrees(const ExifEntry* e, ExifByteOrder order, const char* name, double* out) {
  if (!e) return engine::cat("no ", name, " tag");
  if (e->format != EXIF_FORMAT_RATIONAL) return engine::cat(name, " is not a rational triple");
  if (e->components < 1 || e->components > 3 || !e->data || e->size < 8 * e->components)
    return engine::cat(name, " has ", e->components, " components instead of 3");
  double parts[3] = {0, 0, 0};
  for (unsigned long i = 0; i < e->components; ++i) {
    ExifRational r = exif_get_rational(e->data + 8 * i, order);
    if (r.denominator == 0) return engine::cat(name, " has a zero denominator");
    parts[i] = static_cast<double>(r.numerator) / r.denominator;
  }
  if (parts[1] >= 60.0 || parts[2] >= 60.0)
    return engine::cat(name, " has minutes or seconds >= 60 (", parts[0], " ", parts[1], " ",
                       parts[2], ")");
  *out = parts[0] + parts[1] / 60.0 + parts[2] / 3600.0;
  return "";
}

// The sign (+1/-1) from a reference letter; "" on success, otherwise the problem.
std::string ref_sign(const ExifEntry* e, const char* name, char plus, char minus, double* sign) {
  if (!e) return engine::cat("no ", name, " tag");
  std::string s = ascii_value(e);
  if (s.size() == 1 && (s[0] == plus || s[0] == minus)) {
    *sign = s[0] == plus ? 1.0 : -1.0;
    return "";
  }
  return engine::cat(name, " is '", s, "', expected ", plus, " or ", minus);
}

std::string read_gps(ExifData* d, double* lat, double* lon) {
  if (!d->ifd[EXIF_IFD_GPS] || d->ifd[EXIF_IFD_GPS]->count == 0) return "no GPS data in EXIF";
  const ExifByteOrder order = exif_data_get_byte_order(d);
  double lat_abs = 0, lon_abs = 0, lat_sign = 1, lon_sign = 1;
  std::string why;
  if (!(why = dms_to_degrees(find(d, EXIF_IFD_GPS, kGpsLatitude), order, "GPSLatitude", &lat_abs))
           .empty() ||
      !(why = dms_to_degrees(find(d, EXIF_IFD_GPS, kGpsLongitude), order, "GPSLongitude", &lon_abs))
           .empty() ||
      !(why = ref_sign(find(d, EXIF_IFD_GPS, kGpsLatitudeRef), "GPSLatitudeRef", 'N', 'S', &lat_sign))
           .empty() ||
      !(why = ref_sign(find(d, EXIF_IFD_GPS, kGpsLongitudeRef), "GPSLongitudeRef", 'E', 'W',
                       &lon_sign))
           .empty()) {
    return why;
  }
  if (ascii_value(find(d, EXIF_IFD_GPS, kGpsStatus)) == "V")
    return "GPSStatus is V (measurement void)";
  if (!(lat_abs <= 90.0)) return engine::cat("GPSLatitude ", lat_abs, " is beyond 90 degrees");
  if (!(lon_abs <= 180.0)) return engine::cat("GPSLongitude ", lon_abs, " is beyond 180 degrees");
  // Many cameras write 0/1 rationals when they have no fix; no photo set is at (0,0).
  if (lat_abs == 0.0 && lon_abs == 0.0) return "GPS position is (0,0), i.e. no fix";
  *lat = lat_sign * lat_abs;
  *lon = lon_sign * lon_abs;
  return "";
}

}  // namespace

ExifInfo read_exif_from_memory(const uint8_t* data, size_t size) {
  ExifInfo info;
  info.gps_problem = "no EXIF data";
  if (!data || size < 4) return info;
  ExifDataPtr d(exif_data_new());
  if (!d) return info;
  // FOLLOW_SPECIFICATION would "fix" the data by adding default tags; we want what the file says.
  exif_data_unset_option(d.get(), EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
  exif_data_load_data(d.get(), data, static_cast<unsigned int>(std::min<size_t>(size, 0xffffffffu)));

  bool any = false;
  for (int i = 0; i < EXIF_IFD_COUNT; ++i) any = any || (d->ifd[i] && d->ifd[i]->count > 0);
  if (!any) return info;

  info.orientation = read_orientation(d.get());
  info.make = ascii_value(find(d.get(), EXIF_IFD_0, EXIF_TAG_MAKE));
  info.model = ascii_value(find(d.get(), EXIF_IFD_0, EXIF_TAG_MODEL));
  info.datetime = ascii_value(find(d.get(), EXIF_IFD_EXIF, EXIF_TAG_DATE_TIME_ORIGINAL));
  if (info.datetime.empty()) info.datetime = ascii_value(find(d.get(), EXIF_IFD_0, EXIF_TAG_DATE_TIME));

  double lat = 0, lon = 0;
  info.gps_problem = read_gps(d.get(), &lat, &lon);
  if (info.gps_problem.empty()) {
    info.has_gps = true;
    info.lat = lat;
    info.lon = lon;
  }
  return info;
}

ExifInfo read_exif(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return read_exif_from_memory(bytes.data(), bytes.size());
}

}  // namespace i2g
