#include "kernels/cpu/knn.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "kernels/cpu/matmul.h"

namespace kernels::cpu {

namespace {

constexpr int64_t kParallelMin = 1 << 15;  // elements; below this threads cost more than they save
// knn_search blocks: a 256 x 4096 score tile is 4 MiB in float. Bigger bank blocks mean fewer
// GEMM + selection rounds, and each round is one OpenMP fork/join, which costs real time when
// the cores are shared (measured 4x fewer rounds -> ~4x less overhead on a loaded 2-core box).
constexpr int64_t kQueryBlock = 256;  // queries per GEMM
constexpr int64_t kBankBlock = 4096;  // bank rows per GEMM

// Squared row norms, accumulated in double (they are subtracted from each other later).
template <class T>
void row_sq_norms(int64_t rows, int64_t d, const T* x, double* out) {
#pragma omp parallel for schedule(static) if (rows * d > kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t c = 0; c < d; ++c) s += double(x[r * d + c]) * double(x[r * d + c]);
    out[r] = s;
  }
}

// u ranks above v; NaN above everything, NaNs equal to each other (a strict weak order).
template <class T>
bool ranks_above(T u, T v) {
  return std::isnan(u) ? !std::isnan(v) : u > v;
}

template <class T>
struct Candidate {
  T value;
  int64_t index;
};

}  // namespace

// ---- pairwise squared distances ---------------------------------------------------------------

template <class T>
void pairwise_sq_l2_forward(int64_t q, int64_t n, int64_t d, const T* a, const T* b, T* out) {
  if (q == 0 || n == 0) return;
  std::vector<double> an(q), bn(n);
  row_sq_norms(q, d, a, an.data());
  row_sq_norms(n, d, b, bn.data());
  const int64_t ld = std::max<int64_t>(d, 1);  // BLAS wants ld >= 1 even when d == 0
  gemm<T>(false, true, q, n, d, T(-2), a, ld, b, ld, T(0), out, n);  // out = -2 a b^T
#pragma omp parallel for schedule(static) if (q * n > kParallelMin)
  for (int64_t i = 0; i < q; ++i) {
    T* row = out + i * n;
    const T ai = static_cast<T>(an[i]);
    for (int64_t j = 0; j < n; ++j) row[j] = std::max(T(0), row[j] + ai + static_cast<T>(bn[j]));
  }
}

template <class T>
void pairwise_sq_l2_backward(int64_t q, int64_t n, int64_t d, const T* a, const T* b, const T* g,
                             T* da, T* db) {
  if (da) {
    // da = -2 g b + 2 rowsum(g) a
    if (n > 0) gemm<T>(false, false, q, d, n, T(-2), g, n, b, d, T(0), da, d);
    else std::fill(da, da + q * d, T(0));
#pragma omp parallel for schedule(static) if (q * (n + d) > kParallelMin)
    for (int64_t i = 0; i < q; ++i) {
      double rs = 0;
      for (int64_t j = 0; j < n; ++j) rs += g[i * n + j];
      const T s = static_cast<T>(2 * rs);
      for (int64_t c = 0; c < d; ++c) da[i * d + c] += s * a[i * d + c];
    }
  }
  if (db) {
    // db = -2 g^T a + 2 colsum(g) b
    if (q > 0) gemm<T>(true, false, n, d, q, T(-2), g, n, a, d, T(0), db, d);
    else std::fill(db, db + n * d, T(0));
    std::vector<double> cs(n, 0.0);
    for (int64_t i = 0; i < q; ++i)  // row by row: contiguous reads, vectorised adds
      for (int64_t j = 0; j < n; ++j) cs[j] += g[i * n + j];
#pragma omp parallel for schedule(static) if (n * d > kParallelMin)
    for (int64_t j = 0; j < n; ++j) {
      const T s = static_cast<T>(2 * cs[j]);
      for (int64_t c = 0; c < d; ++c) db[j * d + c] += s * b[j * d + c];
    }
  }
}

// ---- top-k --------------------------------------------------------------------------------

template <class T>
void topk_forward(int64_t outer, int64_t n, int64_t inner, int64_t k, bool largest, const T* x,
                  T* values, int64_t* indices) {
  if (k == 0) return;
  auto better = [largest](const Candidate<T>& u, const Candidate<T>& v) {
    const bool above = ranks_above(u.value, v.value), below = ranks_above(v.value, u.value);
    if (above != below) return largest ? above : below;
    return u.index < v.index;  // equal values: lower index first
  };
#pragma omp parallel if (outer * n * inner > kParallelMin)
  {
    std::vector<Candidate<T>> buf(n);  // one column, per thread
#pragma omp for schedule(static)
    for (int64_t t = 0; t < outer * inner; ++t) {
      const int64_t o = t / inner, i = t % inner;
      const T* col = x + o * n * inner + i;
      for (int64_t j = 0; j < n; ++j) buf[j] = {col[j * inner], j};
      // O(n log k): only the k best are ever ordered.
      std::partial_sort(buf.begin(), buf.begin() + k, buf.end(), better);
      for (int64_t j = 0; j < k; ++j) {
        values[(o * k + j) * inner + i] = buf[j].value;
        indices[(o * k + j) * inner + i] = buf[j].index;
      }
    }
  }
}

template <class T>
void topk_backward(int64_t outer, int64_t n, int64_t inner, int64_t k, const int64_t* indices,
                   const T* dy, T* dx) {
  std::fill(dx, dx + outer * n * inner, T(0));
  // Tasks own whole outer slices, so += never races even if an index repeated.
#pragma omp parallel for schedule(static) if (outer * k * inner > kParallelMin)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < k; ++j)
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t s = (o * k + j) * inner + i;
        dx[(o * n + indices[s]) * inner + i] += dy[s];
      }
}

// ---- fused k-NN search -------------------------------------------------------------------

template <class T>
void knn_search(int64_t q, int64_t n, int64_t d, int64_t k, bool cosine, const T* queries,
                const T* bank, T* values, int64_t* indices) {
  if (q == 0 || k == 0) return;
  // Every metric becomes "keep the k smallest keys" (L2: ||b||^2 - 2 q.b, the squared distance
  // minus the query's constant ||q||^2; cosine: minus the similarity).
  std::vector<double> bank_norm(n), query_norm(q);
  row_sq_norms(n, d, bank, bank_norm.data());
  row_sq_norms(q, d, queries, query_norm.data());
  std::vector<T> bank_term(n);  // L2: ||b||^2; cosine: 1 / max(||b||, eps)
  for (int64_t j = 0; j < n; ++j)
    bank_term[j] =
        static_cast<T>(cosine ? 1.0 / std::max(std::sqrt(bank_norm[j]), 1e-12) : bank_norm[j]);
  const T* qs = queries;
  std::vector<T> normalised;
  if (cosine) {  // normalise the queries once (q x d, small next to the bank)
    normalised.resize(q * d);
    for (int64_t i = 0; i < q; ++i) {
      const double inv = 1.0 / std::max(std::sqrt(query_norm[i]), 1e-12);
      for (int64_t c = 0; c < d; ++c)
        normalised[i * d + c] = static_cast<T>(queries[i * d + c] * inv);
    }
    qs = normalised.data();
  }

  // Max-heap on (key, index): its top is the worst kept candidate, the one to beat.
  auto worse = [](const Candidate<T>& u, const Candidate<T>& v) {
    return u.value < v.value || (u.value == v.value && u.index < v.index);
  };
  const int64_t ld = std::max<int64_t>(d, 1);  // BLAS wants ld >= 1 even when d == 0
  const int64_t qb_max = std::min(q, kQueryBlock), nb_max = std::min(n, kBankBlock);
  std::vector<T> scores(qb_max * nb_max);
  std::vector<Candidate<T>> heaps(qb_max * k);
  std::vector<int64_t> heap_size(qb_max);

  for (int64_t q0 = 0; q0 < q; q0 += kQueryBlock) {
    const int64_t qb = std::min(kQueryBlock, q - q0);
    std::fill(heap_size.begin(), heap_size.end(), 0);
    for (int64_t n0 = 0; n0 < n; n0 += kBankBlock) {
      const int64_t nb = std::min(kBankBlock, n - n0);
      // scores[i, j] = q_i . b_{n0 + j}   (ld = nb)
      gemm<T>(false, true, qb, nb, d, T(1), qs + q0 * d, ld, bank + n0 * d, ld, T(0), scores.data(),
              nb);
#pragma omp parallel for schedule(static) if (qb * nb > kParallelMin)
      for (int64_t i = 0; i < qb; ++i) {
        Candidate<T>* heap = heaps.data() + i * k;
        int64_t& size = heap_size[i];
        const T* s = scores.data() + i * nb;
        for (int64_t j = 0; j < nb; ++j) {
          T key = cosine ? -s[j] * bank_term[n0 + j] : bank_term[n0 + j] - T(2) * s[j];
          if (std::isnan(key)) key = std::numeric_limits<T>::infinity();
          const Candidate<T> c{key, n0 + j};
          if (size < k) {
            heap[size++] = c;
            std::push_heap(heap, heap + size, worse);
          } else if (worse(c, heap[0])) {  // indices only grow, so a tie never displaces
            std::pop_heap(heap, heap + k, worse);
            heap[k - 1] = c;
            std::push_heap(heap, heap + k, worse);
          }
        }
      }
    }
    for (int64_t i = 0; i < qb; ++i) {
      Candidate<T>* heap = heaps.data() + i * k;
      std::sort_heap(heap, heap + k, worse);  // ascending key = best first
      const int64_t row = (q0 + i) * k;
      for (int64_t j = 0; j < k; ++j) {
        const T key = heap[j].value;
        values[row + j] = cosine ? -key : std::max(T(0), key + static_cast<T>(query_norm[q0 + i]));
        indices[row + j] = heap[j].index;
      }
    }
  }
}

// ---- instantiations ------------------------------------------------------------------------

template void pairwise_sq_l2_forward<float>(int64_t, int64_t, int64_t, const float*, const float*,
                                            float*);
template void pairwise_sq_l2_forward<double>(int64_t, int64_t, int64_t, const double*,
                                             const double*, double*);
template void pairwise_sq_l2_backward<float>(int64_t, int64_t, int64_t, const float*, const float*,
                                             const float*, float*, float*);
template void pairwise_sq_l2_backward<double>(int64_t, int64_t, int64_t, const double*,
                                              const double*, const double*, double*, double*);
template void topk_forward<float>(int64_t, int64_t, int64_t, int64_t, bool, const float*, float*,
                                  int64_t*);
template void topk_forward<double>(int64_t, int64_t, int64_t, int64_t, bool, const double*, double*,
                                   int64_t*);
template void topk_backward<float>(int64_t, int64_t, int64_t, int64_t, const int64_t*, const float*,
                                   float*);
template void topk_backward<double>(int64_t, int64_t, int64_t, int64_t, const int64_t*,
                                    const double*, double*);
template void knn_search<float>(int64_t, int64_t, int64_t, int64_t, bool, const float*,
                                const float*, float*, int64_t*);
template void knn_search<double>(int64_t, int64_t, int64_t, int64_t, bool, const double*,
                                 const double*, double*, int64_t*);

}  // namespace kernels::cpu
