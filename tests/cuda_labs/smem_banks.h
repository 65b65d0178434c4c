// tests/cuda_labs/smem_banks.h — a model of shared-memory bank conflicts, for tests that check a
// kernel's shared-memory layout on the CPU.
//
// Shared memory is 32 banks of 4-byte words (word w is in bank w % 32), and each bank delivers
// one word per pass (a "wavefront"): a warp's access takes as many passes as the busiest bank
// has distinct words to deliver (lanes reading the same word share it). Wider accesses are
// split first, since a pass moves at most 128 bytes: 8-byte accesses by half warp (lanes 0-15,
// then 16-31), 16-byte accesses by quarter warp (8 lanes each), and ldmatrix.x4 by matrix (the
// 8 row addresses of lanes 8j..8j+7, 16 bytes each). This is the model of NVIDIA's guides and
// Nsight Compute's shared-memory wavefront counts; the GPU itself has the last word
// (`l1tex__data_bank_conflicts_pipe_lsu_mem_shared` in ncu).
#pragma once

#include <algorithm>
#include <array>
#include <set>
#include <vector>

namespace smem_banks {

// One warp-wide access: the byte address each lane touches (lane order), and its width.
// For ldmatrix.x4, the 32 row addresses with bytes = 16.
struct WarpAccess {
  std::array<long, 32> address{};
  int bytes = 4;
};

// The access of a warp whose lane L touches byte address_of_lane(L), `bytes` wide.
template <class F>
WarpAccess warp_access(int bytes, F&& address_of_lane) {
  WarpAccess a;
  a.bytes = bytes;
  for (int lane = 0; lane < 32; ++lane) a.address[size_t(lane)] = address_of_lane(lane);
  return a;
}

// Passes the access takes (at least 128 bytes per pass: 1 for 4-byte, 2 for 8-byte, 4 for
// 16-byte accesses and ldmatrix.x4 when nothing collides).
inline int wavefronts(const WarpAccess& a) {
  const int group = a.bytes == 4 ? 32 : a.bytes == 8 ? 16 : 8;  // lanes served together
  int total = 0;
  for (int first = 0; first < 32; first += group) {
    std::array<std::set<long>, 32> words;  // distinct words asked of each bank
    for (int lane = first; lane < first + group; ++lane)
      for (int b = 0; b < a.bytes; b += 4) {
        const long word = (a.address[size_t(lane)] + b) / 4;
        words[size_t(word % 32)].insert(word);
      }
    size_t busiest = 1;
    for (const auto& w : words) busiest = std::max(busiest, w.size());
    total += int(busiest);
  }
  return total;
}

// The fewest passes any access of this width can take.
inline int ideal_wavefronts(int bytes) { return bytes == 4 ? 1 : bytes == 8 ? 2 : 4; }

}  // namespace smem_banks
