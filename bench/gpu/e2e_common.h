// bench/gpu/e2e_common.h — what the two C++ sides of the GPU end-to-end suite share (ours:
// gpu_e2e_bench.cpp; LibTorch: libtorch/libtorch_e2e.cpp): the input formula, the step loop
// with its time cap, the statistics and the JSON record. No engine or torch types here, so
// both projects include it; bench/gpu/torch_e2e.py mirrors it in Python.
//
// Inputs. Every side fills its tensors with the same values, so "identical step" includes the
// data: element i of a tensor drawn with `seed` is
//   h = lowbias32((i + seed * 0x9E3779B9) mod 2^32)          (Chris Wellons' 32-bit hash)
//   x = (h >> 8) * 2^-23 - 1                                  uniform on [-1, 1), exact in float32
// in the tensor's logical order (row-major over its shape: NHWC images for us, the same bytes
// viewed as NCHW channels_last by PyTorch). Integer arithmetic only, so Python reproduces it
// bit for bit with int64 tensor ops; fast enough to fill a 3 GB k-NN bank in a second.
//
// Timing (every side alike): each step is bracketed by a full device synchronisation, and
// ms = the wall time from just before the step's first call to the end of the closing
// synchronisation. Warm-up steps are not timed; then `steps` timed steps, or fewer when the
// benchmark's time cap runs out (never fewer than 3); ms_median over those is the headline,
// img/s = batch / ms_median.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace e2e {

// ---- inputs ------------------------------------------------------------------------------------

inline uint32_t lowbias32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

inline float hash_uniform(uint64_t i, uint32_t seed) {
  const uint32_t h = lowbias32(static_cast<uint32_t>(i) + seed * 0x9E3779B9U);
  return static_cast<float>(h >> 8) * (1.0f / 8388608.0f) - 1.0f;  // 2^-23
}

// out[j] = hash_uniform(first + j, seed) for j < n.
inline void fill_uniform(float* out, int64_t n, uint32_t seed, int64_t first = 0) {
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < n; ++j) out[j] = hash_uniform(static_cast<uint64_t>(first + j), seed);
}

// The seeds of each input, shared with torch_e2e.py.
constexpr uint32_t kSeedImages = 1, kSeedTargets = 2, kSeedQueries = 3, kSeedBank = 4;

// ---- command line ------------------------------------------------------------------------------

// "--name value" or "--name=value"; every name must be one of `known` (name -> help line).
class Args {
 public:
  Args(int argc, char** argv, std::map<std::string, std::string> known)
      : known_(std::move(known)) {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "-h" || a == "--help") {
        help_ = true;
        continue;
      }
      if (a.rfind("--", 0) != 0) throw std::runtime_error("unexpected argument '" + a + "'");
      std::string name = a.substr(2), value;
      if (auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        throw std::runtime_error("--" + name + " needs a value");
      }
      if (!known_.count(name)) throw std::runtime_error("unknown option --" + name + "\n" + usage());
      values_[name] = value;
    }
  }
  bool help() const { return help_; }
  std::string usage() const {
    std::string u = "options:\n";
    for (const auto& [k, h] : known_) u += "  --" + k + "  " + h + "\n";
    return u;
  }
  std::string str(const std::string& name, const std::string& dflt) const {
    auto it = values_.find(name);
    return it == values_.end() ? dflt : it->second;
  }
  double num(const std::string& name, double dflt) const {
    auto it = values_.find(name);
    if (it == values_.end()) return dflt;
    char* end = nullptr;
    const double v = std::strtod(it->second.c_str(), &end);
    if (end == it->second.c_str() || *end)
      throw std::runtime_error("--" + name + " expects a number, got '" + it->second + "'");
    return v;
  }
  // A comma-separated list, each item checked against `allowed` (empty: anything).
  std::vector<std::string> list(const std::string& name, const std::string& dflt,
                                const std::set<std::string>& allowed = {}) const {
    std::vector<std::string> out;
    std::stringstream ss(str(name, dflt));
    for (std::string item; std::getline(ss, item, ',');) {
      if (item.empty()) continue;
      if (!allowed.empty() && !allowed.count(item)) {
        std::string choices;
        for (const auto& a : allowed) choices += (choices.empty() ? "" : ", ") + a;
        throw std::runtime_error("--" + name + ": '" + item + "' is not one of " + choices);
      }
      out.push_back(item);
    }
    return out;
  }

 private:
  std::map<std::string, std::string> known_, values_;
  bool help_ = false;
};

// ---- JSON --------------------------------------------------------------------------------------

inline std::string json_str(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          o += buf;
        } else {
          o += c;
        }
    }
  }
  return o + "\"";
}

// One flat JSON object, fields in insertion order; NaN/inf numbers become null.
class Record {
 public:
  Record& set(const std::string& key, const std::string& v) { return raw(key, json_str(v)); }
  Record& set(const std::string& key, const char* v) { return raw(key, json_str(v)); }
  Record& set(const std::string& key, double v) {
    if (!std::isfinite(v)) return raw(key, "null");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return raw(key, buf);
  }
  Record& set(const std::string& key, int64_t v) { return raw(key, std::to_string(v)); }
  Record& set(const std::string& key, int v) { return raw(key, std::to_string(v)); }
  Record& set(const std::string& key, bool v) { return raw(key, v ? "true" : "false"); }
  std::string str() const {
    std::string o = "{";
    for (size_t i = 0; i < fields_.size(); ++i)
      o += (i ? ", " : "") + json_str(fields_[i].first) + ": " + fields_[i].second;
    return o + "}";
  }

 private:
  Record& raw(const std::string& key, const std::string& json) {
    for (auto& f : fields_)
      if (f.first == key) return f.second = json, *this;
    fields_.emplace_back(key, json);
    return *this;
  }
  std::vector<std::pair<std::string, std::string>> fields_;
};

// {"context": {...}, "results": [{...}, ...]}, rewritten whole after every result (write to
// a temporary, then rename) so a run killed by its time limit still leaves valid JSON.
class JsonLog {
 public:
  explicit JsonLog(std::string path) : path_(std::move(path)) {}
  Record& context() { return context_; }
  void add(const Record& r) {
    results_.push_back(r);
    flush();
  }
  void flush() const {
    if (path_.empty()) return;
    const std::string tmp = path_ + ".tmp";
    {
      std::ofstream f(tmp);
      f << "{\n \"context\": " << context_.str() << ",\n \"results\": [";
      for (size_t i = 0; i < results_.size(); ++i)
        f << (i ? ",\n  " : "\n  ") << results_[i].str();
      f << "\n ]\n}\n";
      if (!f) throw std::runtime_error("cannot write " + tmp);
    }
    if (std::rename(tmp.c_str(), path_.c_str()) != 0)
      throw std::runtime_error("cannot rename " + tmp + " to " + path_);
  }

 private:
  std::string path_;
  Record context_;
  std::vector<Record> results_;
};

inline std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// ---- statistics and the step loop -------------------------------------------------------------

inline double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Plan {
  int warmup = 5;          // untimed steps (the first pays for algorithm choice, allocation)
  int steps = 20;          // timed steps asked for
  double max_seconds = 20; // this benchmark's cap: warm-up stops after a third of it, the
                           // timed loop once it is spent (with at least kMinSteps done)
};
constexpr int kMinSteps = 3;

struct StepTimes {
  std::vector<double> ms;  // wall ms of each timed step
  int warmup_done = 0;
  bool capped = false;     // fewer steps than asked, the time cap ran out
  double first_step_ms = NAN;  // the first warm-up step (algorithm search, allocation, ...)
};

// Runs `step(timed)` warm-up then timed; `sync()` waits for the device.
template <class Step, class Sync>
StepTimes run_steps(const Plan& plan, Step&& step, Sync&& sync) {
  using clock = std::chrono::steady_clock;
  const auto begin = clock::now();
  auto since = [](clock::time_point t) {
    return std::chrono::duration<double>(clock::now() - t).count();
  };
  StepTimes st;
  sync();
  for (int i = 0; i < plan.warmup; ++i) {
    const auto t0 = clock::now();
    step(false);
    sync();
    if (i == 0) st.first_step_ms = since(t0) * 1e3;
    ++st.warmup_done;
    if (since(begin) > plan.max_seconds / 3) break;
  }
  for (int i = 0; i < plan.steps; ++i) {
    const auto t0 = clock::now();
    step(true);
    sync();
    st.ms.push_back(since(t0) * 1e3);
    if (i + 1 >= kMinSteps && i + 1 < plan.steps && since(begin) > plan.max_seconds) {
      st.capped = true;
      break;
    }
  }
  return st;
}

// ms_median / ms_min / ms_max / steps / warmup / capped / first_step_ms into r.
inline void put_times(Record& r, const StepTimes& st) {
  r.set("ms_median", median(st.ms));
  r.set("ms_min", st.ms.empty() ? NAN : *std::min_element(st.ms.begin(), st.ms.end()));
  r.set("ms_max", st.ms.empty() ? NAN : *std::max_element(st.ms.begin(), st.ms.end()));
  r.set("steps", static_cast<int>(st.ms.size()));
  r.set("warmup", st.warmup_done);
  r.set("capped", st.capped);
  r.set("first_step_ms", st.first_step_ms);
}

// The share of our k neighbours per query that `theirs` also lists (sets: near-ties may swap).
inline double neighbour_agreement(const std::vector<int64_t>& ours,
                                  const std::vector<int64_t>& theirs, int64_t k) {
  if (ours.size() != theirs.size() || ours.empty()) return NAN;
  int64_t same = 0;
  for (size_t q = 0; q < ours.size() / k; ++q) {
    std::set<int64_t> s(theirs.begin() + q * k, theirs.begin() + (q + 1) * k);
    for (int64_t j = 0; j < k; ++j) same += s.count(ours[q * k + j]);
  }
  return static_cast<double>(same) / static_cast<double>(ours.size());
}

}  // namespace e2e
