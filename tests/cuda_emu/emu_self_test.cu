// tests/cuda_emu/emu_self_test.cu — the CUDA emulator (tools/cuda_emu) checked on its own:
// the warp intrinsics and PTX it defines against the CUDA / PTX documentation, the errors it
// must report (each one a bug the GPU would hang on or compute garbage from), its guard pages,
// and that its fibers are reused rather than leaked. A CUDA source, built only through
// transform.py (tests/cuda_emu/CMakeLists.txt).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

template <class T>
class Buffer {  // device memory, freed on scope exit
 public:
  explicit Buffer(size_t n) : n_(n) {
    EXPECT_EQ(cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(T)), cudaSuccess);
  }
  ~Buffer() { cudaFree(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* get() { return p_; }
  std::vector<T> download() const {
    std::vector<T> h(n_);
    EXPECT_EQ(cudaMemcpy(h.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }

 private:
  T* p_ = nullptr;
  size_t n_;
};

// The message of the error the last launch left ("" if none).
std::string launch_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? "" : cudaGetErrorString(e);
}

// ---- warp intrinsics ---------------------------------------------------------------------------

__global__ void shuffles(int* out, int width) {
  const int v = 100 + int(threadIdx.x);
  int* o = out + threadIdx.x * 4;
  o[0] = __shfl_sync(0xffffffffu, v, 3, width);
  o[1] = __shfl_xor_sync(0xffffffffu, v, 5, width);
  o[2] = __shfl_up_sync(0xffffffffu, v, 2, width);
  o[3] = __shfl_down_sync(0xffffffffu, v, 3, width);
}

// CUDA Programming Guide, "Warp Shuffle Functions": lanes form segments of `width`; idx reads
// srcLane % width of the caller's segment; up and down return the caller's own value when the
// source falls outside its segment; xor may read an earlier segment but not a later one.
TEST(EmuWarp, ShufflesFollowTheCudaRules) {
  for (int width : {32, 8, 4}) {
    SCOPED_TRACE("width " + std::to_string(width));
    Buffer<int> out(64 * 4);
    shuffles<<<1, 64>>>(out.get(), width);
    ASSERT_EQ(launch_error(), "");
    const std::vector<int> got = out.download();
    for (int t = 0; t < 64; ++t) {
      const int lane = t % 32, warp0 = t - lane, seg = lane - lane % width;
      auto value = [&](int l) { return 100 + warp0 + l; };
      const int x = lane ^ 5;
      EXPECT_EQ(got[t * 4 + 0], value(seg + 3 % width)) << "thread " << t;
      EXPECT_EQ(got[t * 4 + 1], value(x < seg + width ? x : lane)) << "thread " << t;
      EXPECT_EQ(got[t * 4 + 2], value(lane % width >= 2 ? lane - 2 : lane)) << "thread " << t;
      EXPECT_EQ(got[t * 4 + 3], value(lane % width + 3 < width ? lane + 3 : lane))
          << "thread " << t;
    }
  }
}

__global__ void ballots(unsigned* out) {
  out[threadIdx.x] = __ballot_sync(0xffffffffu, threadIdx.x % 3 == 0);
}

TEST(EmuWarp, BallotCollectsOneBitPerLane) {
  Buffer<unsigned> out(64);
  ballots<<<1, 64>>>(out.get());
  ASSERT_EQ(launch_error(), "");
  const std::vector<unsigned> got = out.download();
  for (int t = 0; t < 64; ++t) {
    unsigned want = 0;
    for (int l = 0; l < 32; ++l)
      if ((t / 32 * 32 + l) % 3 == 0) want |= 1u << l;
    EXPECT_EQ(got[t], want) << "thread " << t;
  }
}

// Every lane reads one shared word, then lane 0 overwrites it: the warp barrier between them
// keeps each lane's read ahead of the write, under both schedules (EMU_SCHEDULE=reverse runs
// lane 0 last, the default runs it first: without the barrier one of them reads 7).
__global__ void warp_barrier(int* out) {
  __shared__ int word;
  if (threadIdx.x == 0) word = 5;
  __syncthreads();
  const int seen = word;
  __syncwarp();
  if (threadIdx.x == 0) word = 7;
  out[threadIdx.x] = seen;
}

TEST(EmuWarp, SyncwarpOrdersReadsBeforeALaterWrite) {
  Buffer<int> out(32);
  warp_barrier<<<1, 32>>>(out.get());
  ASSERT_EQ(launch_error(), "");
  for (int v : out.download()) EXPECT_EQ(v, 5);
}

// ---- blocks and shared memory ------------------------------------------------------------------

// Block sums of 0..255 + 1000 * block: shared memory is per block, the barrier orders it.
__global__ void block_sums(float* out) {
  __shared__ float s[256];
  s[threadIdx.x] = float(threadIdx.x + 1000 * blockIdx.x);
  __syncthreads();
  for (int h = 128; h > 0; h /= 2) {
    if (int(threadIdx.x) < h) s[threadIdx.x] += s[threadIdx.x + h];
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

TEST(EmuBlock, BarriersAndSharedMemoryPerBlock) {
  Buffer<float> out(7);
  block_sums<<<7, 256>>>(out.get());
  ASSERT_EQ(launch_error(), "");
  const std::vector<float> got = out.download();
  for (int b = 0; b < 7; ++b) EXPECT_EQ(got[b], 255.f * 256 / 2 + 1000.f * 256 * b);
}

// Reads shared memory before anything writes it, and reports where the arrays landed.
__global__ void fresh_shared(uint32_t* out, uintptr_t* where) {
  __shared__ float a[3];
  __shared__ float b[5];
  __shared__ __align__(16) float c[4];
  std::memcpy(out + blockIdx.x, &b[1], 4);
  if (blockIdx.x == 0) {
    where[0] = reinterpret_cast<uintptr_t>(&a[0]);
    where[1] = reinterpret_cast<uintptr_t>(&b[0]);
    where[2] = reinterpret_cast<uintptr_t>(&c[0]);
  }
}

TEST(EmuBlock, FreshSharedMemoryIsPoisonAndMinimallyAligned) {
  Buffer<uint32_t> out(4);
  Buffer<uintptr_t> where(3);
  fresh_shared<<<4, 32>>>(out.get(), where.get());
  ASSERT_EQ(launch_error(), "");
  for (uint32_t v : out.download())
    EXPECT_TRUE(v == 0xFFFFFFFFu || v == 0xCDCDCDCDu) << std::hex << v;
  const std::vector<uintptr_t> at = where.download();
  EXPECT_EQ(at[0] % 4, 0u);
  EXPECT_NE(at[0] % 8, 0u) << "a float array lands 4 bytes past an 8-byte boundary";
  EXPECT_NE(at[1] % 8, 0u);
  EXPECT_EQ(at[2] % 16, 0u) << "__align__(16) is honoured";
}

// ---- errors the emulator must report -----------------------------------------------------------

__global__ void divergent_barrier() {
  if (threadIdx.x < 32) {
    __syncthreads();
  } else {
    __syncthreads();
  }
}
__global__ void barrier_after_exit() {
  if (threadIdx.x >= 32) return;
  __syncthreads();
}
__global__ void shuffle_with_exited_lane(int* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_sync(0xffffffffu, int(threadIdx.x), 0);
}
__global__ void divergent_collectives(int* out) {
  if (threadIdx.x < 16)
    out[threadIdx.x] = int(__ballot_sync(0xffffffffu, 1));
  else
    out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
}
__global__ void deadlock(int* out) {
  if (threadIdx.x == 31) {
    __syncthreads();
  } else {
    out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
  }
}
__global__ void big_static_shared(float* out) {
  __shared__ float big[13000];  // 52 KB: nvcc refuses more than 48 KB of static shared memory
  big[threadIdx.x] = 1.f;
  out[0] = big[0];
}
__global__ void uses_dynamic_shared(float* out) {
  extern __shared__ float dyn[];
  dyn[threadIdx.x] = float(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = dyn[31 - threadIdx.x];
}

TEST(EmuErrors, ReportsWhatTheGpuWouldHangOrFailOn) {
  Buffer<int> ints(64);
  Buffer<float> floats(64);
  struct Case {
    const char* what;
    std::function<void()> launch;
    const char* needle;
  };
  const Case cases[] = {
      {"divergent __syncthreads", [] { divergent_barrier<<<1, 64>>>(); },
       "different __syncthreads"},
      {"__syncthreads after exit", [] { barrier_after_exit<<<1, 64>>>(); }, "exited"},
      {"shuffle naming an exited lane", [&] { shuffle_with_exited_lane<<<1, 32>>>(ints.get()); },
       "exited"},
      {"ballot and shuffle in one warp", [&] { divergent_collectives<<<1, 32>>>(ints.get()); },
       "divergent warp"},
      {"deadlock", [&] { deadlock<<<1, 32>>>(ints.get()); }, "deadlock"},
      {"52 KB of static shared memory", [&] { big_static_shared<<<1, 32>>>(floats.get()); },
       "48 KB"},
      {"64 KB of dynamic shared memory without opt-in",
       [&] { uses_dynamic_shared<<<1, 32, 64 * 1024>>>(floats.get()); }, "cudaFuncSetAttribute"},
      {"host pointer argument",
       [] {
         static float host[4];
         uses_dynamic_shared<<<1, 32, 128>>>(host);
       },
       "not device memory"},
      {"2048-thread block", [&] { uses_dynamic_shared<<<1, 2048, 128>>>(floats.get()); }, "1024"},
      {"empty grid", [&] { uses_dynamic_shared<<<0, 32, 128>>>(floats.get()); }, "empty grid"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    c.launch();
    const std::string e = launch_error();
    EXPECT_NE(e.find(c.needle), std::string::npos) << "error: '" << e << "'";
    EXPECT_EQ(launch_error(), "") << "an error is handed out once";
  }
  // With the opt-in the 64 KB launch runs.
  ASSERT_EQ(cudaFuncSetAttribute(uses_dynamic_shared, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 64 * 1024),
            cudaSuccess);
  uses_dynamic_shared<<<1, 32, 64 * 1024>>>(floats.get());
  ASSERT_EQ(launch_error(), "");
  EXPECT_EQ(floats.download()[0], 31.f);
}

// ---- guard pages: a bad access kills the program with an explanation ---------------------------

__device__ int deep(int n) {
  volatile char frame[1024];
  frame[0] = char(n);
  return n == 0 ? 0 : deep(n - 1) + frame[0];
}
__global__ void recurse(int* out, int n) { out[threadIdx.x] = deep(n); }
__global__ void write_at(float* p, long i) { p[i] = 1.f; }
__global__ void shared_overrun(float* out) {
  extern __shared__ float dyn[];
  if (threadIdx.x == 0) dyn[16] = 1.f;  // 64 bytes asked for: float 16 is the first one past
  out[0] = dyn[0];
}

TEST(EmuGuardPagesDeathTest, OverrunsFailLoudly) {
  Buffer<int> ints(32);
  Buffer<float> floats(100);
  // Moderate recursion fits in a fiber stack; a runaway one hits the guard page.
  recurse<<<1, 32>>>(ints.get(), 20);
  ASSERT_EQ(launch_error(), "");
  EXPECT_DEATH(recurse<<<1, 32>>>(ints.get(), 1 << 20), "stack overflow of an emulated thread");
  // 100 floats: the buffer ends at byte 512 (cudaMalloc's 256-byte granule); float 600 is in
  // the guard page that follows. (Under ENGINE_EMU_ASAN, AddressSanitizer reports it first.)
  EXPECT_DEATH(write_at<<<1, 1>>>(floats.get(), 600),
               "device buffer accessed out of bounds|heap-buffer-overflow");
  EXPECT_DEATH(shared_overrun<<<1, 32, 64>>>(floats.get()),
               "past the end of the block's dynamic shared");
}

// ---- fibers are reused -------------------------------------------------------------------------

long resident_kb() {
  long pages = 0, resident = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f != nullptr) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * 4;
}

__global__ void touch(float* out) {
  __shared__ float s[1024];
  s[threadIdx.x] = float(threadIdx.x);
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] =
      s[1023 - threadIdx.x] + __shfl_xor_sync(0xffffffffu, 1.f, 1);
}

TEST(EmuFibers, ManyLaunchesDoNotGrowMemory) {
  Buffer<float> out(4 * 1024);
  for (int i = 0; i < 20; ++i) touch<<<4, 1024>>>(out.get());  // warm up: the pool reaches 1024
  ASSERT_EQ(launch_error(), "");
  const long before = resident_kb();
  for (int i = 0; i < 300; ++i) touch<<<4, 1024>>>(out.get());
  ASSERT_EQ(launch_error(), "");
  const long after = resident_kb();
  EXPECT_LT(after - before, 2048) << "resident memory grew from " << before << " KB to " << after
                                  << " KB";
  EXPECT_EQ(emu::emulator().threads.size(), 1024u) << "one fiber per thread of the largest block";
  EXPECT_EQ(out.download()[5], 1018.f + 1.f);
}

// EMU_KERNELS=skip (here switched by the test): launches are still checked, but no kernel runs.
TEST(EmuSkip, SkippedLaunchesAreCheckedButRunNothing) {
  Buffer<float> out(4 * 1024);
  touch<<<4, 1024>>>(out.get());
  ASSERT_EQ(launch_error(), "");
  const float written = out.download()[5];
  ASSERT_EQ(written, 1018.f + 1.f);
  ASSERT_EQ(cudaMemset(out.get(), 0, 4 * 1024 * sizeof(float)), cudaSuccess);

  emu::set_kernels_skipped(true);
  touch<<<4, 1024>>>(out.get());
  const std::string skipped_error = launch_error();
  touch<<<1, 2048>>>(out.get());  // a configuration the GPU refuses is still refused
  const std::string bad_config_error = launch_error();
  emu::set_kernels_skipped(false);

  EXPECT_EQ(skipped_error, "");
  EXPECT_EQ(out.download()[5], 0.f) << "a skipped kernel wrote its output";
  EXPECT_NE(bad_config_error.find("1024"), std::string::npos) << bad_config_error;
  touch<<<4, 1024>>>(out.get());
  ASSERT_EQ(launch_error(), "");
  EXPECT_EQ(out.download()[5], written) << "kernels run again once skipping is switched off";
}

// ---- inline PTX
// ----------------------------------------------------------------------------------

__device__ uint32_t tf32(float v) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(v));
  return r;
}
__global__ void round_tf32(const float* in, uint32_t* out) {
  out[threadIdx.x] = tf32(in[threadIdx.x]);
}

TEST(EmuPtx, CvtRnaTf32RoundsToNearestTiesAway) {
  const float one = 1.f, ulp = std::ldexp(1.f, -10);  // TF32 keeps 10 mantissa bits
  const std::vector<float> in = {one + ulp / 2,       // tie: away from zero
                                 -(one + ulp / 2),    // tie, negative: away from zero
                                 one + ulp / 2 - std::ldexp(1.f, -23),  // just below: down
                                 one + 3 * ulp / 4, 3.f};
  const std::vector<float> want = {one + ulp, -(one + ulp), one, one + ulp, 3.f};
  Buffer<float> d_in(in.size());
  Buffer<uint32_t> d_out(in.size());
  cudaMemcpy(d_in.get(), in.data(), in.size() * 4, cudaMemcpyHostToDevice);
  round_tf32<<<1, int(in.size())>>>(d_in.get(), d_out.get());
  ASSERT_EQ(launch_error(), "");
  const std::vector<uint32_t> got = d_out.download();
  for (size_t i = 0; i < in.size(); ++i) {
    float f;
    std::memcpy(&f, &got[i], 4);
    EXPECT_EQ(f, want[i]) << "input " << in[i];
  }
}

// One m16n8k8 product: each lane loads its fragments per the PTX ISA table, independently of
// the emulator's code (g = lane / 4, t = lane % 4).
__global__ void mma_16x8x8(const float* a, const float* b, float* d) {  // a [16][8], b [8][8]
  const int lane = int(threadIdx.x), g = lane / 4, t = lane % 4;
  const uint32_t a0 = tf32(a[g * 8 + t]), a1 = tf32(a[(g + 8) * 8 + t]);
  const uint32_t a2 = tf32(a[g * 8 + t + 4]), a3 = tf32(a[(g + 8) * 8 + t + 4]);
  const uint32_t b0 = tf32(b[t * 8 + g]), b1 = tf32(b[(t + 4) * 8 + g]);
  float c[4] = {1.f, 2.f, 3.f, 4.f};
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  d[g * 8 + 2 * t] = c[0];
  d[g * 8 + 2 * t + 1] = c[1];
  d[(g + 8) * 8 + 2 * t] = c[2];
  d[(g + 8) * 8 + 2 * t + 1] = c[3];
}

TEST(EmuPtx, MmaM16n8k8MatchesAPlainProduct) {
  std::vector<float> a(16 * 8), b(8 * 8);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(int(i * 7 % 11) - 5);  // small integers:
  for (size_t i = 0; i < b.size(); ++i) b[i] = float(int(i * 5 % 9) - 4);   // exact in TF32
  Buffer<float> da(a.size()), db(b.size()), dd(16 * 8);
  cudaMemcpy(da.get(), a.data(), a.size() * 4, cudaMemcpyHostToDevice);
  cudaMemcpy(db.get(), b.data(), b.size() * 4, cudaMemcpyHostToDevice);
  mma_16x8x8<<<1, 32>>>(da.get(), db.get(), dd.get());
  ASSERT_EQ(launch_error(), "");
  const std::vector<float> d = dd.download();
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 8; ++n) {
      float want = float(1 + (r >= 8) * 2 + n % 2);  // C as the lanes initialised it
      for (int k = 0; k < 8; ++k) want += a[r * 8 + k] * b[k * 8 + n];
      EXPECT_EQ(d[r * 8 + n], want) << "row " << r << " col " << n;
    }
}

// ldmatrix.x4 from a 32-row tile of 4 words per row (16 bytes), word w of row r holding 1000 r + w.
// Lane L names tile row (7 L) % 32, so a row's place in the matrices is not its place in memory.
// The PTX ISA's rule, written out independently of the emulator: register j of lane L holds
// word L % 4 of the row named by lane 8 j + L / 4. misalign_bytes != 0 breaks the alignment.
__device__ int named_row(int lane) { return lane * 7 % 32; }
__global__ void ldmatrix_x4(uint32_t* out, int misalign_bytes) {
  __shared__ __align__(16) uint32_t tile[32 * 4 + 4];
  const int lane = int(threadIdx.x);
  for (int i = lane; i < 32 * 4 + 4; i += 32) tile[i] = 1000u * uint32_t(i / 4) + uint32_t(i % 4);
  __syncwarp();
  const unsigned row = unsigned(__cvta_generic_to_shared(tile + 4 * named_row(lane))) +
                       unsigned(misalign_bytes);
  uint32_t d[4];
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(row));
  for (int j = 0; j < 4; ++j) out[lane * 4 + j] = d[j];
}

TEST(EmuPtx, LdmatrixX4HandsEachLaneItsWordOfEachMatrix) {
  Buffer<uint32_t> out(32 * 4);
  ldmatrix_x4<<<1, 32>>>(out.get(), 0);
  ASSERT_EQ(launch_error(), "");
  const std::vector<uint32_t> got = out.download();
  for (int lane = 0; lane < 32; ++lane)
    for (int j = 0; j < 4; ++j) {
      const int row = (8 * j + lane / 4) * 7 % 32;
      EXPECT_EQ(got[size_t(lane * 4 + j)], 1000u * uint32_t(row) + uint32_t(lane % 4))
          << "lane " << lane << " register " << j;
    }
  ldmatrix_x4<<<1, 32>>>(out.get(), 4);
  EXPECT_NE(launch_error().find("not 16-byte aligned"), std::string::npos);
}

// 16 bytes of which src-size 8 are read, the rest zero-filled; visible after the wait.
__global__ void async_copy(const float* src, float* before, float* after) {
  extern __shared__ float4 stage[];
  float* s = reinterpret_cast<float*>(stage);
  const unsigned dst = unsigned(__cvta_generic_to_shared(s));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(8)
               : "memory");
  asm volatile("cp.async.commit_group;\n" ::: "memory");
  for (int i = 0; i < 4; ++i) before[i] = s[i];
  asm volatile("cp.async.wait_group %0;\n" ::"n"(0) : "memory");
  for (int i = 0; i < 4; ++i) after[i] = s[i];
}

TEST(EmuPtx, CpAsyncZeroFillsAndLandsByTheWait) {
  const std::vector<float> in = {1.f, 2.f, 3.f, 4.f};
  Buffer<float> src(4), before(4), after(4);
  cudaMemcpy(src.get(), in.data(), 16, cudaMemcpyHostToDevice);
  async_copy<<<1, 1, 16>>>(src.get(), before.get(), after.get());
  ASSERT_EQ(launch_error(), "");
  EXPECT_EQ(after.download(), (std::vector<float>{1.f, 2.f, 0.f, 0.f}));
  if (!emu::ptx::copies_early()) {  // late (default): before the wait, still the poison
    for (float v : before.download()) {
      uint32_t u;
      std::memcpy(&u, &v, 4);
      EXPECT_TRUE(u == 0xFFFFFFFFu || u == 0xCDCDCDCDu) << std::hex << u;
    }
  }
}

}  // namespace
