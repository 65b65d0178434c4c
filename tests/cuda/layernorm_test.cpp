// CUDA layer_norm against the CPU, forward and backward: float32 through the LayerNorm lab
// (its specialised channel counts 96/192/384/768 and the generic fallbacks), float64 through
// the simple kernels; with and without the affine part.
#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using CudaLayerNorm = CudaTest;

TEST_F(CudaLayerNorm, MatchesCpu) {
  uint64_t seed = 1;
  for (DType t : {DType::Float32, DType::Float64})
    for (Shape s : {Shape{2, 7, 7, 96}, Shape{3, 5, 192}, Shape{17, 384}, Shape{4, 768},
                    Shape{1, 9, 9, 33}, Shape{300, 5}, Shape{1, 1}})
      for (bool affine : {true, false}) {
        const int64_t c = s.back();
        Tensor x = host_random(s, ++seed, -3, 5, t);
        Tensor w = affine ? host_random({c}, ++seed, 0.5, 1.5, t) : Tensor();
        Tensor b = affine ? host_random({c}, ++seed, -1, 1, t) : Tensor();
        OpFn f = [](const std::vector<Tensor>& in) {
          return engine::layer_norm(in[0], in[1], in[2], 1e-6);
        };
        // float32: row statistics in float on both sides, in different orders; dweight/dbias
        // sum up to 300 rows.
        const Tolerance tol =
            t == DType::Float32 ? Tolerance{2e-5, 2e-5, 1e-4, 1e-4} : Tolerance{1e-11, 1e-12};
        EXPECT_TRUE(matches_cpu(
            f, {x, w, b}, tol,
            "C=" + std::to_string(c) + (affine ? " affine " : " plain ") + dtype_str(t)));
      }
}

}  // namespace
}  // namespace cuda_test
