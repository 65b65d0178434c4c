// engine/error.h — the one exception type of the project, and helpers to build its message.
//
// Every check on user input throws engine::Error with a message a user can act on, e.g.
//   "conv2d: input has 64 channels but weight expects 3 (weight shape [64,7,7,3])".
// The CLI prints what() on one line and exits with status 1.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace engine {

// Prints a shape (or any list of sizes) as [2,3,4]; declared here so every message can use it.
std::ostream& operator<<(std::ostream& os, const std::vector<int64_t>& sizes);

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// cat("a", 1, shape) -> "a1[2,3]": streams every argument into one string.
// Only viable for streamable arguments, so engine::cat(std::vector<Tensor>, dim) (the tensor
// op in engine/ops/indexing.h) is never mistaken for this.
template <class T>
concept Streamable = requires(std::ostream& os, const T& value) { os << value; };

template <Streamable... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(cat(args...));
}

// check(cond, "op: ", ...): the message is only built when the check fails, so arguments
// should be cheap to pass (references to shapes, not pre-formatted strings).
template <class... Args>
inline void check(bool cond, const Args&... args) {
  if (!cond) fail(args...);
}

}  // namespace engine
