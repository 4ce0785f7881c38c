/* sched.cpp (CUDA emulator): runs a launch's blocks one after another on the calling OS thread,
 * each block's threads as cooperative fibers that switch only at __syncthreads, the warp
 * primitives and __activemask; checks barriers and warp masks and reports deadlocks as faults.
 * No preemption: between two switch points a thread runs alone. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "emu.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define CUDA_EMU_ASAN 1
#endif

#if !defined(__x86_64__) || defined(CUDA_EMU_UCONTEXT)
#include <ucontext.h>
#define CUDA_EMU_SWAPCONTEXT 1
#endif

uint3 threadIdx, blockIdx;
dim3 blockDim, gridDim;

#ifndef CUDA_EMU_SWAPCONTEXT
/* cuda_emu_switch(&save, to): push the callee-saved registers, store the stack pointer in
 * *save, then load `to` and pop the same from there. No system call (swapcontext saves the
 * signal mask), and no MXCSR or x87 control word (loading them costs more than the rest):
 * kernels must not change the rounding mode. A new fiber's stack is laid out so that its first
 * switch "returns" into cuda_emu_fiber_start, which calls r13(r12). */
asm(R"(
  .text
  .p2align 4
  .globl cuda_emu_switch
  .hidden cuda_emu_switch
  .type cuda_emu_switch, @function
cuda_emu_switch:
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
  .size cuda_emu_switch, .-cuda_emu_switch

  .p2align 4
  .globl cuda_emu_fiber_start
  .hidden cuda_emu_fiber_start
  .type cuda_emu_fiber_start, @function
cuda_emu_fiber_start:
  .cfi_startproc
  .cfi_undefined rip
  movq %r12, %rdi
  callq *%r13
  ud2
  .cfi_endproc
  .size cuda_emu_fiber_start, .-cuda_emu_fiber_start
)");
extern "C" void cuda_emu_switch(void **save, void *to);
extern "C" void cuda_emu_fiber_start(void);
#endif

namespace cuda_emu {
namespace {

/* ---- fibers ---- */

#ifdef CUDA_EMU_ASAN
constexpr size_t stack_bytes = 256 << 10; /* instrumented frames are several times larger */
#else
constexpr size_t stack_bytes = 64 << 10;
#endif

struct fiber {
  void *sp;    /* where the suspended context's registers are */
  char *stack; /* lowest usable byte (a guard page lies below) */
  size_t bytes;
  fiber *next_idle;
#ifdef CUDA_EMU_SWAPCONTEXT
  ucontext_t uc;
#endif
};

fiber host;                /* the launching OS thread's own context */
fiber *current = &host;    /* the context running now */
fiber *idle;               /* parked fibers, reused by every block and launch */
std::vector<fiber *> pool; /* every fiber made, so none is lost (abandoned after a fault) */

void switch_to(fiber *to) {
  fiber *from = current;
  if (from == to) return;
  current = to;
#ifdef CUDA_EMU_ASAN
  void *fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, to->stack, to->bytes);
#endif
#ifdef CUDA_EMU_SWAPCONTEXT
  swapcontext(&from->uc, &to->uc);
#else
  cuda_emu_switch(&from->sp, to->sp);
#endif
#ifdef CUDA_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

void fiber_loop(fiber *self);
void thread_exit(unsigned t);

void fiber_entry(fiber *self) {
#ifdef CUDA_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  fiber_loop(self);
}

#ifdef CUDA_EMU_SWAPCONTEXT
void fiber_entry_split(unsigned hi, unsigned lo) {
  fiber_entry((fiber *)(((uintptr_t)hi << 32) | lo));
}
#endif

fiber *new_fiber() {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  char *base = (char *)mmap(nullptr, stack_bytes + page, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED || mprotect(base, page, PROT_NONE) != 0) {
    report("cannot map a %zu KiB fiber stack", stack_bytes >> 10);
    abort();
  }
  fiber *f = new fiber();
  f->stack = base + page;
  f->bytes = stack_bytes;
#ifdef CUDA_EMU_SWAPCONTEXT
  getcontext(&f->uc);
  f->uc.uc_stack.ss_sp = f->stack;
  f->uc.uc_stack.ss_size = f->bytes;
  f->uc.uc_link = nullptr;
  uintptr_t p = (uintptr_t)f;
  makecontext(&f->uc, (void (*)())fiber_entry_split, 2, (unsigned)(p >> 32), (unsigned)p);
#else
  /* cuda_emu_switch's frame: r15, r14, r13, r12, rbx, rbp, the return address; after the
   * `ret` the stack pointer is 16-byte aligned, as the call that follows needs. Each stack's
   * top lies at another offset in its page: at one offset every fiber's hot frames would
   * compete for the same few cache sets. */
  uintptr_t top = (uintptr_t)(f->stack + f->bytes) - pool.size() * 192 % 4096;
  void **sp = (void **)(top - 56);
  sp[0] = sp[1] = nullptr;              /* r15, r14 */
  sp[2] = (void *)fiber_entry;          /* r13 */
  sp[3] = f;                            /* r12 */
  sp[4] = sp[5] = nullptr;              /* rbx, rbp (ends frame-pointer walks) */
  sp[6] = (void *)cuda_emu_fiber_start; /* return address */
  f->sp = sp;
#endif
  pool.push_back(f);
  return f;
}

fiber *take_fiber() {
  if (!idle) return new_fiber();
  fiber *f = idle;
  idle = f->next_idle;
  return f;
}

/* ---- one block ---- */

enum : uint8_t { t_new, t_ready, t_barrier, t_warp, t_exited };

struct thread_rec {
  fiber *fib;
  const char *file; /* where it waits */
  int line;
  uint8_t state;
  warp_op op;
  unsigned mask;
  int param, width;
  uint64_t in, out; /* separate, so a lane's next shuffle cannot overwrite what others read */
};

constexpr unsigned max_threads = 1024;

struct block_run {
  const launch_site *site;
  void (*body)(void *);
  void *closure;
  unsigned n; /* threads per block */
  uint3 idx[max_threads];
  thread_rec t[max_threads];
  uint16_t perm[max_threads]; /* the order threads start in and are released in */
  unsigned next_start;
  uint16_t runq[max_threads]; /* released threads, run first-in first-out */
  unsigned rq_head, rq_len;
  /* lane bits per warp: waiting at a warp primitive, at __activemask, exited; and the union of
   * the masks of the warp primitives waited at (pairwise disjoint, or a fault) */
  unsigned waiting[max_threads / 32], am[max_threads / 32], exited[max_threads / 32];
  unsigned claimed[max_threads / 32];
  unsigned n_exited, n_barrier, bar_first;
  bool faulted, running;
  uint64_t rng;
};
block_run B;
unsigned cur_tid;

uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void order_threads(uint16_t *perm, unsigned n) {
  order o = env().thread_order;
  for (unsigned i = 0; i < n; i++) perm[i] = (uint16_t)(o == order::reverse ? n - 1 - i : i);
  if (o == order::shuffle)
    for (unsigned i = n - 1; i > 0; i--) std::swap(perm[i], perm[splitmix(&B.rng) % (i + 1)]);
}

/* The i-th block to run of total: a Feistel permutation when shuffled (no table, any size),
 * walked until it lands inside [0, total). */
uint64_t block_at(uint64_t i, uint64_t total, uint64_t key) {
  order o = env().thread_order;
  if (o == order::forward || total < 2) return i;
  if (o == order::reverse) return total - 1 - i;
  unsigned bits = 64 - __builtin_clzll(total - 1);
  bits += bits & 1;
  unsigned half = bits / 2;
  uint64_t mask = (1ull << half) - 1;
  do {
    uint64_t l = i >> half, r = i & mask;
    for (uint64_t round = 0; round < 4; round++) {
      uint64_t s = key ^ (r << 8) ^ round, f = splitmix(&s) & mask;
      uint64_t next = l ^ f;
      l = r;
      r = next;
    }
    i = (l << half) | r;
  } while (i >= total);
  return i;
}

void push(unsigned t) { B.runq[(B.rq_head + B.rq_len++) % max_threads] = (uint16_t)t; }

void push_front(unsigned t) {
  B.rq_head = (B.rq_head + max_threads - 1) % max_threads;
  B.runq[B.rq_head] = (uint16_t)t;
  B.rq_len++;
}

unsigned pop() {
  unsigned t = B.runq[B.rq_head];
  B.rq_head = (B.rq_head + 1) % max_threads;
  B.rq_len--;
  return t;
}

void resume(unsigned t) {
  cur_tid = t;
  threadIdx = B.idx[t];
  switch_to(B.t[t].fib);
}

/* The current context can go no further (its thread waits, or its fiber has nothing to run):
 * run the next released thread, else start the next thread on another fiber, else go back to
 * the scheduler (which releases a barrier, reports a deadlock, or ends the block). */
void dispatch() {
  if (!B.faulted) {
    if (B.rq_len) {
      unsigned t = pop();
      if (B.t[t].fib == current) {
        cur_tid = t;
        threadIdx = B.idx[t];
        return;
      }
      resume(t);
      return;
    }
    if (B.next_start < B.n) {
      switch_to(take_fiber());
      return;
    }
  }
  switch_to(&host);
}

void fiber_loop(fiber *self) {
  for (;;) {
    while (B.next_start < B.n && !B.faulted) {
      unsigned t = B.perm[B.next_start++];
      B.t[t].state = t_ready;
      B.t[t].fib = self;
      cur_tid = t;
      threadIdx = B.idx[t];
      B.body(B.closure);
      thread_exit(t);
    }
    self->next_idle = idle; /* park: the next block (or launch) takes it again */
    idle = self;
    dispatch();
  }
}

/* ---- faults ---- */

const char *op_name(warp_op op) {
  static const char *const names[] = {"__shfl_sync",     "__shfl_up_sync", "__shfl_down_sync",
                                      "__shfl_xor_sync", "__ballot_sync",  "__any_sync",
                                      "__all_sync",      "__syncwarp",     "__activemask",
                                      "wmma::*_sync"};
  return names[(int)op];
}

void block_fault(unsigned t, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void block_fault(unsigned t, const char *file, int line, const char *fmt, ...) {
  char what[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  B.faulted = true;
  fault(cudaErrorLaunchFailure, B.site->kernel, blockIdx, B.idx[t], file, line, what);
}

/* A fault found by the running thread: report it and leave for the scheduler for good (the
 * block's other threads are abandoned; the broken context runs no more kernels). */
#define THREAD_FAULT(t, file, line, ...)     \
  do {                                       \
    block_fault(t, file, line, __VA_ARGS__); \
    switch_to(&host);                        \
    abort(); /* never resumed */             \
  } while (0)

void require_kernel(const char *what) {
  if (B.running && current != &host) return;
  report("%s called outside a kernel", what);
  abort();
}

/* ---- warps ---- */

unsigned lanes_present(unsigned warp) { /* lanes that exist: a block's last warp may be partial */
  unsigned n = B.n - warp * 32;
  return n >= 32 ? 0xffffffffu : (1u << n) - 1;
}

/* Where lane i of a width-wide segment reads from, by the PTX rules of shfl.sync (c = the
 * segment mask and clamp the CUDA headers pass); itself when the source is out of range. */
unsigned shfl_source(warp_op op, unsigned i, int param, int width) {
  int segmask = (32 - width) & 31, b = param & 31;
  int clamp = op == warp_op::shfl_up ? 0 : 31;
  int max_lane = ((int)i & segmask) | (clamp & ~segmask), min_lane = (int)i & segmask;
  int j;
  bool ok;
  switch (op) {
    case warp_op::shfl_up:
      j = (int)i - b;
      ok = j >= max_lane;
      break;
    case warp_op::shfl_down:
      j = (int)i + b;
      ok = j <= max_lane;
      break;
    case warp_op::shfl_xor:
      j = (int)i ^ b;
      ok = j <= max_lane;
      break;
    default:
      j = min_lane | (b & ~segmask);
      ok = j <= max_lane;
  }
  return ok ? (unsigned)j : i;
}

/* Make the lanes of mask in warp w runnable, in the order FB_EMU_ORDER says: after the threads
 * already waiting to run, or with ahead, before them. A warp leaving a WMMA call goes ahead, as
 * it may on a GPU, so that one reading shared memory the other warps have not written yet (a
 * missing barrier) reads it before they write. (Other primitives keep their place: a half warp
 * run ahead to a full-warp __syncwarp would meet the other half's narrower mask, which the
 * masks' bookkeeping takes for an overlap.) */
void release_lanes(unsigned w, unsigned mask, bool ahead = false) {
  unsigned lanes[32], k = 0;
  for (unsigned m = mask; m; m &= m - 1) lanes[k++] = w * 32 + (unsigned)__builtin_ctz(m);
  order o = env().thread_order;
  if (o == order::reverse) std::reverse(lanes, lanes + k);
  if (o == order::shuffle)
    for (unsigned a = 0; a + 1 < k; a++) std::swap(lanes[a], lanes[a + splitmix(&B.rng) % (k - a)]);
  for (unsigned a = 0; a < k; a++) {
    unsigned t = lanes[ahead ? k - 1 - a : a];
    B.t[t].state = t_ready;
    if (ahead)
      push_front(t);
    else
      push(t);
  }
}

/* Every lane of the warp at base has brought its record to a warp-collective operation. */
void run_collective(unsigned base) {
  collective *lanes[32];
  for (unsigned i = 0; i < 32; i++) lanes[i] = (collective *)B.t[base + i].in;
  unsigned bad = 0;
  char why[512];
  if (!lanes[0]->run(lanes, &bad, why, sizeof why)) {
    thread_rec &r = B.t[base + bad];
    THREAD_FAULT(base + bad, r.file, r.line, "%s", why);
  }
}

/* Every lane of mask in warp w has arrived: compute all results at once, release them. */
void complete(unsigned w, unsigned mask) {
  unsigned base = w * 32;
  warp_op op = B.t[base + __builtin_ctz(mask)].op;
  if (op == warp_op::collective) run_collective(base);
  uint64_t vote = 0;
  bool any = false, all = true;
  for (unsigned m = mask; m; m &= m - 1) {
    unsigned i = __builtin_ctz(m);
    bool p = B.t[base + i].in != 0;
    vote |= (uint64_t)p << i;
    any |= p;
    all &= p;
  }
  for (unsigned m = mask; m; m &= m - 1) {
    unsigned i = __builtin_ctz(m);
    thread_rec &r = B.t[base + i];
    switch (op) {
      case warp_op::ballot:
        r.out = vote;
        break;
      case warp_op::any:
        r.out = any;
        break;
      case warp_op::all:
        r.out = all;
        break;
      case warp_op::syncwarp:
      case warp_op::collective:
        r.out = 0;
        break;
      default: {
        unsigned j = shfl_source(op, i, r.param, r.width);
        if (!(mask >> j & 1))
          THREAD_FAULT(base + i, r.file, r.line,
                       "%s reads lane %u, which is not in its mask 0x%08x (undefined value)",
                       op_name(op), j, mask);
        r.out = B.t[base + j].in;
      }
    }
  }
  B.waiting[w] &= ~mask;
  B.claimed[w] &= ~mask;
  release_lanes(w, mask, op == warp_op::collective);
}

/* Lanes wait at __activemask until the scheduler has nothing else to run, or every other lane
 * of their warp has exited or waits there too: then the lanes at each call site get the mask
 * of that site's lanes, as the lanes that converge there on a GPU. */
void release_activemask(unsigned w) {
  unsigned base = w * 32;
  for (unsigned pending = B.am[w]; pending;) {
    thread_rec &f = B.t[base + __builtin_ctz(pending)];
    unsigned group = 0;
    for (unsigned m = pending; m; m &= m - 1) {
      thread_rec &r = B.t[base + __builtin_ctz(m)];
      if (r.line == f.line && strcmp(r.file, f.file) == 0) group |= 1u << __builtin_ctz(m);
    }
    for (unsigned m = group; m; m &= m - 1) B.t[base + __builtin_ctz(m)].out = group;
    release_lanes(w, group);
    pending &= ~group;
  }
  B.am[w] = 0;
}

void check_activemask(unsigned w) {
  if (B.am[w] && (B.am[w] | B.exited[w]) == lanes_present(w)) release_activemask(w);
}

void thread_exit(unsigned t) {
  unsigned w = t / 32, bit = 1u << (t % 32);
  B.t[t].state = t_exited;
  B.n_exited++;
  B.exited[w] |= bit;
  if (B.claimed[w] & bit)
    for (unsigned m = B.waiting[w]; m; m &= m - 1) {
      thread_rec &r = B.t[w * 32 + __builtin_ctz(m)];
      if (r.mask & bit)
        THREAD_FAULT(w * 32 + __builtin_ctz(m), r.file, r.line,
                     "%s with mask 0x%08x waits for lane %u, which has exited", op_name(r.op),
                     r.mask, t % 32);
    }
  check_activemask(w);
}

/* ---- the scheduler ---- */

void release_barrier() {
  if (env().thread_order == order::shuffle) order_threads(B.perm, B.n);
  for (unsigned i = 0; i < B.n; i++) {
    unsigned t = B.perm[i];
    if (B.t[t].state != t_barrier) continue;
    B.t[t].state = t_ready;
    push(t);
  }
  B.n_barrier = 0;
}

void deadlock() {
  /* name up to four waiting sites, with how many threads wait at each */
  struct site {
    const char *file;
    int line;
    uint8_t state;
    warp_op op;
    unsigned mask, count;
  } sites[4];
  unsigned nsites = 0, more = 0, first = B.n;
  for (unsigned t = 0; t < B.n; t++) {
    thread_rec &r = B.t[t];
    if (r.state != t_barrier && r.state != t_warp) continue;
    if (first == B.n || (r.state == t_warp && B.t[first].state != t_warp)) first = t;
    unsigned s = 0;
    while (s < nsites &&
           !(sites[s].line == r.line && sites[s].state == r.state &&
             strcmp(sites[s].file, r.file) == 0 &&
             (r.state == t_barrier || (sites[s].op == r.op && sites[s].mask == r.mask))))
      s++;
    if (s == nsites) {
      if (nsites == 4) {
        more++;
        continue;
      }
      sites[nsites++] = {r.file, r.line, r.state, r.op, r.mask, 0};
    }
    sites[s].count++;
  }
  char list[512];
  size_t len = 0;
  for (unsigned s = 0; s < nsites && len < sizeof list; s++) {
    if (sites[s].state == t_barrier)
      len += snprintf(list + len, sizeof list - len, "%s%u at __syncthreads() %s:%d", s ? ", " : "",
                      sites[s].count, sites[s].file, sites[s].line);
    else
      len += snprintf(list + len, sizeof list - len, "%s%u at %s(0x%08x) %s:%d", s ? ", " : "",
                      sites[s].count, op_name(sites[s].op), sites[s].mask, sites[s].file,
                      sites[s].line);
  }
  if (more && len < sizeof list) snprintf(list + len, sizeof list - len, ", %u more", more);
  thread_rec &r = B.t[first];
  block_fault(first, r.file, r.line, "deadlock: no thread can run; waiting: %s", list);
}

void run_block() {
  B.next_start = B.rq_head = B.rq_len = 0;
  B.n_exited = B.n_barrier = 0;
  for (unsigned t = 0; t < B.n; t++) B.t[t].state = t_new;
  for (unsigned w = 0; w < (B.n + 31) / 32; w++)
    B.waiting[w] = B.am[w] = B.exited[w] = B.claimed[w] = 0;
  order_threads(B.perm, B.n);
  switch_to(take_fiber());
  /* back here when nothing can run: the block ended, faulted, or waits at a barrier */
  while (!B.faulted && B.n_exited < B.n) {
    bool converged = false;
    for (unsigned w = 0; w < (B.n + 31) / 32; w++)
      if (B.am[w]) {
        release_activemask(w);
        converged = true;
      }
    if (converged) {
      resume(pop());
      continue;
    }
    if (B.n_barrier != B.n - B.n_exited) {
      deadlock();
      break;
    }
    release_barrier();
    resume(pop());
  }
}

}  // namespace

bool in_kernel() { return B.running; }

void run_grid(const launch_site &site, dim3 grid, dim3 block, void (*body)(void *), void *closure,
              uint64_t launch_no) {
  B.site = &site;
  B.body = body;
  B.closure = closure;
  B.n = block.x * block.y * block.z;
  B.faulted = false;
  B.rng = env().seed ^ (launch_no * 0x2545F4914F6CDD1Dull);
  for (unsigned t = 0; t < B.n; t++)
    B.idx[t] = uint3{t % block.x, t / block.x % block.y, t / (block.x * block.y)};
  gridDim = grid;
  blockDim = block;
#ifdef CUDA_EMU_ASAN
  /* the fibers switch back to this thread's stack, whose bounds ASan must be told */
  pthread_attr_t attr;
  void *addr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    pthread_attr_getstack(&attr, &addr, &host.bytes);
    host.stack = (char *)addr;
    pthread_attr_destroy(&attr);
  }
#endif
  uint64_t total = (uint64_t)grid.x * grid.y * grid.z, key = splitmix(&B.rng);
  B.running = true;
  for (uint64_t i = 0; i < total && !B.faulted; i++) {
    uint64_t b = block_at(i, total, key);
    blockIdx = uint3{(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y),
                     (unsigned)(b / ((uint64_t)grid.x * grid.y))};
    run_block();
  }
  B.running = false;
}

/* ---- the device built-ins' switch points ---- */

void syncthreads(const char *file, int line) {
  require_kernel("__syncthreads()");
  unsigned t = cur_tid;
  if (B.n_barrier == 0) {
    B.bar_first = t;
  } else {
    thread_rec &f = B.t[B.bar_first];
    if (f.line != line || (f.file != file && strcmp(f.file, file) != 0)) {
      uint3 o = B.idx[B.bar_first];
      THREAD_FAULT(t, file, line,
                   "divergent __syncthreads(): thread (%u,%u,%u) waits at another one, %s:%d", o.x,
                   o.y, o.z, f.file, f.line);
    }
  }
  thread_rec &r = B.t[t];
  r.state = t_barrier;
  r.file = file;
  r.line = line;
  B.n_barrier++;
  dispatch();
}

uint64_t warp_sync(warp_op op, const char *file, int line, unsigned mask, uint64_t value, int param,
                   int width) {
  require_kernel(op_name(op));
  unsigned t = cur_tid, w = t / 32, lane = t % 32;
  if (width < 1 || width > 32 || (width & (width - 1)))
    THREAD_FAULT(t, file, line, "%s width %d is not a power of two up to 32", op_name(op), width);
  if (!(mask >> lane & 1))
    THREAD_FAULT(t, file, line, "%s mask 0x%08x does not name the calling lane %u", op_name(op),
                 mask, lane);
  if (unsigned past = mask & ~lanes_present(w))
    THREAD_FAULT(t, file, line,
                 "%s mask 0x%08x names lane %d, past the block's %u threads (partial warp)",
                 op_name(op), mask, __builtin_ctz(past), B.n);
  if (unsigned gone = mask & B.exited[w])
    THREAD_FAULT(t, file, line, "%s mask 0x%08x names lane %d, which has exited", op_name(op), mask,
                 __builtin_ctz(gone));
  /* Join the group waiting with this mask, or start one that shares no lane with another:
   * then every lane waiting in mask waits at this primitive with this mask. */
  unsigned joined = B.waiting[w] & mask, other = B.waiting[w];
  if (joined)
    other = 1u << __builtin_ctz(joined);
  else if (B.claimed[w] & mask)
    while (!(B.t[w * 32 + __builtin_ctz(other)].mask & mask)) other &= other - 1;
  else
    other = 0;
  if (other) {
    thread_rec &o = B.t[w * 32 + __builtin_ctz(other)];
    if (o.op != op || o.mask != mask)
      THREAD_FAULT(t, file, line,
                   "%s with mask 0x%08x meets lane %d at %s with mask 0x%08x (%s:%d)", op_name(op),
                   mask, __builtin_ctz(other), op_name(o.op), o.mask, o.file, o.line);
  }
  B.claimed[w] |= mask;
  thread_rec &r = B.t[t];
  r.state = t_warp;
  r.op = op;
  r.mask = mask;
  r.in = value;
  r.param = param;
  r.width = width;
  r.file = file;
  r.line = line;
  B.waiting[w] |= 1u << lane;
  if ((B.waiting[w] & mask) == mask) complete(w, mask);
  dispatch();
  return r.out;
}

void warp_collective(const char *file, int line, collective *lane_record) {
  warp_sync(warp_op::collective, file, line, 0xffffffffu, (uint64_t)(uintptr_t)lane_record, 0,
            warpSize);
}

void device_fault(const char *file, int line, const char *fmt, ...) {
  require_kernel("a device operand check");
  char what[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof what, fmt, ap);
  va_end(ap);
  THREAD_FAULT(cur_tid, file, line, "%s", what);
}

unsigned activemask(const char *file, int line) {
  require_kernel("__activemask()");
  unsigned t = cur_tid, w = t / 32;
  thread_rec &r = B.t[t];
  r.state = t_warp;
  r.op = warp_op::activemask;
  r.file = file;
  r.line = line;
  B.am[w] |= 1u << (t % 32);
  check_activemask(w);
  dispatch();
  return (unsigned)r.out;
}

} /* namespace cuda_emu */
