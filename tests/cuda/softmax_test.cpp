// CUDA softmax / log_softmax against the CPU, forward and backward, on every layout the
// launcher distinguishes: short rows (a warp per row), long rows (a block per row), a middle
// dim (a thread per column), a 0-d tensor; float32 and float64.
#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using CudaSoftmax = CudaTest;

struct Case {
  Shape shape;
  int64_t dim;
  const char* what;
};

const std::vector<Case> kCases = {
    {{37, 1000}, -1, "short rows: warp per row"},
    {{3, 5001}, 1, "long rows: block per row"},
    {{1, 1}, 0, "one element"},
    {{4, 17, 9}, 1, "middle dim: thread per column"},
    {{5, 3, 2, 7}, 0, "outer dim"},
    {{}, 0, "0-d"},
};

TEST_F(CudaSoftmax, ForwardAndBackwardMatchCpu) {
  uint64_t seed = 1;
  for (const Case& c : kCases)
    for (bool log : {false, true})
      for (DType t : {DType::Float32, DType::Float64}) {
        // Scores in [-8, 8): exp spans six orders of magnitude, the max subtraction matters.
        Tensor x = host_random(c.shape, ++seed, -8, 8, t);
        const int64_t dim = c.dim;
        OpFn f = [dim, log](const std::vector<Tensor>& in) {
          return log ? engine::log_softmax(in[0], dim) : engine::softmax(in[0], dim);
        };
        // Sums in double on both sides; float32 differs by expf vs std::exp (2 ulp) and the
        // final roundings.
        const Tolerance tol = t == DType::Float32 ? Tolerance{1e-5, 1e-6} : Tolerance{1e-12, 1e-14};
        EXPECT_TRUE(matches_cpu(
            f, {x}, tol,
            std::string(c.what) + (log ? " log_softmax " : " softmax ") + dtype_str(t)));
      }
}

TEST_F(CudaSoftmax, RowsSumToOneAndHugeScoresStayFinite) {
  std::vector<double> v(2 * 3000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = (i % 7) * 1e4;  // exp(1e4) overflows unshifted
  Tensor y = engine::softmax(Tensor::from_vector(v, {2, 3000}).to(kGpu), 1);
  Tensor s = engine::sum(y, {1});
  EXPECT_TRUE(testing_util::all_close(s, Tensor::ones({2}, DType::Float64), 1e-12, 0));
}

}  // namespace
}  // namespace cuda_test
