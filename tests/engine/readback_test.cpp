// engine/readback.h on the CPU: the values are copied when the Readback is made, so changing
// the tensor afterwards changes nothing read; moving hands the values over; misuse says so.
// (The GPU side, where the copy is queued and collected later: tests/cuda/staging_test.cpp.)
#include "engine/readback.h"

#include <gtest/gtest.h>

#include <vector>

#include "engine/engine.h"

namespace {

using engine::Readback;
using engine::Tensor;

TEST(Readback, ReadsTheValuesTheTensorHadWhenItWasMade) {
  Tensor t = Tensor::from_vector(std::vector<float>{1.5f, -2.f, 3.25f, 0.1f}, {2, 2});
  Readback r(t);
  EXPECT_TRUE(r.started());
  t.fill_(7.0);
  const std::vector<double> want = {1.5, -2.0, 3.25, static_cast<double>(0.1f)};
  EXPECT_EQ(r.get(), want);
  EXPECT_EQ(r.get(), want);  // a second call returns the same values
}

TEST(Readback, ReadsStridedAndIntegerTensorsInRowMajorOrder) {
  Tensor t = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  EXPECT_EQ(Readback(t.transpose(0, 1)).get(), (std::vector<double>{1, 4, 2, 5, 3, 6}));
  Tensor i = Tensor::arange(3, engine::DType::Int64);
  EXPECT_EQ(Readback(i).get(), (std::vector<double>{0, 1, 2}));
  EXPECT_TRUE(Readback(Tensor::zeros({0, 3})).get().empty());
}

TEST(Readback, MovingHandsTheValuesOver) {
  Readback a(Tensor::full({3}, 2.0));
  Readback b = std::move(a);
  EXPECT_FALSE(a.started());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_EQ(b.get(), (std::vector<double>{2, 2, 2}));
  Readback c;
  c = std::move(b);
  EXPECT_EQ(c.get(), (std::vector<double>{2, 2, 2}));
}

TEST(Readback, GetOnAnEmptyReadbackIsAnError) {
  Readback r;
  EXPECT_FALSE(r.started());
  EXPECT_THROW(r.get(), engine::Error);
  EXPECT_THROW(Readback{Tensor()}, engine::Error);
}

}  // namespace
