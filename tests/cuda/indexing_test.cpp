// CUDA cat / stack / index_select / gather against the CPU. The backwards gather instead of
// scattering, adding in the CPU's order, so with repeated indices they must agree bit for bit;
// int64 payloads (labels) go through the same copies; a bad index is an error, not a fault.
#include "tests/cuda/op_check.h"

namespace cuda_test {
namespace {

using CudaIndexing = CudaTest;

Tensor index_tensor(const std::vector<int64_t>& v) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())});
}

TEST_F(CudaIndexing, CatAndStackMatchCpuAlongEveryDim) {
  uint64_t seed = 1;
  for (DType t : {DType::Float32, DType::Float64})
    for (int64_t dim : {0, 1, 2, -1}) {
      Shape a{3, 5, 7}, b{3, 5, 7}, c{3, 5, 7};
      const int64_t d = dim < 0 ? 2 : dim;
      a[d] = 2, b[d] = 1, c[d] = 4;
      Tensor xa = host_random(a, ++seed, -1, 1, t), xb = host_random(b, ++seed, -1, 1, t);
      Tensor xc = host_random(c, ++seed, -1, 1, t);
      OpFn f = [dim](const std::vector<Tensor>& in) { return engine::cat(in, dim); };
      EXPECT_TRUE(matches_cpu(f, {xa, xb, xc}, {0, 0}, "cat dim " + std::to_string(dim)));
      OpFn g = [dim](const std::vector<Tensor>& in) { return engine::stack(in, dim); };
      Tensor ya = host_random({3, 5, 7}, ++seed, -1, 1, t),
             yb = host_random({3, 5, 7}, ++seed, -1, 1, t);
      EXPECT_TRUE(matches_cpu(g, {ya, yb}, {0, 0}, "stack dim " + std::to_string(dim)));
    }
  // int64 (labels) and a transposed (non-contiguous) input.
  Tensor la = Tensor::from_vector(std::vector<int64_t>{1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor lb = Tensor::from_vector(std::vector<int64_t>{-7, 8}, {2, 1});
  EXPECT_TRUE(same_values(engine::cat({la.to(kGpu), lb.to(kGpu)}, 1), engine::cat({la, lb}, 1)));
  Tensor tr = host_random({4, 6}, 99).transpose(0, 1);
  EXPECT_TRUE(same_values(engine::cat({tr.to(kGpu), tr.to(kGpu)}, 0), engine::cat({tr, tr}, 0)));
}

TEST_F(CudaIndexing, IndexSelectWithRepeatsIsBitExact) {
  uint64_t seed = 20;
  const std::vector<int64_t> idx = {4, 0, 4, 2, 4, 6, 0};  // repeats, and rows never picked
  for (DType t : {DType::Float32, DType::Float64})
    for (int64_t dim : {0, 1, 2}) {
      Shape s{5, 7, 9};
      s[dim] = 7;
      Tensor x = host_random(s, ++seed, -1, 1, t);
      Tensor i = index_tensor(idx);
      Tensor xc = x.detach().requires_grad_(), xg = x.to(kGpu).requires_grad_();
      Tensor yc = engine::index_select(xc, dim, i), yg = engine::index_select(xg, dim, i.to(kGpu));
      EXPECT_TRUE(same_values(yg, yc)) << "dim " << dim;
      Tensor w = host_random(yc.shape(), ++seed, -1, 1, t);
      engine::sum(engine::mul(yc, w)).backward();
      engine::sum(engine::mul(yg, w.to(kGpu))).backward();
      EXPECT_TRUE(same_values(xg.grad(), xc.grad())) << "grad, dim " << dim << " " << t;
    }
  // int64 payload.
  Tensor labels = Tensor::from_vector(std::vector<int64_t>{10, 11, 12, 13, 14, 15, 16}, {7});
  EXPECT_TRUE(same_values(engine::index_select(labels.to(kGpu), 0, index_tensor(idx).to(kGpu)),
                          engine::index_select(labels, 0, index_tensor(idx))));
}

TEST_F(CudaIndexing, GatherWithRepeatsIsBitExact) {
  uint64_t seed = 40;
  for (DType t : {DType::Float32, DType::Float64})
    for (int64_t dim : {0, 1, 2}) {
      Shape xs{4, 6, 5};
      Shape is{3, 5, 4};  // smaller than x off `dim`: gathers from the leading corner
      is[dim] = 8;        // more picks than x has along dim: repeats guaranteed
      Tensor x = host_random(xs, ++seed, -1, 1, t);
      std::vector<double> r =
          testing_util::random(is, ++seed, 0, static_cast<double>(xs[dim])).to_vector();
      std::vector<int64_t> iv(r.size());
      for (size_t k = 0; k < r.size(); ++k) iv[k] = static_cast<int64_t>(r[k]);
      Tensor i = Tensor::from_vector(iv, is);
      Tensor xc = x.detach().requires_grad_(), xg = x.to(kGpu).requires_grad_();
      Tensor yc = engine::gather(xc, dim, i), yg = engine::gather(xg, dim, i.to(kGpu));
      EXPECT_TRUE(same_values(yg, yc)) << "dim " << dim;
      Tensor w = host_random(yc.shape(), ++seed, -1, 1, t);
      engine::sum(engine::mul(yc, w)).backward();
      engine::sum(engine::mul(yg, w.to(kGpu))).backward();
      EXPECT_TRUE(same_values(xg.grad(), xc.grad())) << "grad, dim " << dim << " " << t;
    }
}

TEST_F(CudaIndexing, OutOfRangeIndexIsAnErrorNamingIt) {
  Tensor x = host_random({4, 3}, 7).to(kGpu);
  Tensor bad = index_tensor({0, 4, 1}).to(kGpu);
  try {
    engine::index_select(x, 0, bad);
    FAIL() << "no error for index 4 of a size-4 dim";
  } catch (const engine::Error& e) {
    EXPECT_NE(std::string(e.what()).find("index 4 (at position 1) is out of range"),
              std::string::npos)
        << e.what();
  }
  Tensor neg = Tensor::from_vector(std::vector<int64_t>{0, -1, 2, 1, 0, 0}, {2, 3}).to(kGpu);
  EXPECT_THROW(engine::gather(host_random({2, 3}, 8).to(kGpu), 1, neg), engine::Error);
}

}  // namespace
}  // namespace cuda_test
