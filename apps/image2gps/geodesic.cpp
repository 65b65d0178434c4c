// apps/image2gps/geodesic.cpp — see geodesic.h.
#include "apps/image2gps/geodesic.h"

#include <GeographicLib/Geodesic.hpp>

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace i2g {

namespace {

void check_position(const LatLon& p, const char* what) {
  engine::check(std::isfinite(p.lat) && std::isfinite(p.lon) && std::fabs(p.lat) <= 90.0,
                "geodesic: ", what, " position (", p.lat, ", ", p.lon,
                ") is invalid (latitude must be in [-90, 90], both finite)");
}

}  // namespace

double geodesic_distance_m(const LatLon& a, const LatLon& b) {
  check_position(a, "first");
  check_position(b, "second");
  double s12 = 0.0;
  GeographicLib::Geodesic::WGS84().Inverse(a.lat, a.lon, b.lat, b.lon, s12);
  return s12;
}

std::vector<double> geodesic_distances_m(std::span<const LatLon> pred,
                                         std::span<const LatLon> truth) {
  engine::check(pred.size() == truth.size(), "geodesic: ", pred.size(), " predictions but ",
                truth.size(), " true positions");
  std::vector<double> d(pred.size());
  for (size_t i = 0; i < pred.size(); ++i) {
    check_position(pred[i], "predicted");
    check_position(truth[i], "true");
    double s12 = 0.0;
    GeographicLib::Geodesic::WGS84().Inverse(pred[i].lat, pred[i].lon, truth[i].lat,
                                             truth[i].lon, s12);
    d[i] = s12;
  }
  return d;
}

double quantile(std::vector<double> v, double q) {
  engine::check(!v.empty(), "quantile: no values");
  engine::check(q >= 0.0 && q <= 1.0, "quantile: q = ", q, " must be in [0, 1]");
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

GeoMetrics geo_metrics(std::span<const LatLon> pred, std::span<const LatLon> truth) {
  engine::check(!pred.empty(), "geo_metrics: no predictions");
  const std::vector<double> d = geodesic_distances_m(pred, truth);
  GeoMetrics m;
  m.count = pred.size();
  double abs_sum = 0.0, sq_sum = 0.0, d_sum = 0.0, d_sq = 0.0;
  for (size_t i = 0; i < pred.size(); ++i) {
    const double dlat = pred[i].lat - truth[i].lat, dlon = pred[i].lon - truth[i].lon;
    abs_sum += std::fabs(dlat) + std::fabs(dlon);
    sq_sum += dlat * dlat + dlon * dlon;
    d_sum += d[i];
    d_sq += d[i] * d[i];
    m.max_m = std::max(m.max_m, d[i]);
  }
  const double n = static_cast<double>(pred.size());
  m.mae_deg = abs_sum / (2 * n);
  m.rmse_deg = std::sqrt(sq_sum / (2 * n));
  m.mean_m = d_sum / n;
  m.rmse_m = std::sqrt(d_sq / n);
  m.median_m = quantile(d, 0.5);
  m.p90_m = quantile(d, 0.9);
  return m;
}

}  // namespace i2g
