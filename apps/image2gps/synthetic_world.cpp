// apps/image2gps/synthetic_world.cpp — the synthetic campus: geotags, layout, and sampling.
// The ray caster that draws it lives in synthetic_world_render.cpp.
//
// Layout, in the order make_world builds it (every step draws from one seeded generator):
//   1. sun direction and the distant skyline (hills, infinitely far: they tell heading, not place);
//   2. paths: a main east-west and north-south walk crossing at a brick plaza, two secondary
//      walks and two diagonals;
//   3. a sports field and a pond on free grass;
//   4. four landmark towers, one per quadrant, each in its own saturated color, then ~20
//      buildings with a distinct hue (golden-ratio spacing) and facade pattern each, kept
//      >= 8 m apart and >= 4 m off the paths;
//   5. a ring of muted city blocks outside the campus (parallax cues near the edge);
//   6. trees along the paths and on open grass;
//   7. primitives, the 2D grid over them, and the ground map with baked sunlight and shadows.
#include "apps/image2gps/synthetic_world.h"

#include <algorithm>
#include <cmath>

#include "apps/image2gps/synthetic_world_detail.h"
#include "engine/error.h"

namespace i2g {

// ---- geotags ---------------------------------------------------------------------------

GeoFrame make_geo_frame(double origin_lat_deg, double origin_lon_deg) {
  engine::check(std::isfinite(origin_lat_deg) && std::isfinite(origin_lon_deg) &&
                    std::abs(origin_lat_deg) <= 85 && std::abs(origin_lon_deg) <= 180,
                "synthetic world: the origin must be a latitude in [-85, 85] and a longitude in "
                "[-180, 180] degrees, got (",
                origin_lat_deg, ", ", origin_lon_deg, ")");
  // WGS84: semi-major axis a and flattening f; e2 = first eccentricity squared.
  const double a = 6378137.0, f = 1 / 298.257223563, e2 = f * (2 - f);
  const double s = std::sin(origin_lat_deg * detail::kDeg);
  const double w = std::sqrt(1 - e2 * s * s);
  const double meridional = a * (1 - e2) / (w * w * w);  // M: north-south radius of curvature
  const double prime_vertical = a / w;                   // N: east-west radius of curvature
  GeoFrame g;
  g.origin_lat_deg = origin_lat_deg;
  g.origin_lon_deg = origin_lon_deg;
  g.m_per_deg_lat = meridional * detail::kDeg;
  g.m_per_deg_lon = prime_vertical * std::cos(origin_lat_deg * detail::kDeg) * detail::kDeg;
  return g;
}

GeoPoint local_to_geo(const GeoFrame& frame, double east_m, double north_m) {
  GeoPoint p;
  p.lat_deg = frame.origin_lat_deg + north_m / frame.m_per_deg_lat;
  p.lon_deg = frame.origin_lon_deg + east_m / frame.m_per_deg_lon;
  if (p.lon_deg > 180) p.lon_deg -= 360;  // a campus next to the antimeridian
  if (p.lon_deg < -180) p.lon_deg += 360;
  return p;
}

EastNorth geo_to_local(const GeoFrame& frame, double lat_deg, double lon_deg) {
  double dlon = lon_deg - frame.origin_lon_deg;
  if (dlon > 180) dlon -= 360;
  if (dlon < -180) dlon += 360;
  return {dlon * frame.m_per_deg_lon, (lat_deg - frame.origin_lat_deg) * frame.m_per_deg_lat};
}

namespace {

using detail::hsv;
using detail::kPi;
using detail::mix;
using detail::Rng;
using detail::scale;
using detail::value_noise;

bool in_footprint(const Building& b, double east_m, double north_m, double grow) {
  const double dx = east_m - b.east_m, dy = north_m - b.north_m;
  const double c = std::cos(b.yaw_rad), s = std::sin(b.yaw_rad);
  const double lx = c * dx + s * dy, ly = -s * dx + c * dy;
  return std::abs(lx) <= b.half_length_m + grow && std::abs(ly) <= b.half_width_m + grow;
}

// The campus while it is being laid out: ground kinds and cells already taken, on the ground
// map's cells.
struct Layout {
  GroundMap& g;
  std::vector<uint8_t> taken;
  float half;  // campus half extent

  float cx(int i) const { return g.x0 + (i + 0.5f) * g.cell_m; }
  float cy(int j) const { return g.y0 + (j + 0.5f) * g.cell_m; }
  int cell(float x, float y) const {
    const int i = static_cast<int>(std::floor((x - g.x0) / g.cell_m));
    const int j = static_cast<int>(std::floor((y - g.y0) / g.cell_m));
    return (i < 0 || j < 0 || i >= g.nx || j >= g.ny) ? -1 : j * g.nx + i;
  }

  // Calls f(cell index) for every cell whose center is inside b grown by `grow`.
  template <class F>
  void for_cells(const Building& b, float grow, F f) const {
    const float r = std::hypot(b.half_length_m, b.half_width_m) + grow;
    const int i0 = std::max(0, static_cast<int>((b.east_m - r - g.x0) / g.cell_m));
    const int i1 = std::min(g.nx - 1, static_cast<int>((b.east_m + r - g.x0) / g.cell_m));
    const int j0 = std::max(0, static_cast<int>((b.north_m - r - g.y0) / g.cell_m));
    const int j1 = std::min(g.ny - 1, static_cast<int>((b.north_m + r - g.y0) / g.cell_m));
    for (int j = j0; j <= j1; ++j)
      for (int i = i0; i <= i1; ++i)
        if (in_footprint(b, cx(i), cy(j), grow)) f(j * g.nx + i);
  }

  // True when b (grown by `gap`) lies inside the campus on untaken grass.
  bool free(const Building& b, float gap) const {
    const float r = std::hypot(b.half_length_m, b.half_width_m);
    if (std::abs(b.east_m) + r > half - 3 || std::abs(b.north_m) + r > half - 3) return false;
    bool ok = true;
    for_cells(b, gap, [&](int c) { ok = ok && g.kind[c] == Ground::Grass && !taken[c]; });
    return ok;
  }
  void take(const Building& b, float gap) {
    for_cells(b, gap, [&](int c) { taken[c] = 1; });
  }
};

float segment_distance(const Path& p, float x, float y) {
  const float vx = p.x1 - p.x0, vy = p.y1 - p.y0;
  const float len2 = vx * vx + vy * vy;
  float t = len2 > 0 ? ((x - p.x0) * vx + (y - p.y0) * vy) / len2 : 0;
  t = std::clamp(t, 0.0f, 1.0f);
  return std::hypot(x - (p.x0 + t * vx), y - (p.y0 + t * vy));
}


// Paths first: everything else avoids them. Returns the crossing of the two main walks.
std::pair<float, float> add_paths(World& w, Rng& rng) {
  const float h = w.half_extent_m + 10;
  const float ym = rng.uniformf(-25, 25), xm = rng.uniformf(-30, 30);
  const float sy = rng.uniform() < 0.5 ? -1.f : 1.f, sx = rng.uniform() < 0.5 ? -1.f : 1.f;
  const float y2 = ym + sy * rng.uniformf(70, 95), x2 = xm - sx * rng.uniformf(70, 95);
  w.paths.push_back({-h, ym, h, ym, 3.0f});  // main east-west walk
  w.paths.push_back({xm, -h, xm, h, 2.5f});  // main north-south walk
  w.paths.push_back({-h, y2, h, y2, 1.8f});
  w.paths.push_back({x2, -h, x2, h, 1.8f});
  // Two diagonals from the central crossing into the two quadrants the secondary walks skip.
  const float d = w.half_extent_m - 5;
  w.paths.push_back({xm, ym, sx * d, -sy * d, 1.5f});
  w.paths.push_back({xm, ym, -sx * d * 0.9f, -sy * d, 1.5f});
  return {xm, ym};
}

Material building_material(Rng& rng, float hue) {
  Material m;
  const float s = rng.uniformf(0.3, 0.7), v = rng.uniformf(0.55, 0.88);
  m.base = hsv(hue, s, v);
  m.roof = mix(scale(m.base, 0.55f), {0.33f, 0.33f, 0.35f}, 0.5f);
  m.period_u_m = rng.uniformf(2.5, 5);
  m.period_v_m = rng.uniformf(3, 4.5);  // about one floor
  m.fill = rng.uniformf(0.4, 0.7);
  const double pick = rng.uniform();
  if (pick < 0.5) {
    m.pattern = Pattern::Windows;
    m.accent = hsv(rng.uniformf(0.52, 0.64), 0.45f, rng.uniformf(0.2, 0.4));  // tinted glass
  } else if (pick < 0.7) {
    m.pattern = Pattern::Bands;
    m.fill = rng.uniformf(0.25, 0.45);
    m.accent = rng.uniform() < 0.5 ? hsv(hue + 0.5f, 0.2f, 0.93f) : hsv(hue, 0.3f, 0.25f);
  } else if (pick < 0.87) {
    m.pattern = Pattern::Fins;
    m.period_u_m = rng.uniformf(1.5, 3);
    m.fill = rng.uniformf(0.3, 0.5);
    m.accent = hsv(hue + rng.uniformf(0.08, 0.15), s * 0.5f, v * 0.65f);
  } else if (pick < 0.95) {
    m.pattern = Pattern::Checker;
    m.period_u_m = m.period_v_m = rng.uniformf(2, 4);
    m.accent = hsv(hue, s * 0.6f, v * 0.6f);
  } else {
    m.pattern = Pattern::Plain;
    m.accent = scale(m.base, 0.8f);
  }
  return m;
}

int add_material(World& w, const Material& m) {
  w.materials.push_back(m);
  return static_cast<int>(w.materials.size()) - 1;
}

// Four tall towers, one per quadrant, each a saturated hue of its own with a crown on top
// (a sphere or a spire): they are visible from everywhere, like a campus's landmarks.
void add_towers(World& w, Layout& lay, Rng& rng, float hue0) {
  for (int q = 0; q < 4; ++q) {
    const float sx = (q & 1) ? 1.f : -1.f, sy = (q & 2) ? 1.f : -1.f;
    for (int attempt = 0; attempt < 400; ++attempt) {
      Building b;
      b.east_m = sx * rng.uniformf(35, 115);
      b.north_m = sy * rng.uniformf(35, 115);
      b.half_length_m = rng.uniformf(4, 6.5);
      b.half_width_m = rng.uniformf(4, 6.5);
      b.yaw_rad = rng.uniformf(0, kPi / 2);
      b.height_m = rng.uniformf(45, 80);
      b.tower = true;
      if (!lay.free(b, 5)) continue;
      lay.take(b, 5);
      const float hue = hue0 + 0.25f * q + 0.125f;
      Material m;
      m.base = hsv(hue, 0.85f, 0.9f);
      m.accent = (q & 1) ? Rgb{0.95f, 0.95f, 0.93f} : Rgb{0.12f, 0.12f, 0.16f};
      m.roof = scale(m.base, 0.6f);
      m.pattern = Pattern::Bands;
      m.period_v_m = rng.uniformf(6, 10);
      m.fill = 0.25f;
      b.material = add_material(w, m);
      w.buildings.push_back(b);
      break;
    }
  }
}

void add_buildings(World& w, Layout& lay, Rng& rng, float hue0, int count) {
  int placed = 0;
  for (int attempt = 0; attempt < 4000 && placed < count; ++attempt) {
    Building b;
    const float lim = w.half_extent_m - 10;
    b.east_m = rng.uniformf(-lim, lim);
    b.north_m = rng.uniformf(-lim, lim);
    b.half_length_m = rng.uniformf(7, 22);
    b.half_width_m = rng.uniformf(6, 14);
    b.yaw_rad = rng.uniform() < 0.7 ? 0.f : rng.uniformf(0, kPi);  // most follow the street grid
    b.height_m = rng.uniformf(8, 30);
    if (!lay.free(b, 4)) continue;  // 4 m each side: >= 8 m between buildings, >= 4 m to paths
    lay.take(b, 4);
    // Golden-ratio hue steps keep consecutive buildings far apart on the color wheel.
    b.material = add_material(w, building_material(rng, hue0 + 0.618034f * placed));
    w.buildings.push_back(b);
    ++placed;
  }
}

// Muted blocks around the campus: seen from near the edge they give the view parallax cues.
void add_city_ring(World& w, Rng& rng) {
  int mats[4];
  for (int& m : mats) {
    Material mat;
    mat.base = hsv(rng.uniformf(0, 1), rng.uniformf(0.08, 0.2), rng.uniformf(0.45, 0.7));
    mat.accent = hsv(0.6f, 0.2f, rng.uniformf(0.25, 0.4));
    mat.roof = scale(mat.base, 0.6f);
    mat.pattern = Pattern::Windows;
    mat.period_u_m = rng.uniformf(3, 4.5);
    mat.period_v_m = rng.uniformf(3, 4);
    mat.fill = 0.5f;
    m = add_material(w, mat);
  }
  const int n = 20;
  for (int k = 0; k < n; ++k) {
    const float angle = static_cast<float>(2 * kPi * k / n) + rng.uniformf(-0.1, 0.1);
    const float r = w.half_extent_m + rng.uniformf(50, 85);
    Building b;
    b.east_m = r * std::cos(angle);
    b.north_m = r * std::sin(angle);
    b.half_length_m = rng.uniformf(10, 22);
    b.half_width_m = rng.uniformf(8, 15);
    b.yaw_rad = angle;
    b.height_m = rng.uniformf(12, 45);
    b.material = mats[rng.below(4)];
    b.on_campus = false;
    w.buildings.push_back(b);
  }
}

void add_trees(World& w, const Layout& lay, Rng& rng) {
  int canopy[4];
  for (int& c : canopy) {
    Material m;
    m.base = hsv(rng.uniformf(0.22, 0.33), rng.uniformf(0.45, 0.7), rng.uniformf(0.3, 0.5));
    m.accent = scale(m.base, 0.6f);
    m.pattern = Pattern::Foliage;
    m.period_u_m = m.period_v_m = 0.8f;
    c = add_material(w, m);
  }
  Material bark;
  bark.base = {0.36f, 0.26f, 0.18f};
  bark.accent = bark.roof = bark.base;
  const int trunk = add_material(w, bark);

  auto try_tree = [&](float x, float y) {
    const float r = rng.uniformf(1.8, 3.2);
    const float lim = w.half_extent_m - 2 - r;
    if (std::abs(x) > lim || std::abs(y) > lim) return;
    const int c = lay.cell(x, y);
    if (c < 0 || lay.g.kind[c] != Ground::Grass || lay.taken[c]) return;
    for (const Tree& t : w.trees)
      if (std::hypot(t.east_m - x, t.north_m - y) < 5) return;
    Tree t;
    t.east_m = x;
    t.north_m = y;
    t.canopy_radius_m = r;
    t.trunk_height_m = rng.uniformf(2.2, 3.4);
    t.trunk_radius_m = rng.uniformf(0.2, 0.35);
    t.canopy_material = canopy[rng.below(4)];
    t.trunk_material = trunk;
    w.trees.push_back(t);
  };
  // Rows along both sides of every path, with gaps.
  for (const Path& p : w.paths) {
    const float len = std::hypot(p.x1 - p.x0, p.y1 - p.y0);
    const float ux = (p.x1 - p.x0) / len, uy = (p.y1 - p.y0) / len;
    for (float s = rng.uniformf(0, 8); s < len; s += rng.uniformf(9, 13)) {
      for (float side : {-1.f, 1.f}) {
        if (rng.uniform() > 0.7) continue;
        const float off = side * (p.half_width_m + rng.uniformf(2.5, 4));
        try_tree(p.x0 + ux * s - uy * off, p.y0 + uy * s + ux * off);
      }
    }
  }
  // And scattered on open grass.
  for (int k = 0; k < 60; ++k) {
    const float lim = w.half_extent_m;
    try_tree(rng.uniformf(-lim, lim), rng.uniformf(-lim, lim));
  }
}

Rgb ground_albedo(Ground kind, float x, float y, uint32_t seed) {
  const float lo = value_noise(x / 23, y / 23, seed);  // patches tens of meters wide
  const float mid = value_noise(x / 5, y / 5, seed + 1);
  switch (kind) {
    case Ground::Grass:
      return scale(mix({0.30f, 0.50f, 0.20f}, {0.46f, 0.52f, 0.24f}, lo), 0.9f + 0.2f * mid);
    case Ground::Path: return scale({0.64f, 0.60f, 0.54f}, 0.93f + 0.1f * mid);
    case Ground::Plaza: return scale({0.60f, 0.34f, 0.26f}, 0.9f + 0.15f * mid);
    case Ground::Field: {
      const bool stripe = static_cast<int>(std::floor(x / 5)) & 1;  // mowing stripes
      return scale({0.22f, 0.58f, 0.24f}, stripe ? 1.08f : 0.95f);
    }
    case Ground::Water: return scale({0.16f, 0.30f, 0.46f}, 0.95f + 0.1f * mid);
  }
  return {};
}

// Every solid becomes one or two primitives; then the uniform 2D grid is built over them.
void build_primitives(World& w) {
  auto box = [&](float cx, float cy, float z0, float a, float b, float h, float yaw, int mat) {
    Primitive p;
    p.shape = Primitive::Shape::Box;
    p.cx = cx, p.cy = cy, p.z0 = z0, p.a = a, p.b = b, p.h = h;
    p.cos_yaw = std::cos(yaw), p.sin_yaw = std::sin(yaw);
    p.material = mat;
    w.prims.push_back(p);
  };
  auto round = [&](Primitive::Shape shape, float cx, float cy, float z0, float r, float h, int mat) {
    Primitive p;
    p.shape = shape;
    p.cx = cx, p.cy = cy, p.z0 = z0, p.a = r, p.h = h;
    p.material = mat;
    w.prims.push_back(p);
  };
  int tower_index = 0;
  for (const Building& b : w.buildings) {
    box(b.east_m, b.north_m, 0, b.half_length_m, b.half_width_m, b.height_m, b.yaw_rad, b.material);
    if (!b.tower) continue;
    Material crown;  // a plain blend of the tower's two colors
    crown.base = mix(w.materials[b.material].accent, w.materials[b.material].base, 0.35f);
    crown.roof = crown.accent = crown.base;
    const int mat = add_material(w, crown);
    const float small = std::min(b.half_length_m, b.half_width_m);
    if (tower_index++ % 2 == 0) {
      round(Primitive::Shape::Sphere, b.east_m, b.north_m, b.height_m + small * 0.9f, small * 1.4f, 0, mat);
    } else {
      box(b.east_m, b.north_m, b.height_m, b.half_length_m * 0.45f, b.half_width_m * 0.45f,
          b.height_m * 0.25f, b.yaw_rad, mat);
    }
  }
  for (const Tree& t : w.trees) {
    round(Primitive::Shape::Cylinder, t.east_m, t.north_m, 0, t.trunk_radius_m, t.trunk_height_m,
          t.trunk_material);
    round(Primitive::Shape::Sphere, t.east_m, t.north_m, t.trunk_height_m + 0.6f * t.canopy_radius_m,
          t.canopy_radius_m, 0, t.canopy_material);
  }

  // Bounding circle of each primitive in east/north, and its top.
  auto radius = [](const Primitive& p) {
    return p.shape == Primitive::Shape::Box ? std::hypot(p.a, p.b) : p.a;
  };
  float lo_x = 0, hi_x = 0, lo_y = 0, hi_y = 0;
  w.max_height_m = 0;
  for (const Primitive& p : w.prims) {
    const float r = radius(p);
    lo_x = std::min(lo_x, p.cx - r), hi_x = std::max(hi_x, p.cx + r);
    lo_y = std::min(lo_y, p.cy - r), hi_y = std::max(hi_y, p.cy + r);
    const float top = p.shape == Primitive::Shape::Sphere ? p.z0 + p.a : p.z0 + p.h;
    w.max_height_m = std::max(w.max_height_m, top);
  }
  PrimitiveGrid& g = w.grid;
  g.cell_m = 8;
  g.x0 = std::floor(lo_x) - 1, g.y0 = std::floor(lo_y) - 1;
  g.nx = static_cast<int>(std::ceil((hi_x + 1 - g.x0) / g.cell_m));
  g.ny = static_cast<int>(std::ceil((hi_y + 1 - g.y0) / g.cell_m));
  // Two passes (count, then fill) give the compressed cell lists without per-cell vectors.
  std::vector<uint32_t> count(static_cast<size_t>(g.nx) * g.ny + 1, 0);
  auto cells = [&](const Primitive& p, auto f) {
    const float r = radius(p);
    const int i0 = std::max(0, static_cast<int>((p.cx - r - g.x0) / g.cell_m));
    const int i1 = std::min(g.nx - 1, static_cast<int>((p.cx + r - g.x0) / g.cell_m));
    const int j0 = std::max(0, static_cast<int>((p.cy - r - g.y0) / g.cell_m));
    const int j1 = std::min(g.ny - 1, static_cast<int>((p.cy + r - g.y0) / g.cell_m));
    for (int j = j0; j <= j1; ++j)
      for (int i = i0; i <= i1; ++i) f(j * g.nx + i);
  };
  for (const Primitive& p : w.prims) cells(p, [&](int c) { ++count[c + 1]; });
  for (size_t c = 1; c < count.size(); ++c) count[c] += count[c - 1];
  g.start = count;
  g.items.assign(count.back(), 0);
  for (uint32_t k = 0; k < w.prims.size(); ++k) cells(w.prims[k], [&](int c) { g.items[count[c]++] = k; });
}

}  // namespace

namespace detail {
Rgb outside_albedo(float x, float y, uint32_t seed) { return ground_albedo(Ground::Grass, x, y, seed); }
}  // namespace detail

World make_world(uint64_t seed, double origin_lat_deg, double origin_lon_deg) {
  World w;
  w.seed = seed;
  w.geo = make_geo_frame(origin_lat_deg, origin_lon_deg);
  Rng rng(seed);
  const uint32_t noise_seed = static_cast<uint32_t>(seed ^ (seed >> 32));

  // 1. Sun in the southern sky, and the skyline.
  const double sun_az = rng.uniform(110, 250) * detail::kDeg, sun_el = rng.uniform(35, 55) * detail::kDeg;
  w.sun[0] = static_cast<float>(std::sin(sun_az) * std::cos(sun_el));
  w.sun[1] = static_cast<float>(std::cos(sun_az) * std::cos(sun_el));
  w.sun[2] = static_cast<float>(std::sin(sun_el));
  for (int k = 0; k < 5; ++k) {
    w.hill_amp[k] = rng.uniformf(0.3, 1.0) * 0.03f / (1 + 0.4f * k);
    w.hill_phase[k] = rng.uniformf(0, 2 * kPi);
  }

  // The ground map covers the campus plus a 20 m border, in 0.5 m cells: coarser ones look
  // blurry right in front of the camera.
  GroundMap& g = w.ground;
  g.cell_m = 0.5f;
  g.x0 = g.y0 = -(w.half_extent_m + 20);
  g.nx = g.ny = static_cast<int>(2 * (w.half_extent_m + 20) / g.cell_m);
  g.kind.assign(static_cast<size_t>(g.nx) * g.ny, Ground::Grass);
  Layout lay{g, std::vector<uint8_t>(g.kind.size(), 0), w.half_extent_m};

  // 2. Paths and the plaza with its obelisk where the main walks cross.
  const auto [xm, ym] = add_paths(w, rng);
  for (int j = 0; j < g.ny; ++j)
    for (int i = 0; i < g.nx; ++i)
      for (const Path& p : w.paths)
        if (segment_distance(p, lay.cx(i), lay.cy(j)) <= p.half_width_m) g.kind[j * g.nx + i] = Ground::Path;
  const float plaza_r = rng.uniformf(12, 16);
  for (int j = 0; j < g.ny; ++j)
    for (int i = 0; i < g.nx; ++i)
      if (std::hypot(lay.cx(i) - xm, lay.cy(j) - ym) <= plaza_r) g.kind[j * g.nx + i] = Ground::Plaza;

  // 3. Sports field and pond, each on free grass if it fits somewhere.
  Building field;
  bool have_field = false;
  for (int attempt = 0; attempt < 300 && !have_field; ++attempt) {
    field.east_m = rng.uniformf(-110, 110);
    field.north_m = rng.uniformf(-110, 110);
    field.half_length_m = 32, field.half_width_m = 20;
    field.yaw_rad = rng.uniform() < 0.5 ? 0.f : static_cast<float>(kPi / 2);
    have_field = lay.free(field, 3);
  }
  if (have_field) {
    lay.for_cells(field, 0, [&](int c) { g.kind[c] = Ground::Field; });
    lay.take(field, 3);
  }
  for (int attempt = 0; attempt < 300; ++attempt) {
    Building pond;  // the ellipse's bounding box
    pond.east_m = rng.uniformf(-120, 120);
    pond.north_m = rng.uniformf(-120, 120);
    pond.half_length_m = rng.uniformf(12, 20), pond.half_width_m = rng.uniformf(8, 12);
    pond.yaw_rad = rng.uniformf(0, kPi);
    if (!lay.free(pond, 3)) continue;
    const float c = std::cos(pond.yaw_rad), s = std::sin(pond.yaw_rad);
    lay.for_cells(pond, 0, [&](int k) {
      const float dx = lay.cx(k % g.nx) - pond.east_m, dy = lay.cy(k / g.nx) - pond.north_m;
      const float lx = (c * dx + s * dy) / pond.half_length_m, ly = (-s * dx + c * dy) / pond.half_width_m;
      if (lx * lx + ly * ly <= 1) g.kind[k] = Ground::Water;
    });
    lay.take(pond, 3);
    break;
  }

  // 4. Landmarks, the obelisk, and the buildings.
  const float hue0 = rng.uniformf(0, 1);
  add_towers(w, lay, rng, hue0);
  {
    Building obelisk;
    obelisk.east_m = xm, obelisk.north_m = ym;
    obelisk.half_length_m = obelisk.half_width_m = 1.2f;
    obelisk.height_m = 11;
    Material stone;
    stone.base = {0.86f, 0.84f, 0.79f};
    stone.accent = {0.85f, 0.62f, 0.18f};
    stone.roof = stone.accent;
    stone.pattern = Pattern::Bands;
    stone.period_v_m = 2.5f;
    stone.fill = 0.2f;
    obelisk.material = add_material(w, stone);
    w.buildings.push_back(obelisk);
  }
  add_buildings(w, lay, rng, hue0 + 0.07f, 20);

  // 5-6. City ring and trees.
  add_city_ring(w, rng);
  add_trees(w, lay, rng);

  // 7. Primitives, grid, ground colors (with the field's lines and the plaza's stone rim).
  build_primitives(w);
  g.color.resize(g.kind.size());
  for (int j = 0; j < g.ny; ++j) {
    for (int i = 0; i < g.nx; ++i) {
      const size_t k = static_cast<size_t>(j) * g.nx + i;
      const float x = lay.cx(i), y = lay.cy(j);
      g.color[k] = ground_albedo(g.kind[k], x, y, noise_seed);
      if (g.kind[k] == Ground::Plaza && std::hypot(x - xm, y - ym) > plaza_r - 1.5f)
        g.color[k] = {0.78f, 0.76f, 0.70f};
      if (g.kind[k] == Ground::Field) {
        const float c = std::cos(field.yaw_rad), s = std::sin(field.yaw_rad);
        const float lx = c * (x - field.east_m) + s * (y - field.north_m);
        const float ly = -s * (x - field.east_m) + c * (y - field.north_m);
        const bool line = std::abs(lx) > field.half_length_m - 0.6f || std::abs(ly) > field.half_width_m - 0.6f ||
                          std::abs(lx) < 0.3f || std::abs(std::hypot(lx, ly) - 7) < 0.3f;
        if (line) g.color[k] = {0.92f, 0.92f, 0.9f};
      }
    }
  }
  detail::light_ground(w);
  return w;
}

bool is_walkable(const World& w, double east_m, double north_m, double clearance_m) {
  if (std::abs(east_m) > w.half_extent_m || std::abs(north_m) > w.half_extent_m) return false;
  const GroundMap& g = w.ground;
  const int i = static_cast<int>(std::floor((east_m - g.x0) / g.cell_m));
  const int j = static_cast<int>(std::floor((north_m - g.y0) / g.cell_m));
  if (i >= 0 && j >= 0 && i < g.nx && j < g.ny && g.kind[static_cast<size_t>(j) * g.nx + i] == Ground::Water)
    return false;
  for (const Building& b : w.buildings)
    if (in_footprint(b, east_m, north_m, clearance_m)) return false;
  for (const Tree& t : w.trees)
    if (std::hypot(t.east_m - east_m, t.north_m - north_m) < t.canopy_radius_m + 0.3) return false;
  return true;
}

std::vector<ViewSample> sample_views(const World& w, int count, uint64_t seed, const SampleOptions& o) {
  engine::check(count >= 0, "sample_views: count must be >= 0, got ", count);
  engine::check(o.height_min_m > 0 && o.height_max_m >= o.height_min_m,
                "sample_views: eye heights must satisfy 0 < min <= max, got [", o.height_min_m, ", ",
                o.height_max_m, "]");
  engine::check(o.pitch_max_deg >= 0 && o.pitch_max_deg < 80,
                "sample_views: pitch_max_deg must be in [0, 80), got ", o.pitch_max_deg);
  engine::check(o.hfov_deg > 1 && o.hfov_deg < 179, "sample_views: hfov_deg must be in (1, 179), got ",
                o.hfov_deg);
  engine::check(o.clearance_m >= 0 && o.edge_margin_m >= 0 && o.edge_margin_m < w.half_extent_m,
                "sample_views: clearance_m must be >= 0 and edge_margin_m in [0, ", w.half_extent_m,
                "), got ", o.clearance_m, " and ", o.edge_margin_m);
  // Mix the world's seed in, so the same sampling seed on two worlds gives unrelated poses.
  Rng rng(seed ^ (w.seed * 0xD1B54A32D192ED03ull));
  const double lim = w.half_extent_m - o.edge_margin_m;
  std::vector<ViewSample> out;
  out.reserve(count);
  const long max_attempts = 1000L * count + 1000;
  for (long attempt = 0; static_cast<int>(out.size()) < count; ++attempt) {
    engine::check(attempt < max_attempts, "sample_views: found only ", out.size(), " walkable spots in ",
                  max_attempts, " tries; lower clearance_m (", o.clearance_m, ") or edge_margin_m (",
                  o.edge_margin_m, ")");
    const double e = rng.uniform(-lim, lim), n = rng.uniform(-lim, lim);
    if (!is_walkable(w, e, n, o.clearance_m)) continue;
    ViewSample s;
    s.pose.east_m = e;
    s.pose.north_m = n;
    s.pose.heading_deg = rng.uniform(0, 360);
    s.pose.pitch_deg = rng.uniform(-o.pitch_max_deg, o.pitch_max_deg);
    s.pose.height_m = rng.uniform(o.height_min_m, o.height_max_m);
    s.pose.hfov_deg = o.hfov_deg;
    const GeoPoint ll = local_to_geo(w.geo, e, n);
    s.latitude_deg = ll.lat_deg;
    s.longitude_deg = ll.lon_deg;
    out.push_back(s);
  }
  return out;
}

}  // namespace i2g
