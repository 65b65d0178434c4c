// tests/common/check.h — helpers shared by the test suites: random inputs, closeness with a
// per-op tolerance, and gradient checking by central finite differences.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace testing_util {

using engine::Shape;
using engine::Tensor;

// Uniform in [low, high), float64 by default so finite differences are meaningful.
Tensor random(const Shape& shape, uint64_t seed, double low = -1.0, double high = 1.0,
              engine::DType dtype = engine::DType::Float64);

// |got - ref| <= atol + rtol * |ref| elementwise; on failure reports the worst element.
::testing::AssertionResult all_close(const Tensor& got, const Tensor& ref, double rtol,
                                     double atol);
::testing::AssertionResult all_close(const std::vector<double>& got,
                                     const std::vector<double>& ref, double rtol, double atol);

// Checks the analytic gradient of sum(f(inputs) * w) (w a fixed random weight, so every
// output element matters differently) against central differences with step eps.
// Inputs must be float64 leaves with requires_grad set.
::testing::AssertionResult grad_check(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                      const std::vector<Tensor>& inputs, double eps = 1e-6,
                                      double rtol = 1e-5, double atol = 1e-7);

// Runs f, which must throw engine::Error whose message contains every one of `parts`.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts);

}  // namespace testing_util
