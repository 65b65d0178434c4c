// tools/cuda_emu/include/cuda_emu/faults.h — what happens when an emulated kernel touches
// memory it must not: a segmentation fault, explained.
//
// The emulator cannot check every load and store of a kernel (that would need compiling the
// kernel differently), but it places guard pages where overruns are likely: below every fiber
// stack, after the shared-memory arena, around every cudaMalloc buffer. A fault lands here
// (on a separate signal stack, since the fiber's own stack may be the problem); the handler
// prints which guard was hit and in which kernel, block and thread, then lets the process die
// with the signal, as a GPU kernel dies with cudaErrorIllegalAddress. Faults outside kernels
// go to whatever handler was there before.
#pragma once

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "cuda_emu/device.h"
#include "cuda_emu/memory.h"

namespace emu {

inline struct sigaction g_previous_segv, g_previous_bus;

inline void on_fault(int sig, siginfo_t* info, void* ucontext) {
  const char* addr = static_cast<const char*>(info->si_addr);
  if (g_current == nullptr) {  // not in a kernel: not ours to explain
    sigaction(sig, sig == SIGSEGV ? &g_previous_segv : &g_previous_bus, nullptr);
    (void)ucontext;
    return;  // the instruction faults again, under the previous handler
  }
  Emulator& e = emulator();
  const char* what = "invalid memory access (not device, shared or stack memory of the kernel)";
  char detail[160] = "";
  for (const auto& t : e.threads)
    if (addr >= t->fiber.guard_begin() && addr < t->fiber.guard_end())
      what = "stack overflow of an emulated thread (each has EMU_STACK_KB, default 256 KB)";
  if (e.shared.in_guard(addr))
    what = "shared memory accessed past the end of the block's dynamic shared memory";
  if (const Allocation* a = device_memory().find_mapping(addr)) {
    what = "device buffer accessed out of bounds";
    std::snprintf(detail, sizeof detail, " (buffer of %zu bytes at %p, access at byte %td)",
                  a->bytes, static_cast<const void*>(a->data), addr - a->data);
  }
  const Run& r = e.run;
  const Thread& t = *g_current;
  char msg[768];
  const int n = std::snprintf(
      msg, sizeof msg,
      "cuda_emu: %s%s at address %p, in kernel %s launched at %s:%u, block (%u,%u,%u), "
      "thread (%u,%u,%u) (warp %d, lane %d)\n",
      what, detail, static_cast<const void*>(addr), r.kernel, r.launch_site.file_name(),
      unsigned(r.launch_site.line()), g_block_idx.x, g_block_idx.y, g_block_idx.z, t.idx.x, t.idx.y,
      t.idx.z, t.warp, t.lane);
  if (n > 0) (void)!write(STDERR_FILENO, msg, size_t(n) < sizeof msg ? size_t(n) : sizeof msg - 1);
  signal(sig, SIG_DFL);  // returning re-runs the access, which now kills the process
}

// When a sanitizer (-fsanitize=alignment in tests/cuda_emu) stops the program, its report
// names the source line; this adds the kernel, block and thread. Weak: absent without one.
extern "C" void __sanitizer_set_death_callback(void (*)(void)) __attribute__((weak));
inline void on_sanitizer_death() {
  if (g_current != nullptr) std::fprintf(stderr, "cuda_emu: in %s\n", context().c_str());
}

// Installed once, before the first kernel runs.
inline void install_fault_handler() {
  static bool installed = [] {
    static char alt_stack[64 * 1024];
    stack_t ss{};
    ss.ss_sp = alt_stack;
    ss.ss_size = sizeof alt_stack;
    sigaltstack(&ss, nullptr);
    struct sigaction sa {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_previous_segv);
    sigaction(SIGBUS, &sa, &g_previous_bus);
    if (__sanitizer_set_death_callback != nullptr)
      __sanitizer_set_death_callback(on_sanitizer_death);
    return true;
  }();
  (void)installed;
}

}  // namespace emu
