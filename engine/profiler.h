// engine/profiler.h — where a training step's time goes, op by op.
//
//   engine::profiler::Session session(Device::cuda());  // or Device::cpu()
//   ...run a few steps...
//   engine::profiler::Profile p = session.stop();
//   std::cerr << p.table();                 // calls, total and share per op, largest first
//   write(p.chrome_trace());                // JSON for Perfetto / chrome://tracing
//
// While a session is open, the engine times each op it runs, once: every op function opens a
// Range at its top (forward), Tensor::backward opens one around each node's backward closure
// (named after the node) and around the gradient sums, the optimizers around their update.
// Only the outermost Range counts: a Range opened inside another (a backward closure calling
// mul, a fused op calling matmul) is part of the enclosing one, so ranges never overlap and
// their sum is the time spent inside the engine's ops. What is left of the span (host work of
// the program, the data loader's waits) is reported as the gap.
//
// The clock follows the session's device:
//   cpu   host wall-clock time (std::chrono::steady_clock) at the Range's start and end;
//   cuda  two CUDA events queued on the compute stream: the time the GPU spent between them.
//         Nothing waits while the session runs; stop() waits once for the last event. When the
//         host cannot queue work as fast as the GPU runs it, the GPU's idle time between two
//         events is counted in the range that was open. So a CUDA session also reads the host
//         clock around each op: the host time it took to queue the op. A step whose host time
//         in ops comes close to its GPU span is bound by the host (launches, allocations,
//         shape checks), not by the kernels; the trace shows both timelines, one above the
//         other.
// Ranges are recorded only on the thread that opened the session (the loader's threads run no
// engine ops); when no session is open a Range costs one thread-local load.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"

namespace engine::profiler {

enum class Phase : uint8_t { Forward, Backward, Optimizer };
const char* phase_name(Phase phase);

// One timed op: when it started (microseconds since the session began) and how long it took,
// on the session's clock (the GPU's in a CUDA session) and on the host's (the same numbers in a
// CPU session).
struct Event {
  const char* name;  // a string literal or a Node's name: lives as long as the program
  Phase phase;
  double start_us;
  double duration_us;
  double host_start_us;
  double host_duration_us;
};

// The events of one (name, phase), summed.
struct OpTotal {
  std::string name;
  Phase phase;
  int64_t calls = 0;
  double total_us = 0;
  double host_total_us = 0;
};

class Profile {
 public:
  Profile() = default;
  Profile(Device device, std::vector<Event> events, double span_us, double host_span_us,
          int64_t dropped = 0);

  Device device() const { return device_; }
  const std::vector<Event>& events() const { return events_; }
  // From the session's start to its stop (on the session's clock).
  double span_us() const { return span_us_; }
  // The sum of every event's duration: the time spent inside the engine's ops.
  double busy_us() const;
  // The same two on the host's clock (equal to the above in a CPU session).
  double host_span_us() const { return host_span_us_; }
  double host_busy_us() const;
  // Ranges that were not timed because the session held its limit of events (4M) already.
  int64_t dropped() const { return dropped_; }
  // One row per (name, phase), largest total first (ties: by name, then phase).
  std::vector<OpTotal> totals() const;
  // The totals as a text table: op, phase, calls, total ms, mean us, share of the span (in a
  // CUDA session also the host's ms); then the rows past `max_rows` summed in one line, the gap
  // and the span.
  std::string table(size_t max_rows = 25) const;
  // Chrome's trace event format ({"traceEvents": [...]}): one complete event ("ph": "X") per op,
  // forward, backward and optimizer on three tracks; in a CUDA session a second process holds
  // the same ops on the host's clock.
  std::string chrome_trace() const;

 private:
  Device device_;
  std::vector<Event> events_;
  double span_us_ = 0;
  double host_span_us_ = 0;
  int64_t dropped_ = 0;
};

// Collects the ranges of the thread that opens it, until stop() or its destruction. One
// session at a time per process; opening a second one while one is open throws engine::Error.
class Session {
 public:
  explicit Session(Device device = Device::cpu());
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Ends the session and returns what it timed (on CUDA: waits for the queued work once).
  // Calling it again throws engine::Error.
  Profile stop();

 private:
  bool open_ = true;
};

// True while a session is open and this is its thread.
bool active();

// Times what runs between its construction and destruction as one op, if it is the outermost
// Range of an open session's thread; does nothing otherwise.
class Range {
 public:
  explicit Range(const char* name, Phase phase = Phase::Forward);
  ~Range();
  Range(const Range&) = delete;
  Range& operator=(const Range&) = delete;

 private:
  uint64_t session_ = 0;  // the session it was opened in (0: none)
  int64_t mark_ = -1;     // its start's mark on the session's clock, or -1 when not timed
  int64_t host_mark_ = -1;  // its start's mark on the host clock of a CUDA session
  const char* name_;
  Phase phase_;
};

}  // namespace engine::profiler
