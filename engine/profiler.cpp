#include "engine/profiler.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <utility>

#include "engine/error.h"
#include "engine/profiler_clock.h"

namespace engine::profiler {

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::Forward: return "forward";
    case Phase::Backward: return "backward";
    case Phase::Optimizer: return "optimizer";
  }
  return "?";
}

// ---- the host clock --------------------------------------------------------------------------

namespace {

class HostClock final : public Clock {
 public:
  int64_t mark() override {
    marks_.push_back(std::chrono::steady_clock::now());
    return static_cast<int64_t>(marks_.size()) - 1;
  }
  std::vector<double> read_us() override {
    std::vector<double> us;
    us.reserve(marks_.size());
    for (const auto& t : marks_)
      us.push_back(std::chrono::duration<double, std::micro>(t - marks_.front()).count());
    return us;
  }

 private:
  std::vector<std::chrono::steady_clock::time_point> marks_;
};

}  // namespace

std::unique_ptr<Clock> make_host_clock() { return std::make_unique<HostClock>(); }

// ---- the open session --------------------------------------------------------------------------

namespace {

// A Range that has ended: its marks, resolved into times when the session stops.
struct Pending {
  const char* name;
  Phase phase;
  int64_t start_mark, end_mark;  // on the session's clock
  int64_t host_start, host_end;  // on the host clock of a CUDA session (-1 in a CPU session)
};

// Enough for minutes of a ConvNeXt training loop; past it ranges are counted, not timed.
constexpr size_t kMaxPending = size_t(1) << 22;

struct State {
  Device device;
  std::unique_ptr<Clock> clock;  // the session's: the host's on the CPU, CUDA events on a GPU
  std::unique_ptr<Clock> host;   // a CUDA session's host clock (null in a CPU session)
  std::vector<Pending> pending;
  int64_t dropped = 0;
};

// The open session (one per process) and, per thread, which session it opened last and how
// deep its Ranges are nested. A Range keeps the number of the session it was opened in, so
// one that outlives its session (or began before it) does nothing at its end.
State* g_state = nullptr;
std::atomic<uint64_t> g_sessions{0};  // sessions opened so far
std::atomic<uint64_t> g_open{0};      // the open session's number, 0 when none is open
thread_local uint64_t t_session = 0;  // the number of the last session this thread opened
thread_local int t_depth = 0;

// Whether this thread opened the session that is open now. A thread that opened one keeps its
// number after another thread stopped it; the comparison with g_open then says no.
bool on_open_session() {
  return t_session != 0 && t_session == g_open.load(std::memory_order_relaxed);
}

}  // namespace

bool active() { return on_open_session(); }

Session::Session(Device device) {
  check(g_open.load() == 0, "profiler: a session is already open (one at a time per process)");
  auto state = std::make_unique<State>();
  state->device = device;
  state->clock = device.is_cuda() ? make_event_clock() : make_host_clock();
  if (device.is_cuda()) state->host = make_host_clock();
  // Claim the process's one session (two threads opening at once: one of them fails here).
  const uint64_t number = g_sessions.fetch_add(1) + 1;
  uint64_t none = 0;
  check(g_open.compare_exchange_strong(none, number),
        "profiler: a session is already open (one at a time per process)");
  if (state->host) state->host->mark();  // mark 0 of each clock: the session's start
  state->clock->mark();
  g_state = state.release();
  t_session = number;
  t_depth = 0;
}

Session::~Session() {
  if (!open_) return;
  try {
    stop();
  } catch (...) {
    // A destructor must not throw; the profile is lost with the session.
  }
}

Profile Session::stop() {
  check(open_, "profiler: the session was already stopped");
  open_ = false;
  g_open.store(0);
  std::unique_ptr<State> state(g_state);
  g_state = nullptr;
  t_session = 0;
  t_depth = 0;
  const int64_t last = state->clock->mark();
  const int64_t host_last = state->host ? state->host->mark() : last;
  const std::vector<double> us = state->clock->read_us();
  const std::vector<double> host_us = state->host ? state->host->read_us() : us;
  std::vector<Event> events;
  events.reserve(state->pending.size());
  for (const Pending& p : state->pending) {
    const int64_t hs = state->host ? p.host_start : p.start_mark;
    const int64_t he = state->host ? p.host_end : p.end_mark;
    events.push_back({p.name, p.phase, us[p.start_mark], us[p.end_mark] - us[p.start_mark],
                      host_us[hs], host_us[he] - host_us[hs]});
  }
  // Ranges end in order of their ends; a trace reads best in order of their starts.
  std::stable_sort(events.begin(), events.end(),
                   [](const Event& a, const Event& b) { return a.start_us < b.start_us; });
  return Profile(state->device, std::move(events), us[last], host_us[host_last],
                 state->dropped);
}

Range::Range(const char* name, Phase phase) : name_(name), phase_(phase) {
  if (!on_open_session()) return;
  session_ = t_session;
  if (++t_depth > 1) return;  // inside another Range: part of its time
  if (g_state->pending.size() >= kMaxPending) {
    ++g_state->dropped;
    return;
  }
  try {
    // The host's mark first, then the event: the host's range covers the queuing of both.
    if (g_state->host) host_mark_ = g_state->host->mark();
    mark_ = g_state->clock->mark();
  } catch (...) {
    // Not timed; the destructor still runs (this constructor does not throw) and unwinds the
    // depth. A CUDA error here is reported again by the op's own next CUDA call.
    ++g_state->dropped;
  }
}

Range::~Range() {
  // Not timed, or its session has ended (and perhaps another one opened since).
  if (session_ == 0 || session_ != g_open.load(std::memory_order_relaxed)) return;
  --t_depth;
  if (mark_ < 0) return;
  try {
    const int64_t end = g_state->clock->mark();
    const int64_t host_end = g_state->host ? g_state->host->mark() : -1;
    g_state->pending.push_back({name_, phase_, mark_, end, host_mark_, host_end});
  } catch (...) {
    ++g_state->dropped;  // out of memory, or a CUDA error that the next op will report
  }
}

// ---- reading a profile ---------------------------------------------------------------------

Profile::Profile(Device device, std::vector<Event> events, double span_us, double host_span_us,
                 int64_t dropped)
    : device_(device),
      events_(std::move(events)),
      span_us_(span_us),
      host_span_us_(host_span_us),
      dropped_(dropped) {}

double Profile::busy_us() const {
  double sum = 0;
  for (const Event& e : events_) sum += e.duration_us;
  return sum;
}

double Profile::host_busy_us() const {
  double sum = 0;
  for (const Event& e : events_) sum += e.host_duration_us;
  return sum;
}

std::vector<OpTotal> Profile::totals() const {
  std::map<std::pair<std::string, Phase>, OpTotal> by_op;
  for (const Event& e : events_) {
    OpTotal& t = by_op[{e.name, e.phase}];
    t.name = e.name;
    t.phase = e.phase;
    t.calls += 1;
    t.total_us += e.duration_us;
    t.host_total_us += e.host_duration_us;
  }
  std::vector<OpTotal> rows;
  for (auto& [key, total] : by_op) rows.push_back(std::move(total));
  // by_op is ordered by (name, phase), and stable_sort keeps that order among equal totals.
  std::stable_sort(rows.begin(), rows.end(),
                   [](const OpTotal& a, const OpTotal& b) { return a.total_us > b.total_us; });
  return rows;
}

namespace {

// One line of the table; `host_us` < 0: no host column (a CPU session).
std::string format_row(const std::string& op, const std::string& phase, const std::string& calls,
                       double total_us, double host_us, const std::string& mean, double span_us) {
  char host[32] = "";
  if (host_us >= 0) std::snprintf(host, sizeof host, " %11.3f", host_us / 1000);
  char line[192];
  std::snprintf(line, sizeof line, "%-28s %-9s %7s %11.3f%s %11s %6.1f%%\n", op.c_str(),
                phase.c_str(), calls.c_str(), total_us / 1000, host, mean.c_str(),
                span_us > 0 ? 100 * total_us / span_us : 0.0);
  return line;
}

std::string format_mean(double us) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f", us);
  return s;
}

}  // namespace

std::string Profile::table(size_t max_rows) const {
  const bool gpu = device_.is_cuda();
  // The host column of a CUDA session, or none (-1).
  auto host = [gpu](double us) { return gpu ? us : -1.0; };
  std::string out;
  char head[192];
  std::snprintf(head, sizeof head, "%-28s %-9s %7s %11s%s %11s %7s\n", "op", "phase", "calls",
                gpu ? "GPU ms" : "total ms", gpu ? "     host ms" : "", "mean us", "share");
  out += head;
  const std::vector<OpTotal> rows = totals();
  double rest_us = 0, rest_host_us = 0;
  int64_t rest_calls = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const OpTotal& r = rows[i];
    if (i < max_rows) {
      out += format_row(r.name, phase_name(r.phase), std::to_string(r.calls), r.total_us,
                        host(r.host_total_us), format_mean(r.total_us / r.calls), span_us_);
    } else {
      rest_us += r.total_us;
      rest_host_us += r.host_total_us;
      rest_calls += r.calls;
    }
  }
  if (rows.size() > max_rows)
    out += format_row("(" + std::to_string(rows.size() - max_rows) + " more ops)", "",
                      std::to_string(rest_calls), rest_us, host(rest_host_us), "", span_us_);
  const double busy = busy_us(), host_busy = host_busy_us();
  out += format_row("in ops", "", std::to_string(events_.size()), busy, host(host_busy), "",
                    span_us_);
  out += format_row("gap (outside ops)", "", "", std::max(0.0, span_us_ - busy),
                    host(std::max(0.0, host_span_us_ - host_busy)), "", span_us_);
  out += format_row(std::string("span (") + (gpu ? "GPU" : "host") + " clock)", "", "", span_us_,
                    host(host_span_us_), "", span_us_);
  if (gpu && span_us_ > 0) {
    char line[192];
    std::snprintf(line, sizeof line,
                  "the host took %.3f ms to queue these ops, %.0f%% of the GPU's span (near "
                  "100%%: the GPU waited for the host)\n",
                  host_busy / 1000, 100 * host_busy / span_us_);
    out += line;
  }
  if (dropped_ > 0)
    out += std::to_string(dropped_) + " ranges were not timed (the session's limit of " +
           std::to_string(kMaxPending) + " was reached)\n";
  return out;
}

std::string Profile::chrome_trace() const {
  // Op names are C identifiers, but escape anything JSON would not take as it is.
  auto quoted = [](const char* s) {
    std::string q = "\"";
    for (; *s; ++s) {
      const unsigned char c = static_cast<unsigned char>(*s);
      if (c == '"' || c == '\\') {
        q += '\\';
        q += static_cast<char>(c);
      } else if (c < 0x20) {
        char u[8];
        std::snprintf(u, sizeof u, "\\u%04x", c);
        q += u;
      } else {
        q += static_cast<char>(c);
      }
    }
    return q + "\"";
  };
  auto number = [](double v) {
    char s[32];
    std::snprintf(s, sizeof s, "%.3f", v);
    return std::string(s);
  };
  // A process per clock (pid 0: the session's; pid 1: the host's in a CUDA session), a track
  // (a "thread" to the viewer) per phase in each, then one complete event ("X") per op.
  const bool gpu = device_.is_cuda();
  std::vector<std::string> entries;
  const int processes = gpu ? 2 : 1;
  for (int pid = 0; pid < processes; ++pid) {
    const char* clock = pid == 1 ? "host (queuing the ops)" : gpu ? "GPU (CUDA events)" : "host";
    entries.push_back("{\"ph\": \"M\", \"name\": \"process_name\", \"pid\": " +
                      std::to_string(pid) + ", \"args\": {\"name\": \"" + clock + "\"}}");
    for (Phase p : {Phase::Forward, Phase::Backward, Phase::Optimizer})
      entries.push_back("{\"ph\": \"M\", \"name\": \"thread_name\", \"pid\": " +
                        std::to_string(pid) + ", \"tid\": " + std::to_string(int(p)) +
                        ", \"args\": {\"name\": \"" + phase_name(p) + "\"}}");
  }
  for (int pid = 0; pid < processes; ++pid)
    for (const Event& e : events_)
      entries.push_back("{\"ph\": \"X\", \"name\": " + quoted(e.name) + ", \"cat\": \"" +
                        phase_name(e.phase) + "\", \"pid\": " + std::to_string(pid) +
                        ", \"tid\": " + std::to_string(int(e.phase)) + ", \"ts\": " +
                        number(pid == 1 ? e.host_start_us : e.start_us) + ", \"dur\": " +
                        number(pid == 1 ? e.host_duration_us : e.duration_us) + "}");
  std::string out = std::string("{\"displayTimeUnit\": \"ms\", \"otherData\": {\"clock\": \"") +
                    (device_.is_cuda() ? "gpu" : "host") + "\", \"device\": \"" +
                    device_.str() + "\"}, \"traceEvents\": [\n";
  for (size_t i = 0; i < entries.size(); ++i)
    out += entries[i] + (i + 1 < entries.size() ? ",\n" : "\n");
  return out + "]}\n";
}

}  // namespace engine::profiler
