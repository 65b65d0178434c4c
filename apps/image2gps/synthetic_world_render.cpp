// apps/image2gps/synthetic_world_render.cpp — the ray caster that draws the synthetic campus.
//
// One ray per pixel (or s x s with supersampling) from the eye through a pinhole camera:
//   1. clip the ray to the ground (z = 0), to the top of the tallest solid and to the grid;
//   2. walk the 2D grid of 8 m cells along the ray's east/north footprint (a DDA, Amanatides &
//      Woo 1987), testing the primitives listed in each cell: rotated boxes by the slab test in
//      the box's own frame, vertical cylinders and spheres by their quadratics; stop as soon as
//      the nearest hit lies before the cell's exit;
//   3. shade the hit: facade pattern (faded to its average color where a pixel covers more than
//      half a period, so distant windows do not alias into noise), sky light plus Lambert sun;
//      the ground reads its pre-lit color (shadows baked by light_ground); rays that escape see
//      a sky gradient with the sun and an azimuth-dependent line of distant hills;
//   4. blend toward the haze color with distance (exponential fog), which also makes far objects
//      look far, as in a photo.
// Cost: a 224 x 224 view is ~50k rays of ~10-40 cell visits each, a few ms per core.
#include <algorithm>
#include <cmath>
#include <limits>

#include "apps/image2gps/synthetic_world.h"
#include "apps/image2gps/synthetic_world_detail.h"
#include "engine/error.h"

namespace i2g {
namespace {

using detail::mix;
using detail::scale;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kTMin = 1e-3f;     // ignore hits closer than 1 mm (shadow rays leave a surface)
constexpr float kFar = 3000.f;     // ground beyond this is lost in the haze anyway
constexpr float kFogM = 380.f;     // fog e-folding distance
constexpr Rgb kHaze = {0.78f, 0.83f, 0.88f};

struct Ray {
  float o[3];  // origin
  float d[3];  // unit direction
};

struct Hit {
  float t = kInf;
  float n[3] = {0, 0, 1};  // outward unit normal
  float u = 0;             // box facade: meters along the face from its edge
  float face_len = 0;      // box facade: the face's width
  bool top = false;        // box: hit the roof
  int prim = -1;
};

bool hit_box(const Primitive& p, const Ray& r, Hit& h) {
  // Into the box frame: rotate the east/north offset by -yaw; z is unchanged.
  const float px = r.o[0] - p.cx, py = r.o[1] - p.cy;
  const float lo[3] = {p.cos_yaw * px + p.sin_yaw * py, -p.sin_yaw * px + p.cos_yaw * py, r.o[2] - p.z0};
  const float ld[3] = {p.cos_yaw * r.d[0] + p.sin_yaw * r.d[1], -p.sin_yaw * r.d[0] + p.cos_yaw * r.d[1], r.d[2]};
  const float ext_lo[3] = {-p.a, -p.b, 0}, ext_hi[3] = {p.a, p.b, p.h};
  float tn = -kInf, tf = kInf;
  int axis = -1;
  for (int k = 0; k < 3; ++k) {
    if (std::abs(ld[k]) < 1e-12f) {
      if (lo[k] < ext_lo[k] || lo[k] > ext_hi[k]) return false;
      continue;
    }
    const float inv = 1 / ld[k];
    float t0 = (ext_lo[k] - lo[k]) * inv, t1 = (ext_hi[k] - lo[k]) * inv;
    if (t0 > t1) std::swap(t0, t1);
    if (t0 > tn) tn = t0, axis = k;
    tf = std::min(tf, t1);
  }
  // Entering behind the eye means the eye is inside (or the box is behind): no visible face.
  if (axis < 0 || tn > tf || tn < kTMin || tn >= h.t) return false;
  const float sgn = ld[axis] > 0 ? -1.f : 1.f;  // the entry face looks back along the ray
  h.t = tn;
  h.top = false;
  if (axis == 2) {
    h.n[0] = 0, h.n[1] = 0, h.n[2] = sgn;
    h.top = sgn > 0;
    h.u = 0, h.face_len = 1;
  } else if (axis == 0) {  // face normal = +-local x = +-(cos, sin)
    h.n[0] = sgn * p.cos_yaw, h.n[1] = sgn * p.sin_yaw, h.n[2] = 0;
    h.u = lo[1] + ld[1] * tn + p.b, h.face_len = 2 * p.b;
  } else {  // face normal = +-local y = +-(-sin, cos)
    h.n[0] = -sgn * p.sin_yaw, h.n[1] = sgn * p.cos_yaw, h.n[2] = 0;
    h.u = lo[0] + ld[0] * tn + p.a, h.face_len = 2 * p.a;
  }
  return true;
}

bool hit_cylinder(const Primitive& p, const Ray& r, Hit& h) {
  const float ox = r.o[0] - p.cx, oy = r.o[1] - p.cy, oz = r.o[2] - p.z0;
  bool found = false;
  const float a = r.d[0] * r.d[0] + r.d[1] * r.d[1];
  if (a > 1e-12f) {  // the side: |o + t d|^2 = radius^2 in east/north
    const float b = ox * r.d[0] + oy * r.d[1], c = ox * ox + oy * oy - p.a * p.a;
    const float disc = b * b - a * c;
    if (disc >= 0) {
      const float t = (-b - std::sqrt(disc)) / a;
      const float z = oz + t * r.d[2];
      if (t > kTMin && t < h.t && z >= 0 && z <= p.h) {
        h.t = t;
        h.n[0] = (ox + t * r.d[0]) / p.a, h.n[1] = (oy + t * r.d[1]) / p.a, h.n[2] = 0;
        found = true;
      }
    }
  }
  if (r.d[2] < 0) {  // the top disc
    const float t = (p.h - oz) / r.d[2];
    const float x = ox + t * r.d[0], y = oy + t * r.d[1];
    if (t > kTMin && t < h.t && x * x + y * y <= p.a * p.a) {
      h.t = t;
      h.n[0] = 0, h.n[1] = 0, h.n[2] = 1;
      found = true;
    }
  }
  if (found) h.top = false, h.u = 0, h.face_len = 1;
  return found;
}

bool hit_sphere(const Primitive& p, const Ray& r, Hit& h) {
  const float ox = r.o[0] - p.cx, oy = r.o[1] - p.cy, oz = r.o[2] - p.z0;
  const float b = ox * r.d[0] + oy * r.d[1] + oz * r.d[2];
  const float c = ox * ox + oy * oy + oz * oz - p.a * p.a;
  const float disc = b * b - c;
  if (disc < 0) return false;
  const float t = -b - std::sqrt(disc);
  if (t <= kTMin || t >= h.t) return false;
  h.t = t;
  const float inv = 1 / p.a;
  h.n[0] = (ox + t * r.d[0]) * inv, h.n[1] = (oy + t * r.d[1]) * inv, h.n[2] = (oz + t * r.d[2]) * inv;
  h.top = false, h.u = 0, h.face_len = 1;
  return true;
}

// Nearest hit with t in (kTMin, t_max); any = true stops at the first hit found (shadow rays).
bool cast(const World& w, const Ray& r, float t_max, bool any, Hit& hit) {
  const PrimitiveGrid& g = w.grid;
  hit.t = t_max;
  hit.prim = -1;
  float t_enter = 0, t_exit = t_max;
  if (r.d[2] > 0) t_exit = std::min(t_exit, (w.max_height_m - r.o[2]) / r.d[2]);
  if (r.o[2] > w.max_height_m && r.d[2] >= 0) return false;
  const float lo[2] = {g.x0, g.y0};
  const float hi[2] = {g.x0 + g.nx * g.cell_m, g.y0 + g.ny * g.cell_m};
  for (int k = 0; k < 2; ++k) {  // clip to the grid's rectangle
    if (std::abs(r.d[k]) < 1e-9f) {
      if (r.o[k] < lo[k] || r.o[k] > hi[k]) return false;
      continue;
    }
    float t0 = (lo[k] - r.o[k]) / r.d[k], t1 = (hi[k] - r.o[k]) / r.d[k];
    if (t0 > t1) std::swap(t0, t1);
    t_enter = std::max(t_enter, t0);
    t_exit = std::min(t_exit, t1);
  }
  if (t_enter >= t_exit) return false;

  // DDA set-up: the current cell, the t at which the ray crosses the next x and y cell walls,
  // and the t it takes to cross one whole cell in x and in y.
  const float sx = r.o[0] + r.d[0] * t_enter, sy = r.o[1] + r.d[1] * t_enter;
  int ix = std::clamp(static_cast<int>((sx - g.x0) / g.cell_m), 0, g.nx - 1);
  int iy = std::clamp(static_cast<int>((sy - g.y0) / g.cell_m), 0, g.ny - 1);
  const int step_x = r.d[0] > 0 ? 1 : -1, step_y = r.d[1] > 0 ? 1 : -1;
  const bool move_x = std::abs(r.d[0]) >= 1e-9f, move_y = std::abs(r.d[1]) >= 1e-9f;
  const float delta_x = move_x ? g.cell_m / std::abs(r.d[0]) : kInf;
  const float delta_y = move_y ? g.cell_m / std::abs(r.d[1]) : kInf;
  float next_x = move_x ? (g.x0 + (ix + (step_x > 0)) * g.cell_m - r.o[0]) / r.d[0] : kInf;
  float next_y = move_y ? (g.y0 + (iy + (step_y > 0)) * g.cell_m - r.o[1]) / r.d[1] : kInf;

  for (;;) {
    const size_t c = static_cast<size_t>(iy) * g.nx + ix;
    for (uint32_t k = g.start[c]; k < g.start[c + 1]; ++k) {
      const uint32_t idx = g.items[k];
      const Primitive& p = w.prims[idx];
      bool got = false;
      switch (p.shape) {
        case Primitive::Shape::Box: got = hit_box(p, r, hit); break;
        case Primitive::Shape::Cylinder: got = hit_cylinder(p, r, hit); break;
        case Primitive::Shape::Sphere: got = hit_sphere(p, r, hit); break;
      }
      if (got) {
        hit.prim = static_cast<int>(idx);
        if (any) return true;
      }
    }
    const float cell_exit = std::min(next_x, next_y);
    // A hit before this cell's exit cannot be beaten by anything in later cells.
    if (hit.prim >= 0 && hit.t <= cell_exit) return true;
    if (cell_exit >= t_exit) break;
    if (next_x < next_y) {
      ix += step_x, next_x += delta_x;
      if (ix < 0 || ix >= g.nx) break;
    } else {
      iy += step_y, next_y += delta_y;
      if (iy < 0 || iy >= g.ny) break;
    }
  }
  return hit.prim >= 0;
}

float frac(float x) { return x - std::floor(x); }

// The facade's color at (u along the face, v up), for a pixel covering `footprint` meters.
Rgb facade(const Material& m, float u, float v, float face_len, float height, float footprint) {
  // A whole number of columns per face keeps the pattern centered on every face.
  const float cols = std::max(1.f, std::round(face_len / m.period_u_m));
  const float pu = face_len / cols, pv = m.period_v_m;
  const float fu = frac(u / pu), fv = frac(v / pv);
  bool accent = false;
  float cover = 0;  // the accent's share of the area, for the far-away average
  switch (m.pattern) {
    case Pattern::Windows:
      accent = std::abs(fu - 0.5f) < 0.5f * m.fill && std::abs(fv - 0.55f) < 0.3f;
      cover = m.fill * 0.6f;
      break;
    case Pattern::Bands: accent = fv < m.fill, cover = m.fill; break;
    case Pattern::Fins: accent = fu < m.fill, cover = m.fill; break;
    case Pattern::Checker:
      accent = (static_cast<int>(std::floor(u / pu)) + static_cast<int>(std::floor(v / pv))) & 1;
      cover = 0.5f;
      break;
    case Pattern::Plain:
    case Pattern::Foliage: break;
  }
  // >= 4 pixels per period: the sharp pattern; <= 2: its average; a ramp between.
  const float sharpness = std::clamp((std::min(pu, pv) / footprint - 2) * 0.5f, 0.f, 1.f);
  Rgb c = mix(mix(m.base, m.accent, cover), accent ? m.accent : m.base, sharpness);
  if (v < 3.2f) c = scale(c, 0.75f);                                       // darker ground floor
  if (v > height - 1.0f && m.pattern != Pattern::Bands) c = scale(m.base, 0.7f);  // cornice
  return c;
}

Rgb foliage(const Material& m, const float p[3], uint32_t seed, float footprint) {
  const float n = detail::value_noise((p[0] + p[2]) / m.period_u_m, (p[1] - p[2]) / m.period_u_m, seed);
  const float sharpness = std::clamp((m.period_u_m / footprint - 2) * 0.5f, 0.f, 1.f);
  return mix(m.base, m.accent, 0.5f + (n - 0.5f) * sharpness);
}

Rgb ground_color(const World& w, float x, float y) {
  const GroundMap& g = w.ground;
  const float fx = (x - g.x0) / g.cell_m - 0.5f, fy = (y - g.y0) / g.cell_m - 0.5f;
  if (fx < 0 || fy < 0 || fx > g.nx - 1 || fy > g.ny - 1) {
    const Rgb a = detail::outside_albedo(x, y, static_cast<uint32_t>(w.seed ^ (w.seed >> 32)));
    return scale(a, detail::light(w, 0, 0, 1, 1));
  }
  const int i = std::min(static_cast<int>(fx), g.nx - 2), j = std::min(static_cast<int>(fy), g.ny - 2);
  const float ax = fx - i, ay = fy - j;  // bilinear between the four cell centers around (x, y)
  const size_t k = static_cast<size_t>(j) * g.nx + i;
  const Rgb c0 = mix(g.color[k], g.color[k + 1], ax);
  const Rgb c1 = mix(g.color[k + g.nx], g.color[k + g.nx + 1], ax);
  return mix(c0, c1, ay);
}

Rgb sky(const World& w, const float d[3]) {
  const float elev = std::asin(std::clamp(d[2], -1.f, 1.f));
  const float az = std::atan2(d[0], d[1]);  // compass azimuth
  // Distant hills: integer frequencies keep the profile continuous around the horizon.
  static constexpr float kFreq[5] = {2, 3, 5, 7, 11};
  float hill = 0.035f;
  for (int k = 0; k < 5; ++k) hill += w.hill_amp[k] * std::sin(kFreq[k] * az + w.hill_phase[k]);
  if (elev < hill) {
    const Rgb far_hill = mix({0.36f, 0.46f, 0.50f}, {0.46f, 0.44f, 0.54f}, 0.5f + 0.5f * std::sin(3 * az));
    return mix(far_hill, kHaze, 0.35f * std::clamp(1 - elev / std::max(hill, 1e-3f), 0.f, 1.f));
  }
  const float up = std::sqrt(std::clamp(elev / 1.5708f, 0.f, 1.f));
  Rgb c = mix(kHaze, {0.30f, 0.50f, 0.85f}, up);
  const float cs = d[0] * w.sun[0] + d[1] * w.sun[1] + d[2] * w.sun[2];
  if (cs > 0) {
    const float glow = 0.35f * std::pow(cs, 64.f) + (cs > 0.9995f ? 0.8f : 0.f);
    c = {c.r + glow, c.g + glow * 0.95f, c.b + glow * 0.8f};
  }
  return c;
}

Rgb ray_color(const World& w, const Ray& r, float footprint_per_m) {
  const float t_ground = r.d[2] < -1e-6f ? -r.o[2] / r.d[2] : kInf;
  Hit hit;
  Rgb c;
  float t;
  if (cast(w, r, std::min(t_ground, kFar), false, hit)) {
    const Primitive& p = w.prims[hit.prim];
    const Material& m = w.materials[p.material];
    const float pt[3] = {r.o[0] + r.d[0] * hit.t, r.o[1] + r.d[1] * hit.t, r.o[2] + r.d[2] * hit.t};
    const float footprint = footprint_per_m * hit.t;
    Rgb albedo = m.base;
    if (p.shape == Primitive::Shape::Box) {
      albedo = hit.top ? m.roof : facade(m, hit.u, pt[2] - p.z0, hit.face_len, p.h, footprint);
    } else if (m.pattern == Pattern::Foliage) {
      albedo = foliage(m, pt, static_cast<uint32_t>(hit.prim), footprint);
    }
    c = scale(albedo, detail::light(w, hit.n[0], hit.n[1], hit.n[2], 1));
    t = hit.t;
  } else if (t_ground < kFar) {
    c = ground_color(w, r.o[0] + r.d[0] * t_ground, r.o[1] + r.d[1] * t_ground);
    t = t_ground;
  } else {
    return sky(w, r.d);
  }
  return mix(c, kHaze, 1 - std::exp(-t / kFogM));
}

uint8_t to_byte(float v) { return static_cast<uint8_t>(std::clamp(v, 0.f, 1.f) * 255.f + 0.5f); }

}  // namespace

namespace detail {

void light_ground(World& w) {
  GroundMap& g = w.ground;
#pragma omp parallel for schedule(static)
  for (int j = 0; j < g.ny; ++j) {
    for (int i = 0; i < g.nx; ++i) {
      const Ray r{{g.x0 + (i + 0.5f) * g.cell_m, g.y0 + (j + 0.5f) * g.cell_m, 0.02f},
                  {w.sun[0], w.sun[1], w.sun[2]}};
      Hit hit;
      const float sunlit = cast(w, r, kFar, true, hit) ? 0.f : 1.f;
      Rgb& c = g.color[static_cast<size_t>(j) * g.nx + i];
      c = scale(c, light(w, 0, 0, 1, sunlit));
    }
  }
}

}  // namespace detail

RgbImage render_view(const World& w, const CameraPose& pose, int width, int height, int supersample) {
  engine::check(width >= 1 && width <= 4096 && height >= 1 && height <= 4096,
                "render_view: image size must be in [1, 4096] x [1, 4096], got ", width, "x", height);
  engine::check(pose.hfov_deg > 1 && pose.hfov_deg < 179, "render_view: hfov_deg must be in (1, 179), got ",
                pose.hfov_deg);
  engine::check(supersample >= 1 && supersample <= 4, "render_view: supersample must be in [1, 4], got ",
                supersample);
  engine::check(std::isfinite(pose.east_m) && std::isfinite(pose.north_m) && std::isfinite(pose.height_m) &&
                    std::isfinite(pose.heading_deg) && std::isfinite(pose.pitch_deg) &&
                    std::abs(pose.pitch_deg) < 89,
                "render_view: the pose must be finite with |pitch_deg| < 89, got pitch ", pose.pitch_deg);
  engine::check(w.grid.nx > 0 && !w.ground.color.empty(), "render_view: the world is empty; build it with make_world");

  // Camera basis: forward from heading (clockwise from north) and pitch, right stays level.
  const double hd = pose.heading_deg * detail::kDeg, pt = pose.pitch_deg * detail::kDeg;
  const float fwd[3] = {static_cast<float>(std::sin(hd) * std::cos(pt)),
                        static_cast<float>(std::cos(hd) * std::cos(pt)), static_cast<float>(std::sin(pt))};
  const float right[3] = {static_cast<float>(std::cos(hd)), static_cast<float>(-std::sin(hd)), 0};
  const float up[3] = {right[1] * fwd[2], -right[0] * fwd[2], right[0] * fwd[1] - right[1] * fwd[0]};
  const float tan_h = static_cast<float>(std::tan(pose.hfov_deg * detail::kDeg / 2));
  const float tan_v = tan_h * height / width;
  const float footprint_per_m = 2 * tan_h / (width * supersample);  // pixel size at 1 m
  const float eye[3] = {static_cast<float>(pose.east_m), static_cast<float>(pose.north_m),
                        static_cast<float>(std::max(pose.height_m, 0.01))};
  const float inv_n = 1.f / (supersample * supersample);

  RgbImage img;
  img.width = width;
  img.height = height;
  img.pixels.resize(static_cast<size_t>(width) * height * 3);
#pragma omp parallel for schedule(dynamic, 4)
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      Rgb acc;
      for (int sy = 0; sy < supersample; ++sy) {
        for (int sx = 0; sx < supersample; ++sx) {
          const float px = ((x + (sx + 0.5f) / supersample) / width * 2 - 1) * tan_h;
          const float py = (1 - (y + (sy + 0.5f) / supersample) / height * 2) * tan_v;
          Ray r{{eye[0], eye[1], eye[2]}, {}};
          float len2 = 0;
          for (int k = 0; k < 3; ++k) {
            r.d[k] = fwd[k] + px * right[k] + py * up[k];
            len2 += r.d[k] * r.d[k];
          }
          const float inv = 1 / std::sqrt(len2);
          for (float& v : r.d) v *= inv;
          const Rgb c = ray_color(w, r, footprint_per_m);
          acc = {acc.r + c.r, acc.g + c.g, acc.b + c.b};
        }
      }
      uint8_t* out = &img.pixels[(static_cast<size_t>(y) * width + x) * 3];
      out[0] = to_byte(acc.r * inv_n), out[1] = to_byte(acc.g * inv_n), out[2] = to_byte(acc.b * inv_n);
    }
  }
  return img;
}

}  // namespace i2g
