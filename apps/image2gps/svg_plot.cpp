// apps/image2gps/svg_plot.cpp — see svg_plot.h.
#include "apps/image2gps/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "apps/image2gps/file_io.h"
#include "engine/error.h"

namespace i2g {

namespace {

constexpr double kPi = 3.14159265358979323846;
// Colour-blind-safe palette (Okabe & Ito): train, val, test read apart for everyone.
const char* const kPalette[] = {"#0072B2", "#E69F00", "#009E73", "#D55E00",
                                "#CC79A7", "#56B4E9", "#F0E442", "#000000"};

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string num(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `target` ticks over span.
double nice_step(double span, int target) {
  const double raw = span / target;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  const double m = raw / p;
  return (m < 1.5 ? 1.0 : m < 3.5 ? 2.0 : m < 7.5 ? 5.0 : 10.0) * p;
}

// Maps data to pixels inside a frame, draws axes, ticks, labels, title and legend.
class Chart {
 public:
  Chart(const PlotOptions& o, const std::vector<double>& xs, const std::vector<double>& ys) : o_(o) {
    engine::check(o.width >= 200 && o.height >= 150, "plot: size ", o.width, "x", o.height,
                  " is too small (at least 200x150)");
    range(xs, &x0_, &x1_);
    range(ys, &y0_, &y1_);
    if (o.geographic) equalize_metres();
  }

  double px(double x) const { return left_ + (x - x0_) / (x1_ - x0_) * plot_w(); }
  double py(double y) const { return top_ + (1.0 - (y - y0_) / (y1_ - y0_)) * plot_h(); }

  void dot(double x, double y, const std::string& color, double r = 3.5) {
    body_ += "<circle class=\"pt\" cx=\"" + num(px(x)) + "\" cy=\"" + num(py(y)) + "\" r=\"" +
             num(r) + "\" fill=\"" + xml_escape(color) + "\" fill-opacity=\"0.85\"/>\n";
  }
  void line(double xa, double ya, double xb, double yb, const std::string& color) {
    body_ += "<line class=\"err\" x1=\"" + num(px(xa)) + "\" y1=\"" + num(py(ya)) + "\" x2=\"" +
             num(px(xb)) + "\" y2=\"" + num(py(yb)) + "\" stroke=\"" + xml_escape(color) +
             "\" stroke-width=\"1\"/>\n";
  }
  void polyline(const std::vector<std::pair<double, double>>& pts, const std::string& color) {
    if (pts.size() < 2) return;
    std::string p;
    for (const auto& [x, y] : pts) p += num(px(x)) + "," + num(py(y)) + " ";
    body_ += "<polyline points=\"" + p + "\" fill=\"none\" stroke=\"" + xml_escape(color) +
             "\" stroke-width=\"2\"/>\n";
  }
  void legend(const std::string& label, const std::string& color) {
    legend_.emplace_back(label, color);
  }

  std::string finish() const {
    std::string s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(o_.width) +
         "\" height=\"" + std::to_string(o_.height) + "\" viewBox=\"0 0 " +
         std::to_string(o_.width) + " " + std::to_string(o_.height) +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    s += "<rect x=\"0\" y=\"0\" width=\"" + std::to_string(o_.width) + "\" height=\"" +
         std::to_string(o_.height) + "\" fill=\"white\"/>\n";
    s += "<text x=\"" + num(o_.width / 2.0) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"16\">" +
         xml_escape(o_.title) + "</text>\n";
    s += axes();
    s += body_;
    s += legend_box();
    s += "</svg>\n";
    return s;
  }

 private:
  double plot_w() const { return o_.width - left_ - right_; }
  double plot_h() const { return o_.height - top_ - bottom_; }

  static void range(const std::vector<double>& v, double* lo, double* hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (double x : v) {
      if (!std::isfinite(x)) continue;
      *lo = std::min(*lo, x);
      *hi = std::max(*hi, x);
    }
    if (*lo > *hi) {  // no finite value
      *lo = 0.0;
      *hi = 1.0;
      return;
    }
    const double span = *hi - *lo;
    const double pad = span > 0 ? 0.05 * span : std::max(1e-6, 0.01 * std::fabs(*lo));
    *lo -= pad;
    *hi += pad;
  }

  // Widen one axis so that east-west and north-south metres get the same number of pixels.
  void equalize_metres() {
    const double k = std::cos((y0_ + y1_) / 2.0 * kPi / 180.0);  // lon degree / lat degree
    if (!(k > 1e-6)) return;
    const double ex = (x1_ - x0_) * k, ey = y1_ - y0_;
    const double s = std::min(plot_w() / ex, plot_h() / ey);  // pixels per latitude degree
    const double cx = (x0_ + x1_) / 2, cy = (y0_ + y1_) / 2;
    const double hx = plot_w() / s / k / 2, hy = plot_h() / s / 2;
    x0_ = cx - hx;
    x1_ = cx + hx;
    y0_ = cy - hy;
    y1_ = cy + hy;
  }

  std::string axes() const {
    std::string s = "<rect x=\"" + num(left_) + "\" y=\"" + num(top_) + "\" width=\"" +
                    num(plot_w()) + "\" height=\"" + num(plot_h()) +
                    "\" fill=\"none\" stroke=\"black\"/>\n";
    auto ticks = [&](double lo, double hi, bool is_x) {
      const double step = nice_step(hi - lo, is_x ? 6 : 8);
      const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step))));
      for (double t = std::ceil(lo / step) * step; t <= hi; t += step) {
        const double v = std::fabs(t) < step * 1e-9 ? 0.0 : t;
        if (is_x) {
          const double x = px(v), yb = top_ + plot_h();
          s += "<line x1=\"" + num(x) + "\" y1=\"" + num(yb) + "\" x2=\"" + num(x) + "\" y2=\"" +
               num(yb + 5) + "\" stroke=\"black\"/>\n";
          s += "<text x=\"" + num(x) + "\" y=\"" + num(yb + 18) + "\" text-anchor=\"middle\">" +
               num(v, decimals) + "</text>\n";
        } else {
          const double y = py(v);
          s += "<line x1=\"" + num(left_ - 5) + "\" y1=\"" + num(y) + "\" x2=\"" + num(left_) +
               "\" y2=\"" + num(y) + "\" stroke=\"black\"/>\n";
          s += "<text x=\"" + num(left_ - 8) + "\" y=\"" + num(y + 4) + "\" text-anchor=\"end\">" +
               num(v, decimals) + "</text>\n";
        }
      }
    };
    ticks(x0_, x1_, true);
    ticks(y0_, y1_, false);
    s += "<text x=\"" + num(left_ + plot_w() / 2) + "\" y=\"" + num(o_.height - 12.0) +
         "\" text-anchor=\"middle\">" + xml_escape(o_.x_label) + "</text>\n";
    s += "<text transform=\"translate(16," + num(top_ + plot_h() / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + xml_escape(o_.y_label) + "</text>\n";
    return s;
  }

  std::string legend_box() const {
    if (legend_.empty()) return "";
    std::string s = "<g class=\"legend\">\n";
    const double x = left_ + plot_w() - 150, y0 = top_ + 10;
    s += "<rect x=\"" + num(x) + "\" y=\"" + num(y0) + "\" width=\"140\" height=\"" +
         num(8.0 + 18.0 * legend_.size()) + "\" fill=\"white\" fill-opacity=\"0.8\" stroke=\"#888\"/>\n";
    for (size_t i = 0; i < legend_.size(); ++i) {
      const double y = y0 + 8 + 18.0 * i;
      s += "<rect x=\"" + num(x + 8) + "\" y=\"" + num(y) + "\" width=\"12\" height=\"12\" fill=\"" +
           xml_escape(legend_[i].second) + "\"/>\n";
      s += "<text x=\"" + num(x + 26) + "\" y=\"" + num(y + 10) + "\">" +
           xml_escape(legend_[i].first) + "</text>\n";
    }
    return s + "</g>\n";
  }

  PlotOptions o_;
  double x0_ = 0, x1_ = 1, y0_ = 0, y1_ = 1;
  double left_ = 90, right_ = 20, top_ = 40, bottom_ = 50;
  std::string body_;
  std::vector<std::pair<std::string, std::string>> legend_;
};

std::string color_of(const PlotSeries& s, size_t i) {
  return s.color.empty() ? kPalette[i % (sizeof(kPalette) / sizeof(kPalette[0]))] : s.color;
}

void check_series(const std::vector<PlotSeries>& series, const std::string& path) {
  for (const PlotSeries& s : series)
    engine::check(s.x.size() == s.y.size(), "plot ", path, ": series '", s.label, "' has ",
                  s.x.size(), " x values but ", s.y.size(), " y values");
}

void all_values(const std::vector<PlotSeries>& series, std::vector<double>* xs,
                std::vector<double>* ys) {
  for (const PlotSeries& s : series) {
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xs->push_back(s.x[i]);
      ys->push_back(s.y[i]);
    }
  }
}

bool finite(double x, double y) { return std::isfinite(x) && std::isfinite(y); }

}  // namespace

void write_scatter_svg(const std::string& path, const std::vector<PlotSeries>& series,
                       const PlotOptions& options) {
  check_series(series, path);
  std::vector<double> xs, ys;
  all_values(series, &xs, &ys);
  Chart chart(options, xs, ys);
  for (size_t k = 0; k < series.size(); ++k) {
    const std::string color = color_of(series[k], k);
    for (size_t i = 0; i < series[k].x.size(); ++i)
      if (finite(series[k].x[i], series[k].y[i])) chart.dot(series[k].x[i], series[k].y[i], color);
    chart.legend(series[k].label + " (" + std::to_string(series[k].x.size()) + ")", color);
  }
  write_file_atomic(path, chart.finish());
}

void write_prediction_svg(const std::string& path, std::span<const LatLon> truth,
                          std::span<const LatLon> pred, const PlotOptions& options) {
  engine::check(truth.size() == pred.size(), "plot ", path, ": ", truth.size(),
                " true positions but ", pred.size(), " predictions");
  std::vector<double> xs, ys;
  for (auto span : {truth, pred}) {
    for (const LatLon& p : span) {
      if (!finite(p.lon, p.lat)) continue;
      xs.push_back(p.lon);
      ys.push_back(p.lat);
    }
  }
  PlotOptions o = options;
  o.geographic = true;
  Chart chart(o, xs, ys);
  const std::string c_true = kPalette[2], c_pred = kPalette[3];
  for (size_t i = 0; i < truth.size(); ++i) {
    if (finite(truth[i].lon, truth[i].lat) && finite(pred[i].lon, pred[i].lat))
      chart.line(truth[i].lon, truth[i].lat, pred[i].lon, pred[i].lat, "#999999");
  }
  for (const LatLon& p : truth)
    if (finite(p.lon, p.lat)) chart.dot(p.lon, p.lat, c_true);
  for (const LatLon& p : pred)
    if (finite(p.lon, p.lat)) chart.dot(p.lon, p.lat, c_pred, 2.5);
  chart.legend("true (" + std::to_string(truth.size()) + ")", c_true);
  chart.legend("predicted", c_pred);
  write_file_atomic(path, chart.finish());
}

void write_curves_svg(const std::string& path, const std::vector<PlotSeries>& series,
                      const PlotOptions& options) {
  check_series(series, path);
  std::vector<double> xs, ys;
  all_values(series, &xs, &ys);
  Chart chart(options, xs, ys);
  for (size_t k = 0; k < series.size(); ++k) {
    const std::string color = color_of(series[k], k);
    std::vector<std::pair<double, double>> pts;
    for (size_t i = 0; i < series[k].x.size(); ++i)
      if (finite(series[k].x[i], series[k].y[i])) pts.emplace_back(series[k].x[i], series[k].y[i]);
    chart.polyline(pts, color);
    for (const auto& [x, y] : pts) chart.dot(x, y, color, 2.5);
    chart.legend(series[k].label, color);
  }
  write_file_atomic(path, chart.finish());
}

}  // namespace i2g
