// kernels/cuda/knn_ops.cu — k-NN for the engine: the lab's version 0 for the float32 cases it
// takes (knn.cu has its algorithms and roofline), and simple kernels for the rest:
//   pairwise (float64): a thread per output, ||a||^2 + ||b||^2 - 2 a.b in double, clamped at 0.
//   top-k (float64, k > 64, or a middle dim): a thread per column keeps a sorted list of the k
//     best in the output arrays by insertion: O(n k) per column, fine for the sizes these
//     cases see (tests, small gradients through a top-k).
//   knn_search (float64 or k > 64): a thread per query streams the bank, insertion as above.
// These fallbacks are correct first and slow on large problems: float32 and k <= 64 is the
// fast path the app uses for retrieval.
#include <climits>

#include "kernels/cuda/knn.h"
#include "kernels/cuda/knn_ops.h"
#include "kernels/cuda/runtime.h"

namespace kernels::cuda {

namespace {

constexpr int kThreads = 256;

// Does (v, i) rank before (w, j)? nan_first: NaN ranks above every number (top-k largest);
// otherwise below (top-k smallest, and knn_search where NaN is the worst score). `larger`:
// larger values are better. Equal values: the lower index first.
template <class T>
__device__ __forceinline__ bool before(T v, int64_t i, T w, int64_t j, bool larger,
                                       bool nan_first) {
  const bool vn = isnan(v), wn = isnan(w);
  if (vn != wn) return nan_first ? vn : wn;
  if (!vn && v != w) return larger ? v > w : v < w;
  return i < j;
}

// Inserts (v, i) into the sorted list (val, idx)[0 .. count) of capacity k, elements `stride`
// apart; returns the new count.
template <class T>
__device__ int64_t insert(T* val, int64_t* idx, int64_t stride, int64_t count, int64_t k, T v,
                          int64_t i, bool larger, bool nan_first) {
  if (count == k && !before(v, i, val[(k - 1) * stride], idx[(k - 1) * stride], larger, nan_first))
    return count;
  int64_t pos = count < k ? count : k - 1;  // the slot that opens up
  while (pos > 0 &&
         before(v, i, val[(pos - 1) * stride], idx[(pos - 1) * stride], larger, nan_first)) {
    val[pos * stride] = val[(pos - 1) * stride];
    idx[pos * stride] = idx[(pos - 1) * stride];
    --pos;
  }
  val[pos * stride] = v;
  idx[pos * stride] = i;
  return count < k ? count + 1 : k;
}

template <class T>
__global__ void pairwise_kernel(int64_t q, int64_t n, int64_t d, const T* __restrict__ a,
                                const T* __restrict__ b, T* __restrict__ out) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < q * n;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const T* ar = a + (t / n) * d;
    const T* br = b + (t % n) * d;
    double an = 0, bn = 0, ab = 0;
    for (int64_t c = 0; c < d; ++c) {
      an += double(ar[c]) * ar[c];
      bn += double(br[c]) * br[c];
      ab += double(ar[c]) * br[c];
    }
    const double v = an + bn - 2 * ab;
    out[t] = static_cast<T>(v > 0 ? v : 0);
  }
}

template <class T>
__global__ void topk_kernel(int64_t outer, int64_t n, int64_t inner, int64_t k, bool largest,
                            const T* __restrict__ x, T* __restrict__ values,
                            int64_t* __restrict__ indices) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < outer * inner;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t o = t / inner, i = t % inner;
    const T* col = x + o * n * inner + i;
    T* val = values + o * k * inner + i;
    int64_t* idx = indices + o * k * inner + i;
    int64_t count = 0;
    for (int64_t j = 0; j < n; ++j)
      count = insert(val, idx, inner, count, k, col[j * inner], j, largest, largest);
  }
}

// dx must be zero; one thread per (o, j, i) writes its slot (distinct within a column).
template <class T>
__global__ void topk_backward_kernel(int64_t outer, int64_t n, int64_t inner, int64_t k,
                                     const int64_t* __restrict__ indices, const T* __restrict__ dy,
                                     T* __restrict__ dx) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       t < outer * k * inner; t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t % inner, o = t / (k * inner);
    dx[(o * n + indices[t]) * inner + i] = T(0) + dy[t];  // 0 + g, as the CPU's +=
  }
}

template <class T>
__global__ void knn_kernel(int64_t q, int64_t n, int64_t d, int64_t k, bool cosine,
                           const T* __restrict__ queries, const T* __restrict__ bank,
                           T* __restrict__ values, int64_t* __restrict__ indices) {
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r < q;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const T* qr = queries + r * d;
    double qn = 0;
    for (int64_t c = 0; c < d; ++c) qn += double(qr[c]) * qr[c];
    const double q_inv = 1.0 / fmax(sqrt(qn), 1e-12);
    int64_t count = 0;
    for (int64_t j = 0; j < n; ++j) {
      const T* br = bank + j * d;
      double bn = 0, qb = 0;
      for (int64_t c = 0; c < d; ++c) {
        bn += double(br[c]) * br[c];
        qb += double(qr[c]) * br[c];
      }
      double score = cosine ? qb * q_inv / fmax(sqrt(bn), 1e-12) : fmax(qn + bn - 2 * qb, 0.0);
      // A NaN score is the worst, reported as the worst value (as the CPU's heap does).
      if (isnan(score)) score = cosine ? -INFINITY : INFINITY;
      count = insert(values + r * k, indices + r * k, 1, count, k, static_cast<T>(score), j, cosine,
                     false);
    }
  }
}

// The lab takes float32, 1 <= k <= 64, k <= n, n < 2^32 - 1, 32-bit D and up to 1048560 rows.
bool lab_takes(int64_t rows, int64_t n, int64_t d, int64_t k) {
  return k >= 1 && k <= kKnnMaxK && k <= n && n < int64_t(0xffffffffLL) && d >= 1 && d <= INT_MAX &&
         rows >= 1 && rows <= 65535LL * 16;
}

}  // namespace

void pairwise_sq_l2_forward(int64_t q, int64_t n, int64_t d, const void* a, const void* b,
                            void* out, DType dtype) {
  dispatch_float(dtype, "pairwise_sq_l2", [&](auto zero) {
    using T = decltype(zero);
    if (q == 0 || n == 0) return;
    if constexpr (sizeof(T) == 4) {
      if (lab_takes(q, n, d, 1)) {
        call_lab("pairwise_sq_l2", [&] {
          pairwise_sq_l2(0, static_cast<const float*>(a), static_cast<const float*>(b),
                         static_cast<float*>(out), q, n, static_cast<int>(d), stream());
        });
        KCUDA_CHECK_LAUNCH("pairwise_sq_l2");
        return;
      }
    }
    pairwise_kernel<T><<<grid_for(q * n, kThreads), kThreads, 0, stream()>>>(
        q, n, d, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out));
    KCUDA_CHECK_LAUNCH("pairwise_sq_l2");
  });
}

void topk_forward(int64_t outer, int64_t n, int64_t inner, int64_t k, bool largest, const void* x,
                  void* values, int64_t* indices, DType dtype) {
  dispatch_float(dtype, "topk", [&](auto zero) {
    using T = decltype(zero);
    if (outer * inner == 0 || k == 0) return;
    if constexpr (sizeof(T) == 4) {
      if (inner == 1 && lab_takes(1, n, 1, k) && outer <= INT_MAX) {
        call_lab("topk", [&] {
          topk_rows(static_cast<const float*>(x), outer, n, static_cast<int>(k), largest,
                    static_cast<float*>(values), indices, stream());
        });
        KCUDA_CHECK_LAUNCH("topk");
        return;
      }
    }
    topk_kernel<T><<<grid_for(outer * inner, kThreads), kThreads, 0, stream()>>>(
        outer, n, inner, k, largest, static_cast<const T*>(x), static_cast<T*>(values), indices);
    KCUDA_CHECK_LAUNCH("topk");
  });
}

void topk_backward(int64_t outer, int64_t n, int64_t inner, int64_t k, const int64_t* indices,
                   const void* dy, void* dx, DType dtype) {
  dispatch_float(dtype, "topk_backward", [&](auto zero) {
    using T = decltype(zero);
    if (outer * n * inner == 0) return;
    KCUDA_CHECK(cudaMemsetAsync(dx, 0, sizeof(T) * outer * n * inner, stream()));
    if (k == 0) return;
    topk_backward_kernel<T><<<grid_for(outer * k * inner, kThreads), kThreads, 0, stream()>>>(
        outer, n, inner, k, indices, static_cast<const T*>(dy), static_cast<T*>(dx));
    KCUDA_CHECK_LAUNCH("topk_backward");
  });
}

void knn_search(int64_t q, int64_t n, int64_t d, int64_t k, bool cosine, const void* queries,
                const void* bank, void* values, int64_t* indices, DType dtype) {
  dispatch_float(dtype, "knn_search", [&](auto zero) {
    using T = decltype(zero);
    if (q == 0 || k == 0) return;
    if constexpr (sizeof(T) == 4) {
      if (lab_takes(q, n, d, k)) {
        call_lab("knn_search", [&] {
          const int di = static_cast<int>(d), ki = static_cast<int>(k);
          Scratch ws(knn_search_workspace(0, q, n, di, ki, cosine));
          knn_search(0, static_cast<const float*>(queries), static_cast<const float*>(bank), q, n,
                     di, ki, cosine, static_cast<float*>(values), indices, ws.get(), stream());
        });
        KCUDA_CHECK_LAUNCH("knn_search");
        return;
      }
    }
    knn_kernel<T><<<grid_for(q, kThreads), kThreads, 0, stream()>>>(
        q, n, d, k, cosine, static_cast<const T*>(queries), static_cast<const T*>(bank),
        static_cast<T*>(values), indices);
    KCUDA_CHECK_LAUNCH("knn_search");
  });
}

}  // namespace kernels::cuda
