// tests/apps/geodesic_test.cpp — WGS84 distances against known values and an independent
// haversine, and the error metrics against hand computation.
#include "apps/image2gps/geodesic.h"

#include <cmath>

#include "data_test_util.h"
#include "engine/error.h"

namespace {

double haversine_m(i2g::LatLon a, i2g::LatLon b) {
  const double r = 6371008.8, k = M_PI / 180;
  const double dlat = (b.lat - a.lat) * k, dlon = (b.lon - a.lon) * k;
  const double h = std::pow(std::sin(dlat / 2), 2) +
                   std::cos(a.lat * k) * std::cos(b.lat * k) * std::pow(std::sin(dlon / 2), 2);
  return 2 * r * std::asin(std::sqrt(h));
}

TEST(Geodesic, KnownWgs84Distances) {
  // One degree of longitude on the equator: a * pi / 180 with a = 6378137 m.
  EXPECT_NEAR(i2g::geodesic_distance_m({0, 0}, {0, 1}), 111319.49, 0.01);
  // One degree of latitude at the equator is shorter (the meridian is flattened there).
  EXPECT_NEAR(i2g::geodesic_distance_m({0, 0}, {1, 0}), 110574.39, 0.01);
  EXPECT_DOUBLE_EQ(i2g::geodesic_distance_m({39.95, -75.19}, {39.95, -75.19}), 0.0);
  // Symmetric, and across the antimeridian.
  EXPECT_NEAR(i2g::geodesic_distance_m({10, 179.5}, {10, -179.5}),
              i2g::geodesic_distance_m({10, -179.5}, {10, 179.5}), 1e-6);
  EXPECT_NEAR(i2g::geodesic_distance_m({0, 179.5}, {0, -179.5}), 111319.49, 0.01);
}

TEST(Geodesic, CampusScaleAgreesWithHaversine) {
  // Corners of the Penn photo area (about 250 m x 210 m) and a few pairs inside it.
  const std::vector<std::pair<i2g::LatLon, i2g::LatLon>> pairs = {
      {{39.95041, -75.19257}, {39.95265, -75.19011}},
      {{39.95041, -75.19257}, {39.95041, -75.19011}},
      {{39.95041, -75.19257}, {39.95265, -75.19257}},
      {{39.9516483, -75.1922450}, {39.9516480, -75.1922445}}};
  for (const auto& [a, b] : pairs) {
    const double g = i2g::geodesic_distance_m(a, b), h = haversine_m(a, b);
    EXPECT_GT(g, 0.0);
    EXPECT_NEAR(g, h, 0.005 * h) << a.lat << "," << a.lon << " -> " << b.lat << "," << b.lon;
  }
}

TEST(Geodesic, MetricsByHand) {
  // Three predictions off by known amounts (lat and lon in degrees).
  const std::vector<i2g::LatLon> truth = {{39.95, -75.19}, {39.951, -75.191}, {39.952, -75.192}};
  const std::vector<i2g::LatLon> pred = {{39.9501, -75.19}, {39.951, -75.1912}, {39.9523, -75.1916}};
  const i2g::GeoMetrics m = i2g::geo_metrics(pred, truth);
  EXPECT_EQ(m.count, 3u);
  const double abs[6] = {1e-4, 0, 0, 2e-4, 3e-4, 4e-4};
  double s = 0, s2 = 0;
  for (double a : abs) {
    s += a;
    s2 += a * a;
  }
  EXPECT_NEAR(m.mae_deg, s / 6, 1e-12);
  EXPECT_NEAR(m.rmse_deg, std::sqrt(s2 / 6), 1e-12);
  std::vector<double> d;
  for (size_t i = 0; i < 3; ++i) d.push_back(i2g::geodesic_distance_m(pred[i], truth[i]));
  EXPECT_NEAR(m.mean_m, (d[0] + d[1] + d[2]) / 3, 1e-9);
  EXPECT_NEAR(m.rmse_m, std::sqrt((d[0] * d[0] + d[1] * d[1] + d[2] * d[2]) / 3), 1e-9);
  std::vector<double> sorted = d;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_NEAR(m.median_m, sorted[1], 1e-9);
  EXPECT_NEAR(m.p90_m, sorted[1] + 0.8 * (sorted[2] - sorted[1]), 1e-9);
  EXPECT_NEAR(m.max_m, sorted[2], 1e-9);
  // 1e-4 deg of latitude is about 11.1 m.
  EXPECT_NEAR(d[0], 11.1, 0.1);
}

TEST(Geodesic, QuantileLikeNumpy) {
  std::vector<double> v = {10, 1, 9, 2, 8, 3, 7, 4, 6, 5};  // unsorted on purpose
  EXPECT_DOUBLE_EQ(i2g::quantile(v, 0.5), 5.5);
  EXPECT_DOUBLE_EQ(i2g::quantile(v, 0.9), 9.1);
  EXPECT_DOUBLE_EQ(i2g::quantile(v, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(i2g::quantile(v, 1.0), 10.0);
  EXPECT_DOUBLE_EQ(i2g::quantile({4.0}, 0.9), 4.0);
  EXPECT_THROW(i2g::quantile({}, 0.5), engine::Error);
}

TEST(Geodesic, InvalidInputThrows) {
  const std::vector<i2g::LatLon> one = {{1, 2}}, two = {{1, 2}, {3, 4}};
  EXPECT_THROW(i2g::geo_metrics(one, two), engine::Error);
  EXPECT_THROW(i2g::geo_metrics(std::vector<i2g::LatLon>{}, std::vector<i2g::LatLon>{}), engine::Error);
  EXPECT_THROW(i2g::geodesic_distance_m({91, 0}, {0, 0}), engine::Error);
  EXPECT_THROW(i2g::geodesic_distance_m({0, NAN}, {0, 0}), engine::Error);
}

}  // namespace
