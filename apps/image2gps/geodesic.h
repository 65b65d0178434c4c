// apps/image2gps/geodesic.h — distances on the WGS84 ellipsoid and the error metrics of a
// set of predicted positions.
//
// Distances are geodesics computed by GeographicLib (Karney's algorithm, accurate to
// nanometres), not the spherical haversine, whose error of up to ~0.5% would show at the
// metre scale of a campus.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace i2g {

struct LatLon {
  double lat = 0.0;  // decimal degrees, + = North
  double lon = 0.0;  // decimal degrees, + = East
};

// Geodesic distance in metres between two positions on WGS84. Throws engine::Error when a
// latitude is outside [-90, 90] or a coordinate is not finite.
double geodesic_distance_m(const LatLon& a, const LatLon& b);

// Distance of every pred[i] from truth[i] (the spans must have equal length).
std::vector<double> geodesic_distances_m(std::span<const LatLon> pred,
                                         std::span<const LatLon> truth);

struct GeoMetrics {
  size_t count = 0;
  // Over all 2N coordinates, as sklearn's mean_absolute_error / mean_squared_error on an
  // [N, 2] array do (the course's "MAE in degrees"); longitude differences are not wrapped.
  double mae_deg = 0.0;
  double rmse_deg = 0.0;
  // Geodesic distance of each prediction from its truth, in metres.
  double mean_m = 0.0;
  double median_m = 0.0;
  double rmse_m = 0.0;
  double p90_m = 0.0;  // 90th percentile, linear interpolation (numpy's default)
  double max_m = 0.0;
};

// Metrics of pred against truth. Throws engine::Error on different lengths, no samples, or an
// invalid coordinate.
GeoMetrics geo_metrics(std::span<const LatLon> pred, std::span<const LatLon> truth);

// The q-th quantile (0..1) of values with numpy's default linear interpolation; values need
// not be sorted. Throws engine::Error when values is empty.
double quantile(std::vector<double> values, double q);

}  // namespace i2g
