// tests/apps/svg_plot_test.cpp — the SVG charts are balanced XML with one dot per point.
#include "apps/image2gps/svg_plot.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "data_test_util.h"
#include "engine/error.h"
#include "svg_test_util.h"

namespace {

using namespace i2g_test;

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(SvgPlot, ScatterHasOneDotPerFinitePointAndEscapedLabels) {
  TempDir tmp;
  std::vector<i2g::PlotSeries> series = {
      {"train", {-75.1926, -75.1920, -75.1915, -75.1910, -75.1905, -75.1903, -75.1901},
       {39.9504, 39.9510, 39.9515, 39.9520, 39.9522, 39.9525, 39.9527}, ""},
      {"val <&> \"x\"", {-75.1911, -75.1912, NAN, -75.1914, -75.1915}, {39.9511, 39.9512, 39.95, 39.9514, 39.9515}, ""},
      {"test", {-75.1921, -75.1922, -75.1923}, {39.9521, 39.9522, 39.9523}, "purple"}};
  i2g::PlotOptions o;
  o.title = "labels";
  o.x_label = "longitude";
  o.y_label = "latitude";
  o.geographic = true;
  i2g::write_scatter_svg(tmp.file("s.svg"), series, o);
  const std::string svg = slurp(tmp.file("s.svg"));
  EXPECT_EQ(svg_balance_problem(svg), "");
  EXPECT_EQ(count_of(svg, "<circle class=\"pt\""), 7 + 4 + 3);  // the NaN point is left out
  EXPECT_EQ(count_of(svg, "fill=\"purple\""), 3 + 1);           // dots + legend swatch
  EXPECT_NE(svg.find("val &lt;&amp;&gt; &quot;x&quot;"), std::string::npos);
  EXPECT_EQ(svg.find("val <&>"), std::string::npos);
  EXPECT_NE(svg.find(">longitude<"), std::string::npos);
  EXPECT_NE(svg.find("-75.19"), std::string::npos);  // tick labels with enough decimals
  EXPECT_GE(count_of(svg, "text-anchor=\"middle\">-75.19"), 2);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);

  series[0].y.pop_back();
  EXPECT_THROW(i2g::write_scatter_svg(tmp.file("bad.svg"), series, o), engine::Error);
  EXPECT_FALSE(fs::exists(tmp.file("bad.svg")));
}

TEST(SvgPlot, PredictionChartJoinsPairs) {
  TempDir tmp;
  std::vector<i2g::LatLon> truth, pred;
  for (int i = 0; i < 9; ++i) {
    truth.push_back({39.9505 + i * 2e-4, -75.1925 + i * 2e-4});
    pred.push_back({39.9510 + i * 1e-4, -75.1915 - i * 1e-4});
  }
  i2g::write_prediction_svg(tmp.file("p.svg"), truth, pred, {"test predictions", "lon", "lat"});
  const std::string svg = slurp(tmp.file("p.svg"));
  EXPECT_EQ(svg_balance_problem(svg), "");
  EXPECT_EQ(count_of(svg, "<circle class=\"pt\""), 18);
  EXPECT_EQ(count_of(svg, "<line class=\"err\""), 9);
  pred.pop_back();
  EXPECT_THROW(i2g::write_prediction_svg(tmp.file("q.svg"), truth, pred, {}), engine::Error);
}

TEST(SvgPlot, CurvesAndDegenerateInput) {
  TempDir tmp;
  std::vector<i2g::PlotSeries> curves = {{"train loss", {1, 2, 3, 4, 5}, {2.5, 1.7, 1.2, 1.0, 0.9}, ""},
                                         {"val loss", {1, 2, 3, 4, 5}, {2.6, 1.9, 1.5, 1.4, 1.45}, ""}};
  i2g::write_curves_svg(tmp.file("c.svg"), curves, {"loss", "epoch", "MSE"});
  std::string svg = slurp(tmp.file("c.svg"));
  EXPECT_EQ(svg_balance_problem(svg), "");
  EXPECT_EQ(count_of(svg, "<polyline"), 2);
  EXPECT_EQ(count_of(svg, "<circle class=\"pt\""), 10);
  // One point, a constant series, and an empty series still give a valid file.
  i2g::write_curves_svg(tmp.file("d.svg"), {{"one", {1}, {3}, ""}, {"flat", {1, 2}, {3, 3}, ""}, {"none", {}, {}, ""}},
                        {"t", "x", "y"});
  svg = slurp(tmp.file("d.svg"));
  EXPECT_EQ(svg_balance_problem(svg), "");
  EXPECT_EQ(count_of(svg, "<circle class=\"pt\""), 3);
  i2g::PlotOptions tiny;
  tiny.width = 50;
  EXPECT_THROW(i2g::write_curves_svg(tmp.file("e.svg"), curves, tiny), engine::Error);
  int files = 0;
  for (const auto& e : fs::directory_iterator(tmp.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 2);  // no temporaries, nothing for the failed call
}

}  // namespace
