// The synthetic campus of `image2gps demo`: determinism, geometry of the ray caster, geotags
// against GeographicLib, walkable samples, speed, and whether location is learnable at all
// (nearby views look alike, far-apart views do not).
#include "apps/image2gps/synthetic_world.h"

#include <GeographicLib/LocalCartesian.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numbers>
#include <set>

#include "engine/error.h"

namespace {

using namespace i2g;

// One world shared by the tests that only read it (building it takes ~50-100 ms).
const World& shared_world() {
  static const World w = make_world(20240611);
  return w;
}

double mean_abs_diff(const RgbImage& a, const RgbImage& b) {
  EXPECT_EQ(a.pixels.size(), b.pixels.size());
  double s = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) s += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return s / a.pixels.size();
}

bool inside_box(const Building& b, double e, double n, double grow) {
  const double dx = e - b.east_m, dy = n - b.north_m;
  const double lx = std::cos(b.yaw_rad) * dx + std::sin(b.yaw_rad) * dy;
  const double ly = -std::sin(b.yaw_rad) * dx + std::cos(b.yaw_rad) * dy;
  return std::abs(lx) < b.half_length_m + grow && std::abs(ly) < b.half_width_m + grow;
}

double luminance(Rgb c) { return 0.3 * c.r + 0.59 * c.g + 0.11 * c.b; }

TEST(SyntheticWorld, SameSeedGivesIdenticalWorldPixelsAndSamples) {
  const World a = make_world(7), b = make_world(7);
  ASSERT_EQ(a.buildings.size(), b.buildings.size());
  ASSERT_EQ(a.trees.size(), b.trees.size());
  const auto sa = sample_views(a, 5, 99), sb = sample_views(b, 5, 99);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(sa[i].pose.east_m, sb[i].pose.east_m);
    EXPECT_EQ(sa[i].pose.heading_deg, sb[i].pose.heading_deg);
    EXPECT_EQ(sa[i].latitude_deg, sb[i].latitude_deg);
    const RgbImage ia = render_view(a, sa[i].pose, 61, 47), ib = render_view(b, sb[i].pose, 61, 47);
    EXPECT_EQ(ia.pixels, ib.pixels) << "view " << i;
  }
  // A different sampling seed gives different poses.
  EXPECT_NE(sample_views(a, 1, 100)[0].pose.east_m, sa[0].pose.east_m);
}

TEST(SyntheticWorld, DifferentSeedsGiveDifferentWorlds) {
  const World a = make_world(1), b = make_world(2);
  CameraPose pose;  // the same pose (at the origin) in both worlds
  double diff = 0;
  for (double h : {30.0, 120.0, 210.0, 300.0}) {
    pose.heading_deg = h;
    diff += mean_abs_diff(render_view(a, pose, 64, 64), render_view(b, pose, 64, 64)) / 4;
  }
  EXPECT_GT(diff, 5.0);
}

TEST(SyntheticWorld, LayoutHasTheAdvertisedContents) {
  const World& w = shared_world();
  int campus = 0, towers = 0;
  std::set<int> materials;
  for (const Building& b : w.buildings) {
    if (!b.on_campus) continue;
    ++campus;
    towers += b.tower;
    if (b.tower) {
      EXPECT_GT(b.height_m, 40);
    }
    EXPECT_TRUE(materials.insert(b.material).second) << "two campus buildings share a material";
    // The whole footprint lies inside the campus.
    const double r = std::hypot(b.half_length_m, b.half_width_m);
    EXPECT_LE(std::abs(b.east_m) + r, w.half_extent_m);
    EXPECT_LE(std::abs(b.north_m) + r, w.half_extent_m);
  }
  EXPECT_GE(campus, 15);
  EXPECT_LE(campus, 30);
  EXPECT_GE(towers, 3);
  EXPECT_GE(w.trees.size(), 40u);
  // No two campus buildings overlap: no corner of one lies inside another.
  for (const Building& a : w.buildings) {
    for (const Building& b : w.buildings) {
      if (&a == &b || !a.on_campus || !b.on_campus) continue;
      for (int k = 0; k < 4; ++k) {
        const double sx = (k & 1) ? 1 : -1, sy = (k & 2) ? 1 : -1;
        const double c = std::cos(a.yaw_rad), s = std::sin(a.yaw_rad);
        const double lx = sx * a.half_length_m, ly = sy * a.half_width_m;
        EXPECT_FALSE(inside_box(b, a.east_m + c * lx - s * ly, a.north_m + s * lx + c * ly, 0));
      }
    }
  }
}

TEST(SyntheticWorld, SamplesAreWalkableAndInsideTheCampus) {
  const World& w = shared_world();
  SampleOptions opt;
  opt.clearance_m = 1.5;
  const auto samples = sample_views(w, 400, 3, opt);
  ASSERT_EQ(samples.size(), 400u);
  double min_e = 1e9, max_e = -1e9;
  for (const ViewSample& s : samples) {
    const CameraPose& p = s.pose;
    EXPECT_LE(std::abs(p.east_m), w.half_extent_m - opt.edge_margin_m);
    EXPECT_LE(std::abs(p.north_m), w.half_extent_m - opt.edge_margin_m);
    EXPECT_GE(p.height_m, opt.height_min_m);
    EXPECT_LE(p.height_m, opt.height_max_m);
    EXPECT_GE(p.heading_deg, 0);
    EXPECT_LT(p.heading_deg, 360);
    for (const Building& b : w.buildings)
      ASSERT_FALSE(inside_box(b, p.east_m, p.north_m, opt.clearance_m - 1e-6))
          << "sample at (" << p.east_m << ", " << p.north_m << ") is inside a building";
    for (const Tree& t : w.trees)
      ASSERT_GE(std::hypot(t.east_m - p.east_m, t.north_m - p.north_m), t.canopy_radius_m)
          << "sample under a tree";
    const GroundMap& g = w.ground;
    const int i = int((p.east_m - g.x0) / g.cell_m), j = int((p.north_m - g.y0) / g.cell_m);
    EXPECT_NE(g.kind[size_t(j) * g.nx + i], Ground::Water);
    min_e = std::min(min_e, p.east_m), max_e = std::max(max_e, p.east_m);
  }
  EXPECT_GT(max_e - min_e, 200) << "samples should spread over the campus";
  // And the obvious non-walkable spots are refused.
  for (const Building& b : w.buildings) {
    if (b.on_campus) {
      EXPECT_FALSE(is_walkable(w, b.east_m, b.north_m));
    }
  }
  EXPECT_FALSE(is_walkable(w, w.half_extent_m + 1, 0));
}

TEST(SyntheticWorld, GeotagsMatchGeographicLibLocalCartesian) {
  // Penn (the default), Sydney and Oslo: the east-west scale changes a lot with latitude.
  for (auto [lat0, lon0] : {std::pair{39.9515, -75.1915}, {-33.8688, 151.2093}, {59.9139, 10.7522}}) {
    const World w = make_world(11, lat0, lon0);
    const GeographicLib::LocalCartesian lc(lat0, lon0, 0);
    // Bounding box from rough constants (1 deg latitude ~ 111 km): checks the scale's order.
    const double dlat = w.half_extent_m / 110500.0, dlon = w.half_extent_m / (111700.0 * std::cos(lat0 * std::numbers::pi / 180));
    for (const ViewSample& s : sample_views(w, 200, 5)) {
      EXPECT_LE(std::abs(s.latitude_deg - lat0), dlat);
      EXPECT_LE(std::abs(s.longitude_deg - lon0), dlon);
      double x, y, z;
      lc.Forward(s.latitude_deg, s.longitude_deg, 0, x, y, z);
      EXPECT_NEAR(x, s.pose.east_m, 0.01) << "at origin " << lat0 << ", " << lon0;
      EXPECT_NEAR(y, s.pose.north_m, 0.01) << "at origin " << lat0 << ", " << lon0;
      const EastNorth back = geo_to_local(w.geo, s.latitude_deg, s.longitude_deg);
      EXPECT_NEAR(back.east_m, s.pose.east_m, 1e-6);
      EXPECT_NEAR(back.north_m, s.pose.north_m, 1e-6);
    }
  }
}

TEST(SyntheticWorld, DifferentPositionsAndHeadingsGiveDifferentImages) {
  const World& w = shared_world();
  const auto s = sample_views(w, 6, 17);
  for (int i = 0; i + 1 < 6; ++i) {
    CameraPose p = s[i].pose, q = s[i + 1].pose;
    q.heading_deg = p.heading_deg;  // only the position differs
    EXPECT_GT(mean_abs_diff(render_view(w, p, 64, 64), render_view(w, q, 64, 64)), 3.0) << i;
    CameraPose turned = p;
    turned.heading_deg += 90;
    EXPECT_GT(mean_abs_diff(render_view(w, p, 64, 64), render_view(w, turned, 64, 64)), 3.0) << i;
    turned.heading_deg = p.heading_deg + 360;  // a full turn is the same view
    EXPECT_LT(mean_abs_diff(render_view(w, p, 64, 64), render_view(w, turned, 64, 64)), 0.05) << i;
  }
}

TEST(SyntheticWorld, GroundBelowSkyAboveFromHighUp) {
  const World& w = shared_world();
  CameraPose down;
  down.height_m = 400;
  down.pitch_deg = -80;
  const RgbImage g = render_view(w, down, 40, 30);
  CameraPose up = down;
  up.height_m = w.max_height_m + 10;
  up.pitch_deg = 85;
  const RgbImage s = render_view(w, up, 40, 30);
  int ground_like = 0, sky_like = 0;
  for (int y = 0; y < 30; ++y) {
    for (int x = 0; x < 40; ++x) {
      ground_like += g.at(x, y, 2) < g.at(x, y, 1);  // grass, paths, roofs: less blue than green
      sky_like += s.at(x, y, 2) > s.at(x, y, 0) + 40;  // clear blue
    }
  }
  EXPECT_GT(ground_like, 40 * 30 * 0.6);
  EXPECT_EQ(sky_like, 40 * 30);
}

// Standing in front of each campus building and repainting it red must change what the camera
// sees; turning around, the same repaint must change nothing (the building is behind).
TEST(SyntheticWorld, FacingABuildingSeesItAndOnlyIt) {
  World w = make_world(4242);
  int checked = 0;
  for (size_t k = 0; k < w.buildings.size(); ++k) {
    const Building b = w.buildings[k];
    if (!b.on_campus || b.half_width_m < 3) continue;  // the obelisk is too slim to fill a view
    // 3 m out from the middle of the box's +x face, looking back at it.
    const double c = std::cos(b.yaw_rad), s = std::sin(b.yaw_rad);
    CameraPose pose;
    pose.east_m = b.east_m + c * (b.half_length_m + 3);
    pose.north_m = b.north_m + s * (b.half_length_m + 3);
    pose.heading_deg = std::atan2(-c, -s) * 180 / std::numbers::pi;  // compass heading of -(cos, sin)
    pose.pitch_deg = 10;
    CameraPose away = pose;
    away.heading_deg += 180;
    const RgbImage before = render_view(w, pose, 48, 48), before_away = render_view(w, away, 48, 48);
    const Material saved = w.materials[b.material];
    w.materials[b.material].base = w.materials[b.material].accent = {1, 0, 0};
    const RgbImage after = render_view(w, pose, 48, 48), after_away = render_view(w, away, 48, 48);
    w.materials[b.material] = saved;
    int changed = 0;
    for (size_t i = 0; i < before.pixels.size(); i += 3) changed += before.pixels[i] != after.pixels[i];
    EXPECT_GT(changed, 48 * 48 / 3) << "building " << k;
    EXPECT_GT(after.at(24, 24, 0), after.at(24, 24, 1) + 20) << "center pixel of building " << k;
    EXPECT_EQ(before_away.pixels, after_away.pixels) << "building " << k << " seen from behind";
    ++checked;
  }
  EXPECT_GE(checked, 15);
}

// Tall towers darken the grass on their side away from the sun (shadows are baked into the
// ground map). Medians over a line of cells on each side, so a tree shadow or a path on one
// cell does not decide it.
TEST(SyntheticWorld, TowersCastShadowsAwayFromTheSun) {
  const World& w = shared_world();
  const GroundMap& g = w.ground;
  const double horiz = std::hypot(w.sun[0], w.sun[1]);
  const double sx = w.sun[0] / horiz, sy = w.sun[1] / horiz;
  auto grass_lum = [&](double e, double n, std::vector<double>& out) {
    const size_t k = size_t(int((n - g.y0) / g.cell_m)) * g.nx + int((e - g.x0) / g.cell_m);
    if (g.kind[k] == Ground::Grass) out.push_back(luminance(g.color[k]));
  };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  int compared = 0;
  for (const Building& b : w.buildings) {
    if (!b.tower) continue;
    std::vector<double> shade, lit;
    const double r = std::hypot(b.half_length_m, b.half_width_m);
    for (double d = r + 3; d < r + 25; d += 2) {  // the shadow of a >40 m tower is >25 m long
      grass_lum(b.east_m - sx * d, b.north_m - sy * d, shade);
      grass_lum(b.east_m + sx * d, b.north_m + sy * d, lit);
    }
    if (shade.size() < 5 || lit.size() < 5) continue;
    EXPECT_LT(median(shade), 0.7 * median(lit)) << "tower at " << b.east_m << ", " << b.north_m;
    ++compared;
  }
  EXPECT_GE(compared, 2);
}

TEST(SyntheticWorld, SupersamplingOnlySmoothsTheImage) {
  const World& w = shared_world();
  const CameraPose p = sample_views(w, 1, 8)[0].pose;
  const RgbImage one = render_view(w, p, 72, 54), four = render_view(w, p, 72, 54, 2);
  const double d = mean_abs_diff(one, four);
  EXPECT_GT(d, 0.0);
  EXPECT_LT(d, 8.0);
}

TEST(SyntheticWorld, RendersQuickly) {
  const World& w = shared_world();
  const auto samples = sample_views(w, 4, 21);
  render_view(w, samples[0].pose, 224, 224);  // warm-up
  double best = 1e9;
  for (const ViewSample& s : samples) {
    const auto t0 = std::chrono::steady_clock::now();
    const RgbImage img = render_view(w, s.pose, 224, 224);
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    ASSERT_EQ(img.pixels.size(), 224u * 224 * 3);
  }
  EXPECT_LT(best, 200.0) << "a 224x224 view took " << best << " ms";
}

// The point of the world: location must be learnable from pixels. Views 1 m apart (same
// heading) should look much more alike than views about 100 m apart.
TEST(SyntheticWorld, NearbyViewsLookAlikeFarViewsDoNot) {
  const World& w = shared_world();
  SampleOptions opt;
  opt.pitch_max_deg = 0;
  opt.height_min_m = opt.height_max_m = 1.6;
  const auto base = sample_views(w, 16, 31, opt);
  const auto pool = sample_views(w, 400, 32, opt);
  double near_sum = 0, far_sum = 0;
  int pairs = 0;
  for (const ViewSample& s : base) {
    CameraPose near = s.pose;
    bool found_near = false;
    for (int k = 0; k < 8 && !found_near; ++k) {  // step 1 m in one of 8 directions
      const double a = k * std::numbers::pi / 4;
      near.east_m = s.pose.east_m + std::cos(a), near.north_m = s.pose.north_m + std::sin(a);
      found_near = is_walkable(w, near.east_m, near.north_m);
    }
    CameraPose far = s.pose;
    bool found_far = false;
    for (const ViewSample& o : pool) {
      const double d = std::hypot(o.pose.east_m - s.pose.east_m, o.pose.north_m - s.pose.north_m);
      if (d > 90 && d < 110) {
        far.east_m = o.pose.east_m, far.north_m = o.pose.north_m;
        found_far = true;
        break;
      }
    }
    if (!found_near || !found_far) continue;
    const RgbImage img = render_view(w, s.pose, 64, 64);
    near_sum += mean_abs_diff(img, render_view(w, near, 64, 64));
    far_sum += mean_abs_diff(img, render_view(w, far, 64, 64));
    ++pairs;
  }
  ASSERT_GE(pairs, 10);
  const double near_mean = near_sum / pairs, far_mean = far_sum / pairs;
  RecordProperty("near_mean_abs_diff", std::to_string(near_mean));
  RecordProperty("far_mean_abs_diff", std::to_string(far_mean));
  EXPECT_LT(near_mean, 0.5 * far_mean) << "near " << near_mean << " far " << far_mean;
}

TEST(SyntheticWorld, BadArgumentsThrowActionableErrors) {
  const World& w = shared_world();
  CameraPose p;
  EXPECT_THROW(render_view(w, p, 0, 10), engine::Error);
  EXPECT_THROW(render_view(w, p, 10, 5000), engine::Error);
  EXPECT_THROW(render_view(w, p, 10, 10, 5), engine::Error);
  p.hfov_deg = 0;
  EXPECT_THROW(render_view(w, p, 10, 10), engine::Error);
  p.hfov_deg = 60;
  p.pitch_deg = 90;
  EXPECT_THROW(render_view(w, p, 10, 10), engine::Error);
  EXPECT_THROW(render_view(World{}, CameraPose{}, 10, 10), engine::Error);
  EXPECT_THROW(make_world(1, 95, 0), engine::Error);
  EXPECT_THROW(make_world(1, 40, NAN), engine::Error);
  EXPECT_THROW(sample_views(w, -1, 0), engine::Error);
  SampleOptions bad;
  bad.edge_margin_m = 1000;
  EXPECT_THROW(sample_views(w, 1, 0, bad), engine::Error);
  try {
    render_view(w, CameraPose{}, 10, 0);
    FAIL() << "expected an error";
  } catch (const engine::Error& e) {
    EXPECT_NE(std::string(e.what()).find("10x0"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(sample_views(w, 0, 0).empty());
}

}  // namespace
