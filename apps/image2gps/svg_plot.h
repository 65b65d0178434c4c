// apps/image2gps/svg_plot.h — small dependency-free SVG charts for datasets and training runs.
//
// Three charts: a scatter of labelled series (e.g. train/val/test positions), predicted vs true
// positions joined by error lines, and line curves (loss or a metric per epoch). Each point is
// one <circle class="pt"> so a test (or a reader of the file) can count them; non-finite points
// are left out. Files are written atomically.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "apps/image2gps/geodesic.h"

namespace i2g {

struct PlotSeries {
  std::string label;
  std::vector<double> x, y;  // equal lengths
  std::string color;         // any SVG colour; "" picks the next colour of a fixed palette
};

struct PlotOptions {
  std::string title, x_label, y_label;
  int width = 800, height = 600;  // pixels, at least 200 x 150
  // x = longitude, y = latitude: scale the axes so that a metre is as long east-west as
  // north-south (the map is not stretched).
  bool geographic = false;
};

// One dot per point, a colour per series, with a legend.
void write_scatter_svg(const std::string& path, const std::vector<PlotSeries>& series,
                       const PlotOptions& options);

// True positions and predictions (same length) as two dot colours, each pair joined by a line
// whose length is the error. Always geographic (x = longitude, y = latitude).
void write_prediction_svg(const std::string& path, std::span<const LatLon> truth,
                          std::span<const LatLon> pred, const PlotOptions& options);

// A polyline per series (x ascending, e.g. epochs) with a dot at every point.
void write_curves_svg(const std::string& path, const std::vector<PlotSeries>& series,
                      const PlotOptions& options);

}  // namespace i2g
