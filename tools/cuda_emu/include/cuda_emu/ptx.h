// tools/cuda_emu/include/cuda_emu/ptx.h — the inline PTX the kernel labs use, as functions.
//
// transform.py turns each `asm("mnemonic operands" : outputs : inputs)` statement into a call
//   ::emu::ptx::<mnemonic with '.' -> '_'>(operand, operand, ...)
// with the operands in the order the PTX template names them (outputs as references). So the
// lab's own wrapper functions — which registers go where in the asm — are part of what the
// emulated tests check; only the instructions themselves are replaced, by the definitions in
// the PTX ISA manual. An instruction not listed here is rejected by transform.py.
//
//   cvt.rna.tf32.f32        round a float to TF32 (10-bit mantissa), nearest, ties away
//   mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32
//                           one warp-wide 16x8x8 TF32 matrix multiply-accumulate
//   ldmatrix.sync.aligned.m8n8.x4.shared.b16
//                           four 8x8 matrices of 16-bit elements (8 rows of 16 bytes each)
//                           from shared memory into the warp's registers, collectively
//   cp.async.{ca,cg}.shared.global, cp.async.commit_group, cp.async.wait_group
//                           asynchronous global -> shared copies, in groups
//
// cp.async timing: a copy may land any time between its issue and the cp.async.wait_group
// that retires its group. EMU_CP_ASYNC=late (the default) performs it at that wait: a thread
// that reads a stage before waiting for it, or lets other threads read it before a barrier,
// sees stale data. EMU_CP_ASYNC=early performs it at issue: a copy issued into a stage that
// other threads are still reading overwrites what they read. Each setting catches one half.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <source_location>
#include <string>

#include "cuda_emu/device.h"
#include "cuda_emu/memory.h"

// __cvta_generic_to_shared: a generic pointer to shared memory -> its shared-window address
// (here: its offset in the block's shared-memory arena).
inline size_t __cvta_generic_to_shared(const void* p) {
  const emu::SharedMemory& s = emu::emulator().shared;
  if (!s.contains(p))
    emu::kernel_error("__cvta_generic_to_shared of a pointer that is not shared memory");
  return size_t(static_cast<const char*>(p) - s.base());
}

namespace emu::ptx {

inline float tf32_bits_as_float(uint32_t u) {  // the tensor core reads the top 19 bits only
  u &= 0xffffe000u;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---- cvt.rna.tf32.f32 d, a ----------------------------------------------------------------------
inline void cvt_rna_tf32_f32(uint32_t& d, float a) {
  uint32_t u;
  std::memcpy(&u, &a, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) {
    u = (u + 0x1000u) & 0xffffe000u;  // add half of the dropped 13 bits: ties go away from 0
  } else if ((u & 0x007fffffu) != 0) {
    u = 0x7fffffffu;  // NaN: the canonical NaN (masking could turn a NaN into an infinity)
  }
  d = u;
}

// ---- mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {d0..d3}, {a0..a3}, {b0, b1}, {c0..c3}
// D (16x8) = A (16x8) B (8x8) + C, collectively by the 32 lanes of a warp. Fragment layout (PTX
// ISA, "Matrix Fragments for mma.m16n8k8", .tf32), with g = lane / 4 and t = lane % 4:
//   A[r][k] is register (r >= 8) + 2 * (k >= 4) of lane (r % 8) * 4 + k % 4
//   B[k][n] is register (k >= 4) of lane n * 4 + k % 4
//   C, D register i of lane L is element (L / 4 + 8 * (i >= 2), 2 * (L % 4) + i % 2)
// Products of TF32 values are exact in fp32; they are added to C in fp32, k in order.
inline void mma_sync_aligned_m16n8k8_row_col_f32_tf32_tf32_f32(
    float& d0, float& d1, float& d2, float& d3, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
    uint32_t b0, uint32_t b1, float c0, float c1, float c2, float c3,
    std::source_location site = std::source_location::current()) {
  const uint32_t mine[6] = {a0, a1, a2, a3, b0, b1};
  const LaneWords* lanes =
      warp_collective("mma.sync.m16n8k8", 0xffffffffu, mine, sizeof mine, site);
  auto A = [&](int r, int k) {
    return tf32_bits_as_float(lanes[(r % 8) * 4 + k % 4][(r >= 8) + 2 * (k >= 4)]);
  };
  auto B = [&](int k, int n) { return tf32_bits_as_float(lanes[n * 4 + k % 4][4 + (k >= 4)]); };
  const int lane = g_current->lane;
  const float c[4] = {c0, c1, c2, c3};
  float d[4];
  for (int i = 0; i < 4; ++i) {
    const int r = lane / 4 + 8 * (i >= 2), n = 2 * (lane % 4) + i % 2;
    float sum = c[i];
    for (int k = 0; k < 8; ++k) sum = std::fma(A(r, k), B(k, n), sum);
    d[i] = sum;
  }
  d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3];
}

// ---- ldmatrix.sync.aligned.m8n8.x4.shared.b16 {d0, d1, d2, d3}, [addr] --------------------------
// Collectively by the 32 lanes of a warp (PTX ISA, "Warp-level matrix load instruction:
// ldmatrix"): lanes 8j .. 8j+7 give the shared addresses of rows 0..7 of matrix j, each row 16
// contiguous bytes, 16-byte aligned. Register dj of lane L receives 32-bit word L % 4 of row
// L / 4 of matrix j (two 16-bit elements; the kernels load 32-bit TF32 values, one per word).
inline void ldmatrix_sync_aligned_m8n8_x4_shared_b16(
    uint32_t& d0, uint32_t& d1, uint32_t& d2, uint32_t& d3, unsigned addr,
    std::source_location site = std::source_location::current()) {
  const std::string at = "ldmatrix.m8n8.x4 at " + where(site);
  SharedMemory& s = emulator().shared;
  if (addr % 16 != 0) kernel_error(at + ": row address not 16-byte aligned");
  if (!s.contains(s.base() + addr) || !s.contains(s.base() + addr + 15))
    kernel_error(at + ": row address outside shared memory");
  const LaneWords* lanes =
      warp_collective("ldmatrix.m8n8.x4", 0xffffffffu, &addr, sizeof addr, site);
  const int lane = g_current->lane;
  uint32_t d[4];
  for (int j = 0; j < 4; ++j)
    std::memcpy(&d[j], s.base() + lanes[8 * j + lane / 4][0] + 4 * (lane % 4), 4);
  d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3];
}

// ---- cp.async ---------------------------------------------------------------------------------
inline bool copies_early() {
  static const bool early = [] {
    const char* v = std::getenv("EMU_CP_ASYNC");
    return v != nullptr && std::strcmp(v, "early") == 0;
  }();
  return early;
}

inline void perform(const AsyncCopy& c) {
  std::memcpy(c.dst, c.src, size_t(c.src_bytes));
  std::memset(c.dst + c.src_bytes, 0, size_t(c.bytes - c.src_bytes));  // zero fill
}

// cp.async.{ca,cg}.shared.global [dst], [src], cp_size{, src_size}: copy src_size bytes (all
// cp_size when absent) and zero-fill the rest. .cg (L2 only) allows 16 bytes, .ca 4, 8, 16;
// both addresses must be aligned to cp_size.
inline void async_copy(const char* what, bool cg, unsigned dst, const void* src, int cp_size,
                       int src_size, const std::source_location& site) {
  const std::string at = std::string(what) + " at " + where(site);
  if (cg ? cp_size != 16 : !(cp_size == 4 || cp_size == 8 || cp_size == 16))
    kernel_error(at + ": copy size " + std::to_string(cp_size) + " not allowed");
  if (src_size < 0) src_size = cp_size;
  if (src_size > cp_size) kernel_error(at + ": src-size larger than the copy size");
  SharedMemory& s = emulator().shared;
  char* d = s.base() + dst;
  if (!s.contains(d) || !s.contains(d + cp_size - 1))
    kernel_error(at + ": destination outside shared memory");
  if (dst % unsigned(cp_size) != 0 || reinterpret_cast<uintptr_t>(src) % unsigned(cp_size) != 0)
    kernel_error(at + ": addresses not aligned to the copy size " + std::to_string(cp_size));
  if (device_memory().find(src) == nullptr || !device_memory().contains(src, size_t(src_size)))
    kernel_error(at + ": source outside every device buffer");
  const AsyncCopy c{d, static_cast<const char*>(src), cp_size, src_size};
  if (copies_early())
    perform(c);
  else
    g_current->cp_open.push_back(c);
}
inline void cp_async_ca_shared_global(unsigned dst, const void* src, int cp_size, int src_size = -1,
                                      std::source_location site = std::source_location::current()) {
  async_copy("cp.async.ca", false, dst, src, cp_size, src_size, site);
}
inline void cp_async_cg_shared_global(unsigned dst, const void* src, int cp_size, int src_size = -1,
                                      std::source_location site = std::source_location::current()) {
  async_copy("cp.async.cg", true, dst, src, cp_size, src_size, site);
}

// cp.async.commit_group: the copies issued since the last commit become one group (possibly
// empty: the labs commit empty groups to keep the count uniform).
inline void cp_async_commit_group() {
  Thread& t = *g_current;
  t.cp_groups.push_back(std::move(t.cp_open));
  t.cp_open.clear();
}

// cp.async.wait_group n: wait until at most n of this thread's groups are pending.
inline void cp_async_wait_group(int n) {
  Thread& t = *g_current;
  while (int(t.cp_groups.size()) > n) {
    for (const AsyncCopy& c : t.cp_groups.front()) perform(c);
    t.cp_groups.pop_front();
  }
}

}  // namespace emu::ptx
