// engine/cuda/staging.h — host<->device copies through a pool of pinned host buffers.
//
// The DMA engine reads and writes page-locked ("pinned") host memory at full PCIe speed, while
// the tensors' host memory is ordinary pageable memory; so every copy goes through pinned
// chunks of kChunk bytes, and the host's memcpy of one chunk overlaps the transfer of another.
// A chunk is free again once the event recorded after its last transfer has completed.
//
//   host -> device (to_device): each chunk is a free one (found with cudaEventQuery, which
//     never blocks), or a newly pinned one while fewer than kMaxChunks are in use; only when
//     all of those are still in flight does the host wait for the oldest. The transfer is
//     queued on the compute stream behind the work already queued, and the call returns
//     before it runs: copying the next batch never waits for the current training step.
//     (With two buffers used in turn, as here before 2026-11-26, the third chunk of a batch
//     waited for the first, and so for the whole step queued ahead of it.)
//   device -> host (to_host): queued behind the work that computes the data; the host waits
//     for each chunk (the next one in flight while it copies one out). This wait is where
//     to_vector, item and .to(cpu) synchronise.
//   device -> host, collected later (begin_to_host / end_to_host, behind engine::Readback):
//     one chunk is held for the copy until it is collected; collecting waits, if at all,
//     only for that copy and the work queued before it.
// Thread-safe (one mutex, held during waits: copies are serialised).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace engine::cuda {

class Staging {
 public:
  static constexpr size_t kChunk = size_t(8) << 20;  // 8 MiB: long enough for full PCIe speed
  static constexpr size_t kMaxChunks = 32;  // 256 MiB pinned before a copy waits for a chunk

  Staging() = default;
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;

  void to_device(void* dst, const void* src, size_t nbytes);
  void to_host(void* dst, const void* src, size_t nbytes);

  // Queues a copy of nbytes (<= kChunk) from device memory and returns a ticket for it.
  size_t begin_to_host(const void* src, size_t nbytes);
  // Waits for the ticket's copy and writes its bytes to dst; dst null drops the copy without
  // waiting. Either way the ticket is spent.
  void end_to_host(size_t ticket, void* dst);

  // Pinned bytes held by the pool (they are kept for reuse, never returned).
  size_t pinned_bytes();

 private:
  struct Chunk {
    void* buf = nullptr;
    cudaEvent_t done = nullptr;  // recorded after the chunk's last transfer
    uint64_t last_use = 0;       // for "the oldest" when every chunk is in flight
    bool held = false;           // in use by a copy to the host that is not collected yet
    size_t held_bytes = 0;       // that copy's size
  };

  size_t take();                 // a chunk no transfer is using (waits only if it must)
  bool pin_new_chunk();          // false when the driver will not pin more memory
  void mark_used(size_t i, cudaStream_t stream);

  std::mutex mu_;
  std::vector<Chunk> chunks_;  // indices are tickets: a chunk is never removed
  uint64_t clock_ = 0;
};

Staging& staging();  // the process's one pool

}  // namespace engine::cuda
