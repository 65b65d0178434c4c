// apps/image2gps/coords.h — coordinate normalisation for regression targets.
//
// The model regresses (lat, lon) standardised with the TRAINING split's mean and standard
// deviation (the course's recipe), so both outputs are O(1) whatever the campus. The stats
// travel with every checkpoint and bundle, since predictions are meaningless without them.
#pragma once

#include <array>
#include <map>
#include <string>
#include <vector>

#include "apps/image2gps/metadata.h"

namespace i2g {

struct CoordNorm {
  double mean_lat = 0, mean_lon = 0;
  double std_lat = 1, std_lon = 1;

  // Mean and population std of the records' coordinates (a zero std becomes 1, so a
  // one-location dataset still trains without dividing by zero).
  static CoordNorm fit(const std::vector<GeoRecord>& records);
  std::array<float, 2> normalize(double lat, double lon) const;
  std::array<double, 2> denormalize(float y_lat, float y_lon) const;

  std::map<std::string, std::string> to_metadata() const;  // for checkpoint/bundle headers
  static CoordNorm from_metadata(const std::map<std::string, std::string>& m,
                                 const std::string& source);
};

}  // namespace i2g
