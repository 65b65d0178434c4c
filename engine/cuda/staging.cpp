#include "engine/cuda/staging.h"

#include <algorithm>
#include <cstring>

#include "engine/cuda/host_wait.h"
#include "engine/error.h"
#include "kernels/cuda/runtime.h"

namespace engine::cuda {

namespace {

constexpr size_t kNone = static_cast<size_t>(-1);

// cudaEventQuery without blocking: true when the event's work is done. "Not ready" is not an
// error, but the runtime records it as the last error, so clear it (as PyTorch does).
bool completed(cudaEvent_t event) {
  const cudaError_t status = cudaEventQuery(event);
  if (status == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  KCUDA_CHECK(status);
  return true;
}

}  // namespace

bool Staging::pin_new_chunk() {
  Chunk c;
  cudaError_t status = cudaHostAlloc(&c.buf, kChunk, cudaHostAllocDefault);
  if (status == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // not sticky: the pool reuses a chunk instead
    return false;
  }
  KCUDA_CHECK(status);
  KCUDA_CHECK(cudaEventCreateWithFlags(&c.done, cudaEventDisableTiming));
  chunks_.push_back(c);
  return true;
}

size_t Staging::take() {
  size_t oldest = kNone, in_flight = 0;
  for (size_t i = 0; i < chunks_.size(); ++i) {
    Chunk& c = chunks_[i];
    if (c.held) continue;  // its reader decides when it is free
    if (completed(c.done)) return i;
    ++in_flight;
    if (oldest == kNone || c.last_use < chunks_[oldest].last_use) oldest = i;
  }
  if (in_flight < kMaxChunks && pin_new_chunk()) return chunks_.size() - 1;
  check(oldest != kNone, "copying between host and GPU: could not pin ", kChunk >> 20,
        " MiB of host memory for the transfer (cudaHostAlloc: out of memory)");
  wait_for_event(chunks_[oldest].done);
  return oldest;
}

void Staging::mark_used(size_t i, cudaStream_t stream) {
  KCUDA_CHECK(cudaEventRecord(chunks_[i].done, stream));
  chunks_[i].last_use = ++clock_;
}

void Staging::to_device(void* dst, const void* src, size_t nbytes) {
  std::lock_guard<std::mutex> lock(mu_);
  const cudaStream_t stream = kernels::cuda::stream();
  for (size_t off = 0; off < nbytes; off += kChunk) {
    const size_t len = std::min(kChunk, nbytes - off);
    const size_t i = take();
    std::memcpy(chunks_[i].buf, static_cast<const char*>(src) + off, len);
    KCUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst) + off, chunks_[i].buf, len,
                                cudaMemcpyHostToDevice, stream));
    mark_used(i, stream);
  }
}

void Staging::to_host(void* dst, const void* src, size_t nbytes) {
  std::lock_guard<std::mutex> lock(mu_);
  const cudaStream_t stream = kernels::cuda::stream();
  // Two chunks in turn, held for the whole copy so the second take() cannot return the first;
  // released however the copy ends (a failed kernel surfaces in wait_for_event).
  size_t pair[2] = {kNone, kNone};
  struct Release {
    std::vector<Chunk>& chunks;
    size_t* pair;
    ~Release() {
      for (int b = 0; b < 2; ++b)
        if (pair[b] != kNone) chunks[pair[b]].held = false;
    }
  } release{chunks_, pair};
  for (int b = 0; b < (nbytes > kChunk ? 2 : 1); ++b) {
    pair[b] = take();
    chunks_[pair[b]].held = true;
  }
  auto issue = [&](size_t off, int b) {
    const size_t i = pair[b];
    KCUDA_CHECK(cudaMemcpyAsync(chunks_[i].buf, static_cast<const char*>(src) + off,
                                std::min(kChunk, nbytes - off), cudaMemcpyDeviceToHost, stream));
    mark_used(i, stream);
  };
  issue(0, 0);
  for (size_t off = 0, b = 0; off < nbytes; off += kChunk, b ^= 1) {
    if (off + kChunk < nbytes) issue(off + kChunk, static_cast<int>(b ^ 1));
    wait_for_event(chunks_[pair[b]].done, /*counted=*/off == 0);
    std::memcpy(static_cast<char*>(dst) + off, chunks_[pair[b]].buf,
                std::min(kChunk, nbytes - off));
  }
}

size_t Staging::begin_to_host(const void* src, size_t nbytes) {
  check(nbytes <= kChunk, "begin_to_host: ", nbytes, " bytes is more than one staging chunk (",
        kChunk, ")");
  std::lock_guard<std::mutex> lock(mu_);
  const cudaStream_t stream = kernels::cuda::stream();
  const size_t i = take();
  KCUDA_CHECK(cudaMemcpyAsync(chunks_[i].buf, src, nbytes, cudaMemcpyDeviceToHost, stream));
  mark_used(i, stream);
  chunks_[i].held = true;
  chunks_[i].held_bytes = nbytes;
  return i;
}

void Staging::end_to_host(size_t ticket, void* dst) {
  std::lock_guard<std::mutex> lock(mu_);
  check(ticket < chunks_.size() && chunks_[ticket].held, "end_to_host: ticket ", ticket,
        " is not a pending copy");
  Chunk& c = chunks_[ticket];
  c.held = false;  // spent, whatever happens below (its event still guards the buffer's reuse)
  if (dst == nullptr) return;
  wait_for_event(c.done);
  std::memcpy(dst, c.buf, c.held_bytes);
}

size_t Staging::pinned_bytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return chunks_.size() * kChunk;
}

Staging& staging() {
  static Staging* s = new Staging();  // leaked, as the allocator: freeing pinned memory at exit
  return *s;                          // is the driver's job, and the runtime may be gone
}

}  // namespace engine::cuda
