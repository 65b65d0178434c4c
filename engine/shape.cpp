#include "engine/shape.h"

#include "engine/error.h"

namespace engine {

std::ostream& operator<<(std::ostream& os, const Shape& s) {
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
  return os << ']';
}

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

int64_t wrap_dim(int64_t d, int64_t ndim, const char* op) {
  int64_t w = d < 0 ? d + ndim : d;
  check(w >= 0 && w < ndim, op, ": dimension ", d, " is out of range for a ", ndim, "-d tensor");
  return w;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    check(da == db || da == 1 || db == 1, op, ": shapes ", a, " and ", b,
          " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Around around_dim(const Shape& s, int64_t d) {
  Around a;
  for (int64_t i = 0; i < static_cast<int64_t>(s.size()); ++i) {
    if (i < d) a.outer *= s[i];
    else if (i == d) a.n = s[i];
    else a.inner *= s[i];
  }
  return a;
}

}  // namespace engine
