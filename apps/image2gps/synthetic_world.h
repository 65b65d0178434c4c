// apps/image2gps/synthetic_world.h — a procedural, geotagged campus for `image2gps demo`.
//
// No photos ship with the project and the demo has no network, so it renders its own world:
// a 300 m x 300 m campus (buildings with per-building facade colors and patterns, a few tall
// landmark towers, trees, paths, a plaza, a sports field, a pond) around a real latitude and
// longitude, ringed by a muted "city" and distant hills. A small ray caster renders what a
// person standing at (east, north) looking along a compass heading would see; sample_views
// draws random walkable poses with their WGS84 latitude/longitude, so the demo can train a
// network to read location off an image exactly as it does with real photos.
//
// Frame: x = east, y = north, z = up, in meters, origin at (origin_lat, origin_lon) on the ground.
// Everything is deterministic from the world seed (our own splitmix64 generator, not the
// standard library's distributions, whose output differs between implementations).
// Code: synthetic_world.cpp (geotags, layout, sampling), synthetic_world_render.cpp (the ray
// caster), synthetic_world_detail.h (helpers the two share).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace i2g {

// An 8-bit RGB image, rows top to bottom, pixels left to right, channels interleaved:
// pixels[(y * width + x) * 3 + c]. The lead's image_io writes these to PNG.
struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // size width * height * 3

  uint8_t at(int x, int y, int c) const { return pixels[(static_cast<size_t>(y) * width + x) * 3 + c]; }
};

// Where the camera stands and where it looks.
struct CameraPose {
  double east_m = 0;       // offset from the world origin, meters
  double north_m = 0;
  double height_m = 1.6;   // eye height above the ground
  double heading_deg = 0;  // compass heading: 0 = north, 90 = east (clockwise seen from above)
  double pitch_deg = 0;    // positive looks up
  double hfov_deg = 60;    // horizontal field of view; the vertical one follows the aspect ratio
};

// Local east/north <-> WGS84 latitude/longitude around an origin, using the ellipsoid's radii of
// curvature at the origin latitude (meridional M and prime-vertical N). Over the campus
// (a few hundred meters) this agrees with GeographicLib::LocalCartesian to millimeters.
struct GeoFrame {
  double origin_lat_deg = 0;
  double origin_lon_deg = 0;
  double m_per_deg_lat = 0;  // M * pi / 180
  double m_per_deg_lon = 0;  // N * cos(lat) * pi / 180
};
struct GeoPoint {  // (i2g::LatLon in geodesic.h is the metrics' type; this is the world's)
  double lat_deg = 0;
  double lon_deg = 0;
};
struct EastNorth {
  double east_m = 0;
  double north_m = 0;
};
GeoFrame make_geo_frame(double origin_lat_deg, double origin_lon_deg);  // throws on bad input
GeoPoint local_to_geo(const GeoFrame& frame, double east_m, double north_m);
EastNorth geo_to_local(const GeoFrame& frame, double lat_deg, double lon_deg);

// ---- the world's description (what tests and the demo may inspect) --------------------

struct Rgb {
  float r = 0, g = 0, b = 0;
};

// How a surface is painted; u runs along a facade (meters), v is height above its base.
enum class Pattern : uint8_t {
  Plain,
  Windows,      // a grid of glass panes (accent) on the base color
  Bands,        // horizontal bands of accent, `fill` of each period
  Fins,         // vertical fins of accent
  Checker,      // alternating cells of base and accent
  Foliage,      // base color with leafy noise (tree canopies)
};

struct Material {
  Rgb base;
  Rgb accent;
  Rgb roof;
  Pattern pattern = Pattern::Plain;
  float period_u_m = 3;  // pattern period along the facade
  float period_v_m = 3;  // pattern period in height
  float fill = 0.5f;     // fraction of a period covered by the accent
};

// A box standing on the ground, rotated about the vertical axis.
struct Building {
  float east_m = 0, north_m = 0;      // footprint center
  float half_length_m = 0;            // half extent along the box's local x axis
  float half_width_m = 0;             // half extent along its local y axis
  float yaw_rad = 0;                  // local x axis = (cos yaw, sin yaw) in (east, north)
  float height_m = 0;
  int material = 0;                   // index into World::materials
  bool tower = false;                 // a tall landmark
  bool on_campus = true;              // false for the surrounding city blocks
};

struct Tree {
  float east_m = 0, north_m = 0;
  float trunk_radius_m = 0.3f, trunk_height_m = 3;
  float canopy_radius_m = 2.5f;       // sphere centered above the trunk top
  int canopy_material = 0, trunk_material = 0;
};

// A straight paved walk.
struct Path {
  float x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  float half_width_m = 2;
};

// What covers the ground, per cell of the ground map.
enum class Ground : uint8_t { Grass, Path, Plaza, Field, Water };

// Rendering internals, built by make_world: every solid as one primitive, a uniform 2D grid
// over them (all solids stand on the ground, so a grid in east/north is enough), and a ground
// map with its colors, sunlight and baked shadows.
struct Primitive {
  enum class Shape : uint8_t { Box, Cylinder, Sphere };
  Shape shape = Shape::Box;
  float cx = 0, cy = 0;   // center in east/north
  float z0 = 0;           // box/cylinder: base height; sphere: center height
  float a = 0, b = 0;     // box: half extents along local x/y; cylinder/sphere: a = radius
  float h = 0;            // box/cylinder height
  float cos_yaw = 1, sin_yaw = 0;
  int material = 0;
};

struct PrimitiveGrid {
  float x0 = 0, y0 = 0, cell_m = 8;
  int nx = 0, ny = 0;
  std::vector<uint32_t> start;  // cell c's primitives are items[start[c] .. start[c+1])
  std::vector<uint32_t> items;
};

struct GroundMap {
  float x0 = 0, y0 = 0, cell_m = 1;
  int nx = 0, ny = 0;
  std::vector<Ground> kind;  // nx * ny, row = north index
  std::vector<Rgb> color;    // lit color, shadows included
};

struct World {
  uint64_t seed = 0;
  GeoFrame geo;
  float half_extent_m = 150;  // the campus is [-half, half]^2; samples stay inside it
  float sun[3] = {0, 0, 1};   // unit vector toward the sun
  float hill_amp[5] = {};     // distant skyline: elevation(az) = base + sum amp_k sin(f_k az + ph_k)
  float hill_phase[5] = {};

  std::vector<Material> materials;
  std::vector<Building> buildings;  // campus buildings and towers first, then the city ring
  std::vector<Tree> trees;
  std::vector<Path> paths;

  std::vector<Primitive> prims;
  PrimitiveGrid grid;
  GroundMap ground;
  float max_height_m = 0;  // no solid reaches above this
};

// Builds the world for `seed` around the given origin (defaults: Penn's campus, Philadelphia).
// Throws engine::Error when the origin is not a finite latitude in [-85, 85] and longitude in
// [-180, 180].
World make_world(uint64_t seed, double origin_lat_deg = 39.9515, double origin_lon_deg = -75.1915);

// True where a person may stand: inside the campus, on dry ground, at least clearance_m from
// every building and outside every tree's canopy.
bool is_walkable(const World& world, double east_m, double north_m, double clearance_m = 3.0);

// Renders the view from `pose`. supersample = s shoots s x s rays per pixel and averages them
// (1 = one ray, the default). Only front faces are drawn, so a camera placed inside a solid
// sees through it (sample_views never puts one there). Rows run top to bottom, so the
// horizon of a level camera is the middle row. Throws engine::Error on sizes outside [1, 4096], a field of view
// outside (1, 179) degrees, or supersample outside [1, 4].
RgbImage render_view(const World& world, const CameraPose& pose, int width, int height,
                     int supersample = 1);

// A random pose on walkable ground and its geotag.
struct ViewSample {
  CameraPose pose;
  double latitude_deg = 0;
  double longitude_deg = 0;
};

struct SampleOptions {
  double height_min_m = 1.5, height_max_m = 1.8;  // eye height, uniform
  double pitch_max_deg = 4;                       // pitch uniform in [-max, max]
  double hfov_deg = 60;
  double clearance_m = 3.0;                       // see is_walkable
  double edge_margin_m = 5.0;                     // keep this far inside the campus edge
};

// `count` poses, uniform over walkable campus ground with uniform headings, deterministic in
// (world, seed). Throws engine::Error for a negative count or when no walkable spot is found.
std::vector<ViewSample> sample_views(const World& world, int count, uint64_t seed,
                                     const SampleOptions& options = {});

}  // namespace i2g
