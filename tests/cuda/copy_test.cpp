// CUDA copies: host<->device through the staging buffers, strided copies within the GPU (with
// dtype conversion), fills. Copies are exact, so every comparison is bit for bit.
#include "tests/cuda/cuda_util.h"

namespace cuda_test {
namespace {

using CudaCopy = CudaTest;

TEST_F(CudaCopy, HostDeviceRoundTripIsExactForEveryDtypeAndSize) {
  // 0, 1, odd, and past two 8 MiB staging chunks (so both buffers are reused).
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{1000003}, int64_t{5000001}}) {
    for (DType t : {DType::Float32, DType::Float64}) {
      Tensor h = host_random({n}, 10 + n, -1e3, 1e3, t);
      Tensor back = h.to(kGpu).to(engine::Device::cpu());
      EXPECT_EQ(back.device(), engine::Device::cpu());
      EXPECT_TRUE(same_values(back, h)) << "n=" << n << " " << t;
    }
    std::vector<int64_t> ints(n);
    for (int64_t i = 0; i < n; ++i) ints[i] = (i * 2654435761LL) ^ (int64_t{1} << 40);
    Tensor hi = Tensor::from_vector(ints, {n});
    Tensor gi = hi.to(kGpu);
    Tensor backi = gi.to(engine::Device::cpu());
    ASSERT_EQ(backi.dtype(), DType::Int64);
    const int64_t* p = backi.data<int64_t>();
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(p[i], ints[i]) << "i=" << i;
  }
}

TEST_F(CudaCopy, ContiguousOfStridedViewsMatchesCpu) {
  Tensor h = host_random({3, 5, 7, 4}, 1, -1, 1, DType::Float32);
  Tensor g = h.to(kGpu);
  auto views = [](const Tensor& x) {
    return std::vector<Tensor>{
        x.permute({0, 2, 3, 1}),               // NCHW -> NHWC style
        x.permute({3, 2, 1, 0}),               // full reverse
        x.slice(1, 1, 5, 2),                   // step 2
        x.slice(2, 3, 7).transpose(0, 3),      // offset + transpose
        x.select(3, 2),                        // a dropped dim
        x.slice(0, 0, 1).expand({6, 5, 7, 4}), // broadcast (stride 0)
    };
  };
  std::vector<Tensor> hv = views(h), gv = views(g);
  for (size_t i = 0; i < hv.size(); ++i)
    EXPECT_TRUE(same_values(gv[i].contiguous(), hv[i].contiguous())) << "view " << i;
}

TEST_F(CudaCopy, DtypeConversionsMatchCpu) {
  Tensor h = host_random({37, 11}, 2, -300, 300, DType::Float64);
  std::vector<int64_t> ints(37 * 11);
  for (size_t i = 0; i < ints.size(); ++i) ints[i] = static_cast<int64_t>(i * 7919) - 40000;
  const std::vector<Tensor> sources = {h, h.to(DType::Float32),
                                       Tensor::from_vector(ints, {37, 11})};
  for (const Tensor& src : sources) {
    for (DType to : {DType::Float32, DType::Float64, DType::Int64}) {
      // Contiguous and transposed sources (the latter takes the strided kernel).
      EXPECT_TRUE(same_values(src.to(kGpu).to(to), src.to(to))) << src.dtype() << "->" << to;
      EXPECT_TRUE(same_values(src.to(kGpu).transpose(0, 1).to(to), src.transpose(0, 1).to(to)))
          << "transposed " << src.dtype() << "->" << to;
    }
  }
}

TEST_F(CudaCopy, CopyIntoNonContiguousDestination) {
  Tensor src = host_random({4, 6}, 3);
  Tensor hdst = host_random({6, 9}, 4), gdst = hdst.to(kGpu);
  // Writes a transposed window of dst; the rest of dst must keep its values.
  hdst.slice(1, 2, 6).transpose(0, 1).copy_(src.slice(1, 0, 6));
  gdst.slice(1, 2, 6).transpose(0, 1).copy_(src.slice(1, 0, 6).to(kGpu));
  EXPECT_TRUE(same_values(gdst, hdst));
  // Across devices and dtypes at once: float64 host -> float32 device view.
  Tensor src64 = host_random({6, 4}, 5, -1, 1, DType::Float64);
  gdst.slice(1, 0, 4).copy_(src64);
  hdst.slice(1, 0, 4).copy_(src64);
  EXPECT_TRUE(same_values(gdst, hdst));
}

TEST_F(CudaCopy, ManyUnmergeableDimsStillCopy) {
  // 12 dims of size 2, reversed: nothing merges, more dims than one kernel launch takes.
  Shape s(12, 2);
  std::vector<int64_t> rev(12);
  for (int i = 0; i < 12; ++i) rev[i] = 11 - i;
  Tensor h = host_random(s, 6);
  EXPECT_TRUE(same_values(h.to(kGpu).permute(rev).contiguous(), h.permute(rev).contiguous()));
}

TEST_F(CudaCopy, FillWritesEveryElementAndOnlyThose) {
  for (DType t : {DType::Float32, DType::Float64, DType::Int64}) {
    for (double v : {0.0, -0.0, 2.5, -7.0}) {
      Tensor g = Tensor::full({1001}, v, t, kGpu);
      EXPECT_TRUE(same_values(g, Tensor::full({1001}, v, t))) << t << " " << v;
    }
  }
  Tensor h = host_random({8, 10}, 7), g = h.to(kGpu);
  h.slice(1, 3, 9, 2).fill_(4.25);
  g.slice(1, 3, 9, 2).fill_(4.25);
  EXPECT_TRUE(same_values(g, h));
  Tensor s = Tensor::scalar(3.5, DType::Float32, kGpu);
  EXPECT_EQ(s.item(), 3.5);
}

}  // namespace
}  // namespace cuda_test
