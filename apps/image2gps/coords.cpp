#include "apps/image2gps/coords.h"

#include <cmath>
#include <sstream>

#include "engine/error.h"

namespace i2g {

CoordNorm CoordNorm::fit(const std::vector<GeoRecord>& records) {
  engine::check(!records.empty(), "cannot fit coordinate statistics on an empty training split");
  CoordNorm n;
  double sl = 0, so = 0;
  for (const auto& r : records) sl += r.lat, so += r.lon;
  n.mean_lat = sl / records.size();
  n.mean_lon = so / records.size();
  double vl = 0, vo = 0;
  for (const auto& r : records) {
    vl += (r.lat - n.mean_lat) * (r.lat - n.mean_lat);
    vo += (r.lon - n.mean_lon) * (r.lon - n.mean_lon);
  }
  n.std_lat = std::sqrt(vl / records.size());
  n.std_lon = std::sqrt(vo / records.size());
  if (!(n.std_lat > 0)) n.std_lat = 1;
  if (!(n.std_lon > 0)) n.std_lon = 1;
  return n;
}

std::array<float, 2> CoordNorm::normalize(double lat, double lon) const {
  return {static_cast<float>((lat - mean_lat) / std_lat),
          static_cast<float>((lon - mean_lon) / std_lon)};
}

std::array<double, 2> CoordNorm::denormalize(float y_lat, float y_lon) const {
  return {mean_lat + y_lat * std_lat, mean_lon + y_lon * std_lon};
}

namespace {
std::string exact(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}
}  // namespace

std::map<std::string, std::string> CoordNorm::to_metadata() const {
  return {{"coord_mean_lat", exact(mean_lat)},
          {"coord_mean_lon", exact(mean_lon)},
          {"coord_std_lat", exact(std_lat)},
          {"coord_std_lon", exact(std_lon)}};
}

CoordNorm CoordNorm::from_metadata(const std::map<std::string, std::string>& m,
                                   const std::string& source) {
  auto get = [&](const char* key) {
    auto it = m.find(key);
    engine::check(it != m.end(), source, ": missing '", key,
                  "' (not an image2gps checkpoint or bundle?)");
    try {
      size_t used = 0;
      double v = std::stod(it->second, &used);
      if (used == it->second.size() && std::isfinite(v)) return v;
    } catch (const std::exception&) {
    }
    engine::fail(source, ": '", key, "' is not a number: '", it->second, "'");
  };
  CoordNorm n;
  n.mean_lat = get("coord_mean_lat");
  n.mean_lon = get("coord_mean_lon");
  n.std_lat = get("coord_std_lat");
  n.std_lon = get("coord_std_lon");
  engine::check(n.std_lat > 0 && n.std_lon > 0, source, ": coordinate std must be positive");
  return n;
}

}  // namespace i2g
