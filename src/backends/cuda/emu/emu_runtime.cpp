// The fiber scheduler behind cuda_emu.hpp: runs a kernel launch block by block, each
// block's threads as fibers (stack switches) switched at barriers; warp collectives; the
// kernel registry. Errors (deadlock, trap) end the launch with a message, not a crash.
#include "emu_runtime.hpp"

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace emu {

namespace {

// ---- fibers: a hand-written switch on x86-64 (swapcontext makes two system calls per
// switch to save the signal mask, which made the emulator 20x slower), ucontext elsewhere.
#if defined(__x86_64__)
extern "C" void llmrt_emu_switch(void** save_sp, void* load_sp);
asm(R"(
.text
.globl llmrt_emu_switch
.type llmrt_emu_switch,@function
llmrt_emu_switch:
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
.size llmrt_emu_switch, .-llmrt_emu_switch
)");

struct Context {
  void* sp = nullptr;
};

// A fresh stack that "returns" into entry() on the first switch to it.
void make_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
  uintptr_t top = ((uintptr_t)(stack + bytes)) & ~(uintptr_t)15;
  void** p = (void**)top;
  *--p = nullptr;          // entry's return address: entry never returns
  *--p = (void*)entry;     // popped by ret
  for (int i = 0; i < 6; i++) *--p = nullptr;  // rbp rbx r12 r13 r14 r15
  c.sp = p;
}

void switch_context(Context& from, Context& to) { llmrt_emu_switch(&from.sp, to.sp); }
#else
struct Context {
  ucontext_t uc;
};

void make_context(Context& c, char* stack, size_t bytes, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = bytes;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}

void switch_context(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }
#endif

constexpr size_t STACK_BYTES = 64 * 1024;  // kernels keep small frames; small stacks keep the TLB warm
constexpr size_t SLOT_BYTES = 64;

struct Barrier {
  unsigned count = 0, gen = 0;
};

struct Fiber {
  Context ctx;
  std::unique_ptr<char[]> stack;
  Dim3 tid;
  bool done = false;
};

struct Launch {
  const KernelInfo* kernel = nullptr;
  void** params = nullptr;
  Dim3 grid{}, block{}, bid{};
  std::vector<Fiber> fibers;
  int nthreads = 0, current = -1, alive = 0;
  std::vector<int> warp_alive;
  Barrier block_bar;
  std::vector<Barrier> warp_bars;
  std::vector<unsigned char> slots;  // [warps][32][SLOT_BYTES]
  unsigned long long progress = 0;
  std::string error;
  Context sched;
};

Launch* L = nullptr;  // the launch in progress (one at a time: launches are synchronous)
std::vector<std::unique_ptr<char[]>> stack_pool;

std::map<std::string, KernelInfo>& registry() {
  static std::map<std::string, KernelInfo> r;
  return r;
}

void yield() { switch_context(L->fibers[L->current].ctx, L->sched); }

int warp_of(int i) { return i / 32; }

// Arrive at `b` among `expected` live participants; wait until all have arrived.
// Exited threads count as arrived (see release_exited).
void barrier_wait(Barrier& b, const int& expected) {
  const unsigned gen = b.gen;
  L->progress++;
  if (++b.count >= (unsigned)expected) {
    b.count = 0, b.gen++;
    return;
  }
  while (b.gen == gen) {
    if (!L->error.empty()) {
      for (;;) yield();  // the scheduler abandons this launch
    }
    yield();
  }
  L->progress++;
}

void fiber_main() {
  Launch* l = L;
  l->kernel->thunk(l->params);
  Fiber& f = l->fibers[l->current];
  f.done = true;
  l->alive--;
  const int w = warp_of(l->current);
  l->warp_alive[w]--;
  l->progress++;
  // a barrier that only waited for this thread can now open
  if (l->block_bar.count > 0 && l->block_bar.count >= (unsigned)l->alive) l->block_bar.count = 0, l->block_bar.gen++;
  Barrier& wb = l->warp_bars[w];
  if (wb.count > 0 && wb.count >= (unsigned)l->warp_alive[w]) wb.count = 0, wb.gen++;
  for (;;) switch_context(f.ctx, l->sched);  // done: never resumed
}

bool run_block() {
  Launch& l = *L;
  l.alive = l.nthreads;
  l.block_bar = Barrier{};
  const int warps = (l.nthreads + 31) / 32;
  l.warp_bars.assign(warps, Barrier{});
  l.warp_alive.assign(warps, 0);
  for (int i = 0; i < l.nthreads; i++) l.warp_alive[warp_of(i)]++;
  for (int i = 0; i < l.nthreads; i++) {
    Fiber& f = l.fibers[i];
    f.done = false;
    f.tid = Dim3{(unsigned)(i % l.block.x), (unsigned)((i / l.block.x) % l.block.y), (unsigned)(i / (l.block.x * l.block.y))};
    make_context(f.ctx, f.stack.get(), STACK_BYTES, fiber_main);
  }
  while (l.alive > 0) {
    const unsigned long long before = l.progress;
    for (int i = 0; i < l.nthreads && l.error.empty(); i++) {
      if (l.fibers[i].done) continue;
      l.current = i;
      switch_context(l.sched, l.fibers[i].ctx);
    }
    if (!l.error.empty()) return false;
    if (l.alive > 0 && l.progress == before) {
      l.error = "deadlock: threads wait at a barrier that the others never reach";
      return false;
    }
  }
  return true;
}

}  // namespace

const Dim3& thread_idx() { return L->fibers[L->current].tid; }
const Dim3& block_idx() { return L->bid; }
const Dim3& block_dim() { return L->block; }
const Dim3& grid_dim() { return L->grid; }

void syncthreads() { barrier_wait(L->block_bar, L->alive); }

void syncwarp() {
  const int w = warp_of(L->current);
  barrier_wait(L->warp_bars[w], L->warp_alive[w]);
}

void warp_allgather(const void* mine, void* all, size_t bytes) {
  if (bytes > SLOT_BYTES) trap();
  const int w = warp_of(L->current), lane = L->current % 32;
  unsigned char* base = L->slots.data() + (size_t)w * 32 * SLOT_BYTES;
  std::memcpy(base + lane * SLOT_BYTES, mine, bytes);
  syncwarp();
  for (int i = 0; i < 32; i++) std::memcpy((unsigned char*)all + i * bytes, base + i * SLOT_BYTES, bytes);
  syncwarp();  // nobody overwrites a slot before every lane has read it
}

static float half_bits(unsigned short b, bool bf16) {
  if (bf16) {
    const unsigned u = (unsigned)b << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  __half h;
  std::memcpy(&h, &b, 2);
  return __half2float(h);
}

void mma_16816(float c[4], const unsigned a[4], const unsigned b[2], bool bf16) {
  unsigned mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  unsigned all[32][6];
  warp_allgather(mine, all, sizeof mine);
  // element (row, col) of A and (k, n) of B, read from the lane that holds it (layout in
  // common.cuh); this lane needs rows g, g+8 of A and columns 2t, 2t+1 of B
  auto half = [&](int lane, int reg, int hi) {
    const unsigned v = all[lane][reg];
    return half_bits(hi ? v >> 16 : v & 0xffff, bf16);
  };
  auto A = [&](int row, int col) { return half((row % 8) * 4 + (col % 8) / 2, (row >= 8) + 2 * (col >= 8), col % 2); };
  auto B = [&](int k, int n) { return half(n * 4 + (k % 8) / 2, 4 + (k >= 8), k % 2); };
  const int lane = L->current % 32, g = lane / 4, t = lane % 4;
  float ra[2][16], rb[2][16];
  for (int k = 0; k < 16; k++) {
    ra[0][k] = A(g, k), ra[1][k] = A(g + 8, k);
    rb[0][k] = B(k, 2 * t), rb[1][k] = B(k, 2 * t + 1);
  }
  for (int e = 0; e < 4; e++) {
    float s = 0.f;
    for (int k = 0; k < 16; k++) s += ra[e >= 2][k] * rb[e & 1][k];
    c[e] += s;
  }
}

void trap() {
  L->error = "__trap() in a kernel";
  for (;;) yield();
}

bool register_kernel(const char* name, Thunk thunk, int nargs, const size_t* sizes) {
  registry()[name] = KernelInfo{thunk, std::vector<size_t>(sizes, sizes + nargs)};
  return true;
}

const KernelInfo* find_kernel(const char* name) {
  auto it = registry().find(name);
  return it == registry().end() ? nullptr : &it->second;
}

std::string launch(const KernelInfo& k, Dim3 grid, Dim3 block, void** params) {
  Launch l;
  l.kernel = &k, l.params = params, l.grid = grid, l.block = block;
  l.nthreads = (int)(block.x * block.y * block.z);
  if (l.nthreads <= 0 || l.nthreads > 1024) return "block of " + std::to_string(l.nthreads) + " threads";
  while (stack_pool.size() < (size_t)l.nthreads) stack_pool.emplace_back(new char[STACK_BYTES]);
  l.fibers.resize(l.nthreads);
  for (int i = 0; i < l.nthreads; i++) l.fibers[i].stack.reset(stack_pool[i].release());
  l.slots.assign((size_t)((l.nthreads + 31) / 32) * 32 * SLOT_BYTES, 0);
  Launch* outer = L;
  L = &l;
  bool ok = true;
  for (unsigned z = 0; z < grid.z && ok; z++)
    for (unsigned y = 0; y < grid.y && ok; y++)
      for (unsigned x = 0; x < grid.x && ok; x++) {
        l.bid = Dim3{x, y, z};
        ok = run_block();
      }
  L = outer;
  for (int i = 0; i < l.nthreads; i++) stack_pool[i].reset(l.fibers[i].stack.release());
  if (!ok) {
    char where[96];
    std::snprintf(where, sizeof where, " (block %u,%u,%u)", l.bid.x, l.bid.y, l.bid.z);
    return l.error + where;
  }
  return "";
}

}  // namespace emu
