// engine::profiler on the GPU clock: ranges are CUDA events on the compute stream, so opening
// and closing them makes the host wait nowhere, and stop() waits exactly once. The names and
// phases are those of the host clock (tests/engine/profiler_test.cpp); the times are the GPU's.
#include <map>

#include "engine/profiler.h"
#include "nn/optimizer.h"
#include "tests/cuda/cuda_util.h"

namespace cuda_test {
namespace {

using engine::profiler::Phase;
using CudaProfiler = CudaTest;

TEST_F(CudaProfiler, TimesATrainingStepOnTheGpuClockWaitingOnlyAtStop) {
  Tensor x = host_random({37, 19}, 1).to(kGpu);
  Tensor target = host_random({37, 5}, 2).to(kGpu);
  Tensor w1 = host_random({23, 19}, 3).to(kGpu).requires_grad_();
  Tensor b1 = host_random({23}, 4).to(kGpu).requires_grad_();
  Tensor w2 = host_random({5, 23}, 5).to(kGpu).requires_grad_();
  nn::AdamW opt({w1, b1, w2}, nn::AdamWOptions{});
  engine::cuda::synchronize();

  const size_t waits = engine::cuda::host_syncs();
  engine::profiler::Session session(kGpu);
  Tensor loss = mse_loss(engine::mlp(x, w1, b1, w2), target);
  loss.backward();
  opt.step();
  const size_t queued = engine::cuda::host_syncs();
  const engine::profiler::Profile p = session.stop();
  // With ENGINE_CUDA_NO_CACHE=1 (the sanitizer runs) every free waits for the GPU: counts
  // are exact only with the caching allocator.
  if (engine::cuda::caching_enabled()) {
    EXPECT_EQ(queued, waits) << "marking a range must not wait for the GPU";
    EXPECT_EQ(engine::cuda::host_syncs(), waits + 1) << "stop() waits once, for the last event";
  }

  EXPECT_TRUE(p.device().is_cuda());
  std::map<std::pair<std::string, Phase>, int64_t> calls;
  for (const auto& t : p.totals()) calls[{t.name, t.phase}] = t.calls;
  EXPECT_EQ((calls[{"mlp", Phase::Forward}]), 1);
  EXPECT_EQ((calls[{"mse_loss", Phase::Forward}]), 1);
  EXPECT_EQ((calls[{"mlp", Phase::Backward}]), 1);
  EXPECT_EQ((calls[{"adamw_step", Phase::Optimizer}]), 1);
  double end = 0;
  for (const auto& e : p.events()) {
    EXPECT_GE(e.start_us, end) << e.name << ": GPU ranges on one stream cannot overlap";
    EXPECT_GE(e.duration_us, 0) << e.name;
    end = e.start_us + e.duration_us;
  }
  EXPECT_LE(end, p.span_us() + 1e-3);
  // The host's clock, read around each op as it was queued: the same order, no overlap.
  double host_end = 0;
  for (const auto& e : p.events()) {
    EXPECT_GE(e.host_start_us, host_end) << e.name;
    EXPECT_GE(e.host_duration_us, 0) << e.name;
    host_end = e.host_start_us + e.host_duration_us;
  }
  EXPECT_LE(host_end, p.host_span_us());
  EXPECT_LE(p.host_busy_us(), p.host_span_us());
  const std::string table = p.table();
  for (const char* part : {"span (GPU clock)", "host ms", "the host took"})
    EXPECT_NE(table.find(part), std::string::npos) << part << "\n" << table;
  // The trace holds every op twice: on the GPU's clock (pid 0) and on the host's (pid 1).
  const std::string trace = p.chrome_trace();
  size_t complete = 0;
  for (size_t at = trace.find("\"ph\": \"X\""); at != std::string::npos;
       at = trace.find("\"ph\": \"X\"", at + 1))
    ++complete;
  EXPECT_EQ(complete, 2 * p.events().size());
  EXPECT_NE(trace.find("host (queuing the ops)"), std::string::npos);
}

// More ranges than the clock creates events for at once (4096): the pool grows mid-session and
// every range keeps its own pair of events.
TEST_F(CudaProfiler, ManyRangesGrowTheEventPool) {
  Tensor x = host_random({64}, 6).to(kGpu);
  engine::profiler::Session session(kGpu);
  constexpr int kRanges = 2500;  // 5000 marks and the session's two
  for (int i = 0; i < kRanges; ++i) {
    engine::profiler::Range r(i % 2 ? "odd" : "even");
    if (i % 500 == 0) x = engine::add(x, x);  // some of them around real work
  }
  const engine::profiler::Profile p = session.stop();
  ASSERT_EQ(p.events().size(), static_cast<size_t>(kRanges));
  double end = 0;
  for (const auto& e : p.events()) {
    EXPECT_GE(e.start_us, end);
    end = e.start_us + e.duration_us;
  }
  EXPECT_EQ(p.totals().size(), 2u);
}

}  // namespace
}  // namespace cuda_test
