// apps/image2gps/split.cpp — see split.h.
#include "apps/image2gps/split.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <regex>

#include "engine/error.h"

namespace i2g {

namespace {

constexpr double kEarthRadiusM = 6371008.8;  // mean radius: cells only need to be roughly square
constexpr double kPi = 3.14159265358979323846;

// Uniform integer in [0, n) by rejection, so the split is the same with every standard library
// (std::uniform_int_distribution's algorithm is implementation-defined).
uint64_t below(std::mt19937_64& rng, uint64_t n) {
  const uint64_t limit = std::numeric_limits<uint64_t>::max() -
                         std::numeric_limits<uint64_t>::max() % n;
  uint64_t r;
  do {
    r = rng();
  } while (r >= limit);
  return r % n;
}

std::string grid_key(double lat, double lon, double meters) {
  const double y = lat * kPi / 180.0 * kEarthRadiusM;
  const auto row = static_cast<long long>(std::floor(y / meters));
  // East-west metres per degree shrink with cos(latitude); use the row's centre latitude so
  // the cell of a record depends on that record alone.
  const double lat_c = (row + 0.5) * meters / kEarthRadiusM;
  const double x = lon * kPi / 180.0 * kEarthRadiusM * std::cos(lat_c);
  const auto col = static_cast<long long>(std::floor(x / meters));
  return engine::cat(row, ",", col);
}

std::string base_name(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void check_options(const SplitOptions& o) {
  const double f[3] = {o.train, o.val, o.test};
  for (double v : f)
    engine::check(std::isfinite(v) && v >= 0.0 && v <= 1.0, "split: fractions train=", o.train,
                  " val=", o.val, " test=", o.test, " must each be in [0, 1]");
  engine::check(std::fabs(o.train + o.val + o.test - 1.0) < 1e-6, "split: fractions train=",
                o.train, " val=", o.val, " test=", o.test, " must sum to 1");
  if (o.mode == SplitMode::Grid)
    engine::check(std::isfinite(o.grid_meters) && o.grid_meters > 0.0,
                  "split: grid cell size ", o.grid_meters, " m must be positive");
}

}  // namespace

SplitMode parse_split_mode(const std::string& name) {
  std::string s = name;
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s == "random") return SplitMode::Random;
  if (s == "grid") return SplitMode::Grid;
  if (s == "pattern") return SplitMode::Pattern;
  engine::fail("unknown split mode '", name, "' (expected random, grid or pattern)");
}

const char* to_string(SplitMode mode) {
  switch (mode) {
    case SplitMode::Random: return "random";
    case SplitMode::Grid: return "grid";
    case SplitMode::Pattern: return "pattern";
  }
  return "?";
}

std::vector<std::string> split_group_keys(const std::vector<GeoRecord>& records,
                                          const SplitOptions& options) {
  check_options(options);
  std::vector<std::string> keys;
  keys.reserve(records.size());
  if (options.mode == SplitMode::Random) {
    for (const GeoRecord& r : records) keys.push_back(r.image_file);
  } else if (options.mode == SplitMode::Grid) {
    for (const GeoRecord& r : records) keys.push_back(grid_key(r.lat, r.lon, options.grid_meters));
  } else {
    std::regex re;
    try {
      re = std::regex(options.pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      engine::fail("split: invalid pattern '", options.pattern, "': ", e.what());
    }
    engine::check(re.mark_count() >= 1, "split: pattern '", options.pattern,
                  "' has no capture group; wrap the part naming the source photo in (...)");
    for (const GeoRecord& r : records) {
      const std::string name = base_name(r.image_file);
      std::smatch m;
      if (!std::regex_search(name, m, re))
        engine::fail("split: file name '", name, "' does not match the pattern '",
                     options.pattern, "'");
      keys.push_back(m[1].str());
    }
  }
  return keys;
}

SplitIndices split_indices(const std::vector<GeoRecord>& records, const SplitOptions& options) {
  const std::vector<std::string> keys = split_group_keys(records, options);
  std::map<std::string, std::vector<size_t>> by_key;  // sorted keys: order-independent result
  for (size_t i = 0; i < records.size(); ++i) by_key[keys[i]].push_back(i);
  std::vector<const std::vector<size_t>*> groups;
  groups.reserve(by_key.size());
  for (const auto& kv : by_key) groups.push_back(&kv.second);

  std::mt19937_64 rng(options.seed);
  for (size_t i = groups.size(); i > 1; --i) std::swap(groups[i - 1], groups[below(rng, i)]);

  // Each group goes to the split that is furthest below its target record count; splits with
  // a zero fraction never get any. With groups of one this hits the targets exactly.
  const double n = static_cast<double>(records.size());
  const double frac[3] = {options.train, options.val, options.test};
  long long target[3];
  target[1] = std::llround(options.val * n);
  target[2] = std::llround(options.test * n);
  target[0] = static_cast<long long>(records.size()) - target[1] - target[2];
  long long count[3] = {0, 0, 0};
  SplitIndices out;
  std::vector<size_t>* lists[3] = {&out.train, &out.val, &out.test};
  for (const std::vector<size_t>* g : groups) {
    int best = -1;
    for (int s = 0; s < 3; ++s) {
      if (frac[s] <= 0.0) continue;
      if (best < 0 || target[s] - count[s] > target[best] - count[best]) best = s;
    }
    count[best] += static_cast<long long>(g->size());
    lists[best]->insert(lists[best]->end(), g->begin(), g->end());
  }
  for (auto* l : lists) std::sort(l->begin(), l->end());
  return out;
}

SplitRecords split_records(const std::vector<GeoRecord>& records, const SplitOptions& options) {
  const SplitIndices idx = split_indices(records, options);
  SplitRecords out;
  for (size_t i : idx.train) out.train.push_back(records[i]);
  for (size_t i : idx.val) out.val.push_back(records[i]);
  for (size_t i : idx.test) out.test.push_back(records[i]);
  return out;
}

}  // namespace i2g
