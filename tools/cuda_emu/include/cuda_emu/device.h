// tools/cuda_emu/include/cuda_emu/device.h — the execution model: one block at a time, one
// fiber per CUDA thread of the block, and the points where threads wait for each other.
//
//   * A block runs as `nthreads` fibers (fiber.h). A thread runs until it has to wait
//     (__syncthreads, a warp shuffle or vote, mma.sync) or finishes, then the next lane of its
//     warp runs; a warp runs until all its lanes wait at a __syncthreads, then the next warp;
//     once all have arrived, the next phase starts again with the first warp. So between two
//     barriers warp 0 runs first and to the end, then warp 1, ...: a missing barrier shows as
//     a warp reading shared memory the following warps have not written yet, or overwriting
//     what they have not read yet. EMU_SCHEDULE=reverse runs the warps (and the lanes of each)
//     in reverse order, which shows the races in the other direction.
//   * Blocks run one after another, in blockIdx order (x fastest). Nothing is concurrent, so
//     there are no data races between blocks to observe, and atomics are trivially atomic.
//   * Every wait is checked: threads of a block waiting at different __syncthreads, a thread
//     that exits while others wait for it, a warp collective whose mask names lanes that are
//     not there or whose lanes are at different collectives, and a block where nobody can move
//     (deadlock) are reported as errors with the kernel, block, thread and source line, where
//     the GPU would hang or compute garbage.
//   * Shared memory is one arena per block, filled with a poison byte at the start of every
//     block, with a guard page after it; dynamic shared memory ends right at the guard page.
//
// The device-side names (threadIdx, __syncthreads, __shfl_xor_sync, ...) are at the end.
#pragma once

#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <source_location>
#include <string>
#include <vector>

#include "cuda_emu/fiber.h"
#include "cuda_emu/memory.h"
#include "cuda_emu/types.h"

namespace emu {

// ---- the emulated GPU -------------------------------------------------------------------------
// Small on purpose: with 5 SMs and 2 resident blocks each, the labs' persistent and
// grid-stride kernels get small grids and every thread loops several times, so the
// multi-iteration paths are exercised on small test shapes. 5, not 4 or 6: a grid-stride
// step (SMs x blocks x threads) with no factor 3 is rarely a multiple of a row length, so
// index arithmetic carried across iterations (gelu.cu's column) really wraps.
inline constexpr int kSmCount = 5;
inline constexpr int kBlocksPerSm = 2;
inline constexpr unsigned kMaxThreadsPerBlock = 1024;
inline constexpr size_t kMaxStaticShared = 48 * 1024;    // nvcc refuses more
inline constexpr size_t kDefaultMaxDynamic = 48 * 1024;  // more needs cudaFuncSetAttribute
inline constexpr size_t kMaxShared = 227 * 1024;         // static + dynamic, per block (sm_90)

inline std::string where(const std::source_location& s) {
  return std::string(s.file_name()) + ":" + std::to_string(s.line());
}
inline bool same_site(const std::source_location& a, const std::source_location& b) {
  return a.line() == b.line() && a.column() == b.column() &&
         std::strcmp(a.file_name(), b.file_name()) == 0;
}

// ---- threads, warps, blocks -------------------------------------------------------------------

struct AsyncCopy {  // one cp.async (ptx.h): bytes from src, zero-filled past src_bytes
  char* dst;
  const char* src;
  int bytes, src_bytes;
};

struct Thread {
  Fiber fiber;
  uint3 idx{};             // threadIdx
  int warp = 0, lane = 0;  // linear thread index / 32 and % 32, as on the GPU
  bool done = false;
  // While waiting: resumable once *wait_counter != wait_gen (a barrier's generation moved on).
  const uint64_t* wait_counter = nullptr;
  uint64_t wait_gen = 0;
  const char* wait_what = nullptr;
  std::source_location wait_site;
  // cp.async state (ptx.h): copies not yet committed, and committed groups not yet waited for.
  std::vector<AsyncCopy> cp_open;
  std::deque<std::vector<AsyncCopy>> cp_groups;
};

// A warp collective (shuffle, ballot, mma.sync): every lane of `mask` deposits up to 32 bytes
// and waits until all have, then reads what the others deposited. One collective is in flight
// per warp; its results live in words[gen & 1] until collective gen + 2 reuses that half, by
// which time every lane has read them (each had to arrive at collective gen + 1 first).
struct Warp {
  unsigned live = 0;     // lanes that exist and have not exited
  unsigned arrived = 0;  // lanes at the collective in flight
  unsigned mask = 0;     // its mask
  const char* what = nullptr;
  std::source_location site;
  uint64_t gen = 0;  // collectives completed
  uint32_t words[2][32][8];
};

struct Barrier {  // __syncthreads
  uint64_t gen = 0;
  unsigned arrived = 0;
  std::source_location site;  // where the first thread of this round waits
};

// Per-block shared memory: static __shared__ variables from the bottom, dynamic shared memory
// ending at the guard page. Static variables are placed at exactly the alignment their type
// or __align__ asks for and never more (a float array lands 4 bytes past a 16-byte boundary),
// so a float4 access to an array declared without __align__(16) is misaligned here as it may
// be on the GPU.
class SharedMemory {
 public:
  SharedMemory() {
    bytes_ = (kMaxShared + page_size() - 1) / page_size() * page_size();
    void* p = mmap(nullptr, bytes_ + page_size(), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) fatal("mmap of the shared-memory arena failed");
    base_ = static_cast<char*>(p);
    mprotect(base_ + bytes_, page_size(), PROT_NONE);
  }
  ~SharedMemory() { munmap(base_, bytes_ + page_size()); }

  void begin_block(size_t dynamic_bytes) {
    ++serial_;
    poison_ = poison_byte();
    static_used_ = 0;
    dynamic_bytes_ = (dynamic_bytes + 15) / 16 * 16;
    dynamic_ = base_ + bytes_ - dynamic_bytes_;
    std::memset(dynamic_, poison_, dynamic_bytes_);
  }
  uint64_t serial() const { return serial_; }
  char* base() const { return base_; }
  char* dynamic() const { return dynamic_; }
  bool contains(const void* p) const { return p >= base_ && p < base_ + bytes_; }
  bool in_guard(const void* p) const {
    return p >= base_ + bytes_ && p < base_ + bytes_ + page_size();
  }

  // Offset of a new static variable, or an error message in `error`.
  size_t allocate_static(size_t size, size_t align, std::string& error) {
    size_t off = (static_used_ + align - 1) / align * align;
    if (align < 16 && off % (2 * align) == 0) off += align;  // exactly `align`-aligned
    static_used_ = off + size;
    if (static_used_ > kMaxStaticShared)
      error = "static __shared__ variables total " + std::to_string(static_used_) +
              " bytes: over the 48 KB nvcc allows (use dynamic shared memory)";
    else if (static_used_ + dynamic_bytes_ > kMaxShared)
      error = "static (" + std::to_string(static_used_) + " bytes) plus dynamic (" +
              std::to_string(dynamic_bytes_) + " bytes) shared memory exceed 227 KB";
    else
      std::memset(base_ + off, poison_, size);
    return off;
  }

 private:
  char* base_ = nullptr;
  size_t bytes_ = 0;
  char* dynamic_ = nullptr;
  size_t dynamic_bytes_ = 0, static_used_ = 0;
  uint64_t serial_ = 0;
  unsigned char poison_ = 0xFF;
};

// The launch in progress and the block it is running.
struct Run {
  const char* kernel = "";  // name as written at the launch
  std::source_location launch_site;
  dim3 grid, block;
  size_t dynamic_shared = 0;
  const std::function<void()>* body = nullptr;  // calls the kernel with its arguments
  unsigned nthreads = 0, exited = 0;
  Barrier barrier;
  std::vector<Warp> warps;
  bool failed = false;
  std::string failure;
};

struct Emulator {
  Fiber scheduler{Fiber::NoStack{}};             // the OS thread's own stack
  std::vector<std::unique_ptr<Thread>> threads;  // the fiber pool: grows, is reused, never shrinks
  Run run;
  SharedMemory shared;
  bool reverse_order = [] {
    const char* v = std::getenv("EMU_SCHEDULE");
    return v != nullptr && std::strcmp(v, "reverse") == 0;
  }();
};
inline Emulator& emulator() {
  static Emulator e;
  return e;
}

// What device code reads on every access, kept in plain globals (no function-static guard).
inline Thread* g_current = nullptr;  // the thread running now, null outside kernels
inline uint3 g_block_idx{};
inline dim3 g_block_dim, g_grid_dim;

// "kernel K launched at F:L, block (x,y,z), thread (x,y,z) (warp w, lane l)".
inline std::string context() {
  const Run& r = emulator().run;
  auto xyz = [](unsigned x, unsigned y, unsigned z) {
    return "(" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) + ")";
  };
  std::string s = "kernel " + std::string(r.kernel) + " launched at " + where(r.launch_site) +
                  ", block " + xyz(g_block_idx.x, g_block_idx.y, g_block_idx.z);
  if (g_current != nullptr) {
    const Thread& t = *g_current;
    s += ", thread " + xyz(t.idx.x, t.idx.y, t.idx.z) + " (warp " + std::to_string(t.warp) +
         ", lane " + std::to_string(t.lane) + ")";
  }
  return s;
}

// Stop the launch: the calling thread (and every other thread of the grid) never runs again.
[[noreturn]] inline void kernel_error(const std::string& what) {
  Emulator& e = emulator();
  if (!e.run.failed) {
    e.run.failed = true;
    e.run.failure = what + " [" + context() + "]";
  }
  Fiber::switch_to(g_current->fiber, e.scheduler);
  fatal("a failed emulated thread was resumed");
}

[[noreturn]] inline void misaligned_load(size_t align, const void* p,
                                         const std::source_location& site) {
  char addr[32];
  std::snprintf(addr, sizeof addr, "%p", p);
  kernel_error("__ldg at " + where(site) + ": misaligned address " + addr +
               " for a type that "
               "needs " +
               std::to_string(align) + "-byte alignment");
}

// ---- waiting ----------------------------------------------------------------------------------

// Suspend the calling thread until *counter moves past gen.
inline void wait_until_changed(const uint64_t& counter, uint64_t gen, const char* what,
                               const std::source_location& site) {
  Thread& t = *g_current;
  t.wait_counter = &counter;
  t.wait_gen = gen;
  t.wait_what = what;
  t.wait_site = site;
  while (counter == gen) Fiber::switch_to(t.fiber, emulator().scheduler);
  t.wait_counter = nullptr;
}

// __syncthreads: every thread of the block, at the same __syncthreads.
inline void block_barrier(const std::source_location& site) {
  Run& r = emulator().run;
  Barrier& b = r.barrier;
  if (r.exited > 0)
    kernel_error("__syncthreads at " + where(site) + " after " + std::to_string(r.exited) +
                 " thread(s) of the block exited: undefined on the GPU (all threads of a block "
                 "must reach every __syncthreads)");
  if (b.arrived == 0) {
    b.site = site;
  } else if (!same_site(b.site, site)) {
    kernel_error("threads of one block wait at different __syncthreads: " + where(b.site) +
                 " and " + where(site) + " (a barrier in divergent code)");
  }
  const uint64_t gen = b.gen;
  if (++b.arrived == r.nthreads) {  // the last one releases the others, and lets the
    b.arrived = 0;                  // scheduler start the next phase from the first warp
    ++b.gen;
    Fiber::switch_to(g_current->fiber, emulator().scheduler);
    return;
  }
  wait_until_changed(b.gen, gen, "__syncthreads", site);
}

// What a warp collective hands back: the 8 words each lane deposited, [lane][word].
using LaneWords = uint32_t[8];

// A warp collective: deposit `bytes` of `value` and wait until every lane of `mask` has.
inline const LaneWords* warp_collective(const char* what, unsigned mask, const void* value,
                                        size_t bytes, const std::source_location& site) {
  Thread& t = *g_current;
  Warp& w = emulator().run.warps[size_t(t.warp)];
  const unsigned me = 1u << t.lane;
  auto hex = [](unsigned v) {
    char s[16];
    std::snprintf(s, sizeof s, "0x%08x", v);
    return std::string(s);
  };
  if ((mask & me) == 0)
    kernel_error(std::string(what) + " at " + where(site) + ": the calling lane is not in mask " +
                 hex(mask));
  if ((mask & ~w.live) != 0)
    kernel_error(std::string(what) + " at " + where(site) + ": mask " + hex(mask) +
                 " names lanes that have exited or do not exist (live lanes " + hex(w.live) +
                 "): undefined on the GPU");
  if (w.arrived == 0) {
    w.mask = mask, w.what = what, w.site = site;
  } else if (w.mask != mask || std::strcmp(w.what, what) != 0) {
    kernel_error("divergent warp: lanes " + hex(w.arrived) + " wait at " + w.what + " (" +
                 where(w.site) + ", mask " + hex(w.mask) + ") while this lane reached " + what +
                 " (" + where(site) + ", mask " + hex(mask) + ")");
  }
  const uint64_t gen = w.gen;
  std::memcpy(w.words[gen & 1][t.lane], value, bytes);
  w.arrived |= me;
  if (w.arrived == w.mask) {
    w.arrived = 0;
    ++w.gen;
  } else {
    wait_until_changed(w.gen, gen, what, site);
  }
  return w.words[gen & 1];
}

// A shuffle: every lane of the mask deposits v and reads the v of lane `src` (the PTX rules
// that pick src, width segments included, are in the four functions at the end of this file).
template <class T>
inline T shuffle(const char* what, unsigned mask, T v, int src, const std::source_location& site) {
  static_assert(std::is_arithmetic_v<T>, "CUDA shuffles integers and floating-point values");
  const LaneWords* words = warp_collective(what, mask, &v, sizeof(T), site);
  if ((mask >> src & 1u) == 0)
    kernel_error(std::string(what) + " at " + where(site) + ": lane " +
                 std::to_string(g_current->lane) + " reads lane " + std::to_string(src) +
                 ", which is not in the mask: undefined on the GPU");
  T r;
  std::memcpy(&r, words[src], sizeof(T));
  return r;
}

// A thread leaves its kernel: nobody may be waiting for it.
inline void thread_exit() {
  Thread& t = *g_current;
  Run& r = emulator().run;
  Warp& w = r.warps[size_t(t.warp)];
  w.live &= ~(1u << t.lane);
  if (w.arrived != 0 && (w.mask & (1u << t.lane)))
    kernel_error("lane exited while other lanes wait for it at " + std::string(w.what) + " (" +
                 where(w.site) + ")");
  if (r.barrier.arrived > 0)
    kernel_error("thread exited while " + std::to_string(r.barrier.arrived) +
                 " thread(s) of its block wait at __syncthreads (" + where(r.barrier.site) +
                 "): they would wait forever on the GPU");
  if (!t.cp_open.empty() || !t.cp_groups.empty())
    kernel_error("thread exited with cp.async copies it never waited for (cp.async.wait_group)");
  ++r.exited;
}

// ---- running one block ------------------------------------------------------------------------

inline void thread_main() {
  bool threw = false;
  try {
    (*emulator().run.body)();
  } catch (...) {
    threw = true;  // report outside the handler: this fiber never resumes
  }
  if (threw) kernel_error("a C++ exception escaped device code");
  thread_exit();
  g_current->done = true;
  Fiber::switch_to(g_current->fiber, emulator().scheduler);
  fatal("a finished emulated thread was resumed");
}

// Why nobody can move: "128 thread(s) at __syncthreads (f.cu:10); 32 at __shfl_sync (f.cu:20)".
inline std::string deadlock_report(unsigned nthreads) {
  std::map<std::string, int> at;
  for (unsigned i = 0; i < nthreads; ++i) {
    const Thread& t = *emulator().threads[i];
    if (!t.done && t.wait_counter != nullptr)
      ++at[std::string(t.wait_what) + " (" + where(t.wait_site) + ")"];
  }
  std::string s;
  for (const auto& [place, n] : at)
    s += (s.empty() ? "" : "; ") + std::to_string(n) + " at " + place;
  return s;
}

// Runs block `idx` of the current launch to the end; false if it failed (run.failure says why).
inline bool run_block(uint3 idx) {
  Emulator& e = emulator();
  Run& r = e.run;
  const unsigned n = r.nthreads;
  while (e.threads.size() < n) e.threads.push_back(std::make_unique<Thread>());
  g_block_idx = idx;
  r.exited = 0;
  r.barrier = Barrier{};
  r.warps.resize((n + 31) / 32);
  for (Warp& w : r.warps) w.live = w.arrived = w.mask = 0, w.gen = 0;  // (words: no need)
  for (unsigned i = 0; i < n; ++i) {
    Thread& t = *e.threads[i];
    t.warp = int(i / 32), t.lane = int(i % 32);
    t.idx = {i % r.block.x, (i / r.block.x) % r.block.y, i / (r.block.x * r.block.y)};
    t.done = false;
    t.wait_counter = nullptr;
    t.cp_open.clear();
    t.cp_groups.clear();
    t.fiber.start(&thread_main);
    r.warps[i / 32].live |= 1u << (i % 32);
  }
  e.shared.begin_block(r.dynamic_shared);
  // Warp by warp: resume the lanes of one warp until none of them can move (all wait at a
  // __syncthreads, or are done), then the next warp. Each warp thus runs from one barrier to
  // the next before the following warp starts, as far ahead of the others as possible; when
  // a __syncthreads releases, the next phase starts again from the first warp.
  const unsigned nwarps = unsigned(r.warps.size());
  unsigned remaining = n;
  while (remaining > 0) {
    bool moved = false;
    const uint64_t phase = r.barrier.gen;
    for (unsigned wk = 0; wk < nwarps && r.barrier.gen == phase; ++wk) {
      const unsigned w = e.reverse_order ? nwarps - 1 - wk : wk;
      const unsigned first = w * 32, end = first + 32 < n ? first + 32 : n;
      for (bool warp_moved = true; warp_moved && r.barrier.gen == phase;) {
        warp_moved = false;
        for (unsigned k = first; k < end && r.barrier.gen == phase; ++k) {
          Thread& t = *e.threads[e.reverse_order ? first + end - 1 - k : k];
          if (t.done || (t.wait_counter != nullptr && *t.wait_counter == t.wait_gen)) continue;
          g_current = &t;
          Fiber::switch_to(e.scheduler, t.fiber);
          g_current = nullptr;
          warp_moved = moved = true;
          if (r.failed) return false;
          if (t.done) --remaining;
        }
      }
    }
    if (!moved) {
      r.failed = true;
      r.failure = "deadlock: no thread of the block can move: " + deadlock_report(n) + " [" +
                  context() + "]";
      return false;
    }
  }
  return true;
}

// ---- shared memory as the transformed kernels see it -----------------------------------------
// transform.py turns `__shared__ T name[N];` into
//   auto& name = ::emu::shared_variable<T[N], align, "file:line name">();
// One variable per declaration and block: the first thread of a block to reach the declaration
// allocates it, the others get the same storage.
template <size_t N>
struct SiteName {
  char text[N];
  constexpr SiteName(const char (&s)[N]) {
    for (size_t i = 0; i < N; ++i) text[i] = s[i];
  }
};

template <class T, size_t Align, SiteName Name>
T& shared_variable() {
  static uint64_t serial = 0;  // the block this site last allocated in
  static size_t offset = 0;
  SharedMemory& s = emulator().shared;
  if (serial != s.serial()) {
    std::string error;
    offset = s.allocate_static(sizeof(T), Align > alignof(T) ? Align : alignof(T), error);
    if (!error.empty()) kernel_error(std::string(Name.text) + ": " + error);
    serial = s.serial();
  }
  return *reinterpret_cast<T*>(s.base() + offset);
}

// `extern __shared__ T name[];` becomes `T* name = ::emu::dynamic_shared<T>();`: the bytes the
// launch asked for (16-byte aligned), ending at the guard page.
template <class T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(emulator().shared.dynamic());
}

}  // namespace emu

// ---- device-side names ------------------------------------------------------------------------
#define threadIdx (static_cast<const uint3&>(::emu::g_current->idx))
#define blockIdx (static_cast<const uint3&>(::emu::g_block_idx))
#define blockDim (static_cast<const dim3&>(::emu::g_block_dim))
#define gridDim (static_cast<const dim3&>(::emu::g_grid_dim))

inline void __syncthreads(std::source_location site = std::source_location::current()) {
  emu::block_barrier(site);
}

// Shuffles (PTX shfl.sync): lanes form segments of `width` (a power of two <= 32). idx reads
// within the caller's segment; up, down and xor compute a lane and fall back to the caller's
// own value when that lane is before the start (up) or past the end (down, xor) of the
// caller's segment, so xor may read an earlier segment, as CUDA documents.
namespace emu {
inline int segment_first(int width) { return g_current->lane & ~(width - 1); }
}  // namespace emu

template <class T>
inline T __shfl_sync(unsigned mask, T v, int src_lane, int width = 32,
                     std::source_location site = std::source_location::current()) {
  const int src = emu::segment_first(width) | (src_lane & (width - 1));
  return emu::shuffle("__shfl_sync", mask, v, src, site);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32,
                        std::source_location site = std::source_location::current()) {
  const int lane = emu::g_current->lane, j = lane - int(delta);
  return emu::shuffle("__shfl_up_sync", mask, v, j >= emu::segment_first(width) ? j : lane, site);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32,
                          std::source_location site = std::source_location::current()) {
  const int lane = emu::g_current->lane, j = lane + int(delta);
  return emu::shuffle("__shfl_down_sync", mask, v,
                      j <= emu::segment_first(width) + width - 1 ? j : lane, site);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32,
                         std::source_location site = std::source_location::current()) {
  const int lane = emu::g_current->lane, j = lane ^ lane_mask;
  return emu::shuffle("__shfl_xor_sync", mask, v,
                      j <= emu::segment_first(width) + width - 1 ? j : lane, site);
}

// A warp barrier: every lane of the mask arrives before any leaves (a collective that carries
// nothing), so it checks, as the other collectives do, that the mask's lanes all reach it.
inline void __syncwarp(unsigned mask = 0xffffffffu,
                       std::source_location site = std::source_location::current()) {
  const uint32_t nothing = 0;
  emu::warp_collective("__syncwarp", mask, &nothing, sizeof nothing, site);
}

// Bit l of the result: lane l of the mask passed a true predicate.
inline unsigned __ballot_sync(unsigned mask, int predicate,
                              std::source_location site = std::source_location::current()) {
  const uint32_t p = predicate != 0;
  const emu::LaneWords* words = emu::warp_collective("__ballot_sync", mask, &p, sizeof p, site);
  unsigned r = 0;
  for (int l = 0; l < 32; ++l)
    if ((mask >> l & 1u) && words[l][0]) r |= 1u << l;
  return r;
}
