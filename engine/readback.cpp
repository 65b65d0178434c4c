#include "engine/readback.h"

#include <cstdio>
#include <utility>

#include "engine/autograd.h"
#include "engine/error.h"
#include "engine/memory.h"

namespace engine {

Readback::Readback(const Tensor& t) : started_(true) {
  check(t.defined(), "Readback: undefined tensor");
  const size_t nbytes = static_cast<size_t>(t.numel()) * sizeof(double);
  if (t.device().is_cpu() || t.numel() == 0 || nbytes > cuda::max_copy_to_host_later()) {
    values_ = t.to_vector();
    return;
  }
  NoGradGuard no_grad;
  // One queued conversion to packed float64 on the device, then the queued copy of its bytes.
  // The packed tensor may be freed at once: its block is reused only by work queued later.
  Tensor packed = t.detach().to(DType::Float64).contiguous();
  values_.resize(static_cast<size_t>(t.numel()));
  ticket_ = cuda::begin_copy_to_host(packed.raw_data(), nbytes, t.device().index);
  pending_ = true;
}

Readback::Readback(Readback&& other) noexcept
    : started_(other.started_),
      pending_(std::exchange(other.pending_, false)),
      ticket_(other.ticket_),
      values_(std::move(other.values_)) {
  other.started_ = false;
}

Readback& Readback::operator=(Readback&& other) noexcept {
  if (this != &other) {
    drop();
    started_ = std::exchange(other.started_, false);
    pending_ = std::exchange(other.pending_, false);
    ticket_ = other.ticket_;
    values_ = std::move(other.values_);
  }
  return *this;
}

Readback::~Readback() { drop(); }

void Readback::drop() noexcept {
  if (!pending_) return;
  pending_ = false;
  try {
    cuda::end_copy_to_host(ticket_, nullptr);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "engine: Readback: %s\n", e.what());
  }
}

const std::vector<double>& Readback::get() {
  check(started_, "Readback::get: nothing was read (default-constructed or moved from)");
  if (pending_) {
    pending_ = false;  // spent even if the wait below throws (a failed kernel)
    cuda::end_copy_to_host(ticket_, values_.data());
  }
  return values_;
}

}  // namespace engine
