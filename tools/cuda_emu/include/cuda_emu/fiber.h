// tools/cuda_emu/include/cuda_emu/fiber.h — the one mechanism the emulator is built on: a
// fiber (a stack plus saved registers) per emulated CUDA thread, and a switch between them.
//
// A CUDA thread may stop in the middle of its kernel (at __syncthreads, at a warp shuffle) and
// continue once the other threads have caught up. On the CPU that needs every emulated thread
// to own a stack, so that it can be suspended with its locals intact: a fiber. Fibers are
// cooperative: one runs at a time, on this process's single OS thread, until it switches back
// to the scheduler (device.h). Nothing here knows about CUDA.
//
// Two implementations of the switch:
//   * x86-64: fifteen instructions of assembly below (save the callee-saved registers on the old
//     stack, swap stack pointers, restore them from the new one). About 5 ns.
//   * anything else, or -DEMU_FIBER_UCONTEXT: POSIX makecontext/swapcontext, portable but
//     slower (swapcontext also saves the signal mask: a system call per switch, ~0.5 us, which
//     makes the emulated tests 3-5x slower).
//
// Each stack is mmap'ed with a PROT_NONE guard page below it: a kernel that recurses too deep
// or puts a huge array on its stack faults on the guard page instead of silently overwriting
// another thread's stack; device.h's fault handler names the thread. EMU_STACK_KB (environment,
// default 256) sets the size; pages are only committed when touched.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)  // -fsanitize=address (ENGINE_EMU_ASAN in tests/cuda_emu)
#include <sanitizer/asan_interface.h>
#define EMU_ASAN 1
#endif

#if !defined(__x86_64__) || defined(EMU_FIBER_UCONTEXT)
#define EMU_FIBER_USES_UCONTEXT 1
#include <ucontext.h>
#endif

namespace emu {

[[noreturn]] inline void fatal(const char* what) {
  std::fprintf(stderr, "cuda_emu: fatal: %s\n", what);
  std::abort();
}

inline size_t page_size() {
  static const size_t size = size_t(sysconf(_SC_PAGESIZE));
  return size;
}

inline size_t fiber_stack_bytes() {
  static const size_t bytes = [] {
    const char* v = std::getenv("EMU_STACK_KB");
    long kb = v ? std::atol(v) : 256;
    if (kb < 16) kb = 16;
    return (size_t(kb) * 1024 + page_size() - 1) / page_size() * page_size();
  }();
  return bytes;
}

#if !defined(EMU_FIBER_USES_UCONTEXT)
// ---- the x86-64 switch ---------------------------------------------------------------------
// emu_fiber_switch(save, load): push the System V callee-saved registers (rbp, rbx, r12-r15)
// on the current stack, store the stack pointer in *save, load `load` as the stack pointer,
// pop the registers saved there and return into that fiber. The caller-saved registers need
// no saving: the C++ compiler already treats them as clobbered by the call. .weak: this header
// is included by several translation units and the linker keeps one copy.
extern "C" void emu_fiber_switch(void** save, void* load);
asm(R"(
  .pushsection .text
  .weak emu_fiber_switch
  .type emu_fiber_switch, @function
emu_fiber_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size emu_fiber_switch, .-emu_fiber_switch
  .popsection
)");
#endif

// One fiber: a guarded stack and the saved context of a suspended fiber. A fiber is started
// with start(entry) and runs entry() the next time someone switches to it; entry must never
// return (it switches away for good when its work is done, and is restarted for the next use).
class Fiber {
 public:
  Fiber() {
    const size_t guard = page_size(), bytes = fiber_stack_bytes();
    void* p = mmap(nullptr, guard + bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) fatal("mmap of a fiber stack failed");
    if (mprotect(p, guard, PROT_NONE) != 0) fatal("mprotect of a fiber guard page failed");
    base_ = static_cast<char*>(p);
  }
  ~Fiber() {
    if (base_ != nullptr) munmap(base_, page_size() + fiber_stack_bytes());
  }
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  // The guard page: an access in [guard_begin, guard_end) is this stack overflowing.
  const char* guard_begin() const { return base_; }
  const char* guard_end() const { return base_ + page_size(); }

  // Prepare the fiber to run entry() from the top of its stack at the next switch to it.
  void start(void (*entry)()) {
    char* top = base_ + page_size() + fiber_stack_bytes();
#if defined(EMU_ASAN)
    // Frames a previous use left behind (a fiber never returns) keep AddressSanitizer's
    // redzone markings: clear them, or the new frames would be reported as overflows.
    __asan_unpoison_memory_region(base_ + page_size(), fiber_stack_bytes());
#endif
#if defined(EMU_FIBER_USES_UCONTEXT)
    getcontext(&ctx_);
    ctx_.uc_stack.ss_sp = base_ + page_size();
    ctx_.uc_stack.ss_size = fiber_stack_bytes();
    ctx_.uc_link = nullptr;
    makecontext(&ctx_, entry, 0);
    (void)top;
#else
    // A frame as emu_fiber_switch leaves it: six saved registers (zeros), then the address it
    // "returns" to (entry), then a fake return address for entry itself. entry starts with
    // rsp = top - 8, i.e. rsp + 8 16-byte aligned, as right after a call.
    auto* sp = reinterpret_cast<void**>(top);
    *--sp = nullptr;                              // entry's return address (it never returns)
    *--sp = reinterpret_cast<void*>(entry);       // popped by emu_fiber_switch's ret
    for (int i = 0; i < 6; ++i) *--sp = nullptr;  // r15 r14 r13 r12 rbx rbp
    sp_ = sp;
#endif
  }

  // Suspend the fiber running now (whose context `from` is) and run `to`.
  static void switch_to(Fiber& from, Fiber& to) {
#if defined(EMU_FIBER_USES_UCONTEXT)
    swapcontext(&from.ctx_, &to.ctx_);
#else
    emu_fiber_switch(&from.sp_, to.sp_);
#endif
  }

  // A Fiber object without a stack of its own: it stands for the OS thread's original stack
  // (the scheduler), so that fibers have something to switch back to.
  struct NoStack {};
  explicit Fiber(NoStack) {}

 private:
  char* base_ = nullptr;  // the guard page; the stack follows it
#if defined(EMU_FIBER_USES_UCONTEXT)
  ucontext_t ctx_{};
#else
  void* sp_ = nullptr;  // saved stack pointer of a suspended fiber
#endif
};

}  // namespace emu
