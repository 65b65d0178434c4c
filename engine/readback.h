// engine/readback.h — reading a tensor on the host without draining the GPU's queue.
//
// t.item() and t.to_vector() wait until everything queued on the GPU so far has run. A
// Readback starts the copy to the host at once, queued right behind the work that computes t,
// and get() waits only for that copy. So a training loop can queue step b + 1 before it reads
// step b's loss, and the GPU always has the next step to run while the host waits:
//
//   Readback prev;
//   for (...) {
//     Tensor loss = mse_loss(model.forward(x), y);
//     loss.backward(); opt.step(); opt.zero_grad();
//     if (prev.started()) log(prev.get()[0]);   // step b - 1's loss, long since computed
//     prev = Readback(loss);
//   }
//
// On the CPU (or for more than engine::cuda::max_copy_to_host_later() bytes) the values are
// copied when the Readback is made. Freeing t after the Readback is made is fine: the copy is
// queued before anything that could reuse its memory.
#pragma once

#include <cstddef>
#include <vector>

#include "engine/tensor.h"

namespace engine {

class Readback {
 public:
  Readback() = default;
  explicit Readback(const Tensor& t);  // any dtype and device; the values become doubles
  Readback(Readback&& other) noexcept;
  Readback& operator=(Readback&& other) noexcept;
  Readback(const Readback&) = delete;
  Readback& operator=(const Readback&) = delete;
  ~Readback();  // a copy never collected is dropped without waiting

  bool started() const { return started_; }
  // t's values in row-major order. The first call waits for the copy if it has not landed;
  // later calls return the same values.
  const std::vector<double>& get();

 private:
  void drop() noexcept;

  bool started_ = false;
  bool pending_ = false;  // a device copy not collected yet
  size_t ticket_ = 0;
  std::vector<double> values_;
};

}  // namespace engine
