// Host<->device copies and the host's waits (engine/cuda/staging.h, engine/readback.h): a copy
// to the device never waits for the work queued before it, a training step queues everything
// and waits nowhere, a Readback reads what the tensor held when it was made, and the pinned
// pool stays bounded. engine::cuda::host_syncs() counts every wait whether or not the GPU had
// finished, so these counts are exact, the same on a GPU and on the emulator.
#include <chrono>
#include <cmath>
#include <cstring>

#include "engine/cuda/staging.h"
#include "engine/readback.h"
#include "models/model.h"
#include "nn/optimizer.h"
#include "tests/cuda/cuda_util.h"

namespace cuda_test {
namespace {

using engine::Readback;
using engine::cuda::host_syncs;
using engine::cuda::Staging;
using CudaStaging = CudaTest;

// The counts below assume the caching allocator: with ENGINE_CUDA_NO_CACHE=1 (gpu_check.sh's
// compute-sanitizer runs) every free waits for the GPU before cudaFree, so there the tests
// check the values only.
bool waits_countable() { return engine::cuda::caching_enabled(); }

// Floats in `chunks` staging chunks.
int64_t floats_in_chunks(double chunks) {
  return static_cast<int64_t>(chunks * Staging::kChunk / sizeof(float));
}

// Before 2026-11-26 the pool was two buffers used in turn: the third chunk of a copy waited for
// the first chunk's transfer, which was queued behind all the work before it.
TEST_F(CudaStaging, CopiesToTheDeviceNeverWaitForQueuedWork) {
  const int64_t n = floats_in_chunks(2.5) + 3;
  Tensor host = host_random({n}, 7);
  Tensor acc = Tensor::zeros({n}, DType::Float32, kGpu);
  const size_t syncs = host_syncs();
  for (int step = 0; step < 4; ++step) {
    Tensor x = host.to(kGpu);
    acc = engine::add(acc, engine::mul(x, x));  // work queued between the copies
  }
  if (waits_countable()) {
    EXPECT_EQ(host_syncs(), syncs) << "a copy to the device waited for the GPU";
  }
  Tensor ref = engine::mul(engine::mul(host, host), Tensor::full({}, 4.0));
  EXPECT_TRUE(testing_util::all_close(acc.to(engine::Device::cpu()), ref, 1e-6, 1e-6));
  if (waits_countable()) {
    EXPECT_EQ(host_syncs(), syncs + 1);  // the one copy back
  }
}

// A training step (copy the batch over, forward, loss, backward, AdamW, zero_grad) queues all
// its work without waiting once; reading each step's loss with a Readback a step later adds
// exactly one wait per read, and the losses read are those item() gives.
TEST_F(CudaStaging, ATrainingStepWaitsOnlyWhereItsLossIsRead) {
  Tensor x = host_random({4, 20, 20, 3}, 11);
  Tensor target = host_random({4, 2}, 12);
  auto make = [] {
    models::ModelOptions mo;
    mo.seed = 5;
    auto m = models::create("small_cnn", 2, models::Head::Mlp, mo);
    m->to(kGpu);
    m->train();
    return m;
  };
  // The losses read with item() right after each forward (a wait mid-step).
  std::vector<double> with_item;
  {
    auto model = make();
    nn::AdamW opt(model->parameters(), {.lr = 1e-3, .weight_decay = 0.05});
    for (int step = 0; step < 3; ++step) {
      Tensor loss = engine::mse_loss(model->forward(x.to(kGpu)), target.to(kGpu));
      with_item.push_back(loss.item());
      loss.backward();
      opt.step();
      opt.zero_grad();
    }
  }
  auto model = make();
  nn::AdamW opt(model->parameters(), {.lr = 1e-3, .weight_decay = 0.05});
  std::vector<double> read;
  Readback previous;
  const size_t syncs = host_syncs();
  for (int step = 0; step < 3; ++step) {
    Tensor loss = engine::mse_loss(model->forward(x.to(kGpu)), target.to(kGpu));
    loss.backward();
    opt.step();
    opt.zero_grad();
    if (step == 0 && waits_countable()) {
      EXPECT_EQ(host_syncs(), syncs) << "a training step waited for the GPU";
    }
    if (previous.started()) read.push_back(previous.get()[0]);
    previous = Readback(loss);
  }
  read.push_back(previous.get()[0]);
  if (waits_countable()) {
    EXPECT_EQ(host_syncs(), syncs + 3) << "one wait per loss read, none elsewhere";
  }
  ASSERT_EQ(read.size(), 3u);
  // The same steps as with item(), up to cuDNN's run-to-run rounding on a GPU.
  for (int step = 0; step < 3; ++step)
    EXPECT_NEAR(read[step], with_item[step], 1e-4 * std::abs(with_item[step])) << "step " << step;
}

// The copy is queued right behind the work that computed the tensor: what is read is the value
// then, not after work queued later (here an in-place fill), even if the tensor is freed.
TEST_F(CudaStaging, AReadbackReadsTheValueTheTensorHadWhenItWasMade) {
  Tensor host = host_random({1000}, 3);
  Tensor t = engine::sum(engine::mul(host.to(kGpu), host.to(kGpu)));
  Readback r(t);
  t.fill_(-1.0);
  Readback after(t);
  const double want = engine::sum(engine::mul(host, host)).item();
  t = Tensor();  // freed: the copies were queued before anything can reuse its block
  Tensor later = Tensor::full({4096}, 5.0, DType::Float32, kGpu);  // likely reuses it
  EXPECT_NEAR(r.get()[0], want, 1e-5 * want);
  EXPECT_EQ(after.get()[0], -1.0);
  EXPECT_EQ(Readback(later).get()[4095], 5.0);
}

// A Readback dropped without get() frees its chunk without waiting; more than a chunk's worth
// of values is read at once (and still right).
TEST_F(CudaStaging, UncollectedAndLargeReadbacks) {
  const size_t syncs = host_syncs();
  for (int i = 0; i < 3 * static_cast<int>(Staging::kMaxChunks); ++i) {
    Readback dropped(Tensor::full({2}, 1.0 * i, DType::Float32, kGpu));
  }
  if (waits_countable()) {
    EXPECT_EQ(host_syncs(), syncs) << "dropping a Readback waited";
  }
  EXPECT_LE(engine::cuda::pinned_staging_bytes(), (Staging::kMaxChunks + 1) * Staging::kChunk);
  const int64_t n = floats_in_chunks(0.6) + 1;  // 1.2 chunks as float64 values
  Tensor big = host_random({n}, 9);
  Readback r(big.to(kGpu));
  EXPECT_TRUE(same_values(Tensor::from_vector(r.get(), {n}), big.to(DType::Float64)));
}

// One copy larger than the pool's cap reuses chunks (waiting for them only if still in
// flight) and carries every byte; the pool does not grow past its cap.
TEST_F(CudaStaging, TheStagingPoolStaysBounded) {
  const int64_t n = floats_in_chunks(Staging::kMaxChunks + 5.5);
  Tensor host = Tensor::arange(n);  // each chunk's values differ: a chunk out of place shows
  Tensor dev = host.to(kGpu);
  EXPECT_LE(engine::cuda::pinned_staging_bytes(), (Staging::kMaxChunks + 2) * Staging::kChunk);
  Tensor back = dev.to(engine::Device::cpu());
  EXPECT_EQ(std::memcmp(back.raw_data(), host.raw_data(), n * sizeof(float)), 0);
}

// On a GPU: collecting a Readback does not wait for the work queued after it. (The emulator
// runs every kernel when it is queued, so there is nothing to measure there.)
TEST_F(CudaStaging, CollectingDoesNotWaitForLaterWork) {
  if (emulated()) GTEST_SKIP() << "the emulator runs work as it is queued: timing needs a GPU";
  if (!waits_countable()) GTEST_SKIP() << "ENGINE_CUDA_NO_CACHE=1: frees wait for the GPU";
  Tensor a = host_random({2048, 2048}, 4).to(kGpu);
  Tensor s = engine::sum(a);
  Readback r(s);
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  Tensor b = a;
  for (int i = 0; i < 40; ++i) b = engine::matmul(b, a);  // ~30 ms of queued work on an H100
  const auto t1 = Clock::now();
  r.get();
  const auto t2 = Clock::now();
  engine::cuda::synchronize();
  const auto t3 = Clock::now();
  const double get_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
  const double rest_ms = std::chrono::duration<double, std::milli>(t3 - t0).count();
  EXPECT_LT(get_ms, 0.25 * rest_ms) << "get() took " << get_ms << " ms of " << rest_ms
                                    << " ms of queued work";
}

}  // namespace
}  // namespace cuda_test
