// A CPU stand-in for libcuda.so.1, built by the tests from this file, emu_runtime.cpp and
// kernels/*.cu, so that the whole CUDA backend (bindings, memory, argument packing,
// kernel choice, CUDA graphs) runs against the reference backend on machines without a
// GPU. Each entry point is declared by the real cuda.h, so its exported name and
// signature are the real driver's (cuMemAlloc is cuMemAlloc_v2, and so on).
//
// Device memory is host memory; a CUdeviceptr is the host address. Modules are not
// parsed: cuModuleGetFunction finds kernels compiled into this library by name.
// Streams run everything at once, in order. LLMRT_EMU_NO_DEVICE=1 makes cuInit report
// that there is no device.
#include <cuda.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "emu_runtime.hpp"

namespace {

struct Node {
  const emu::KernelInfo* kernel;
  std::string name;
  emu::Dim3 grid, block;
  std::vector<std::vector<unsigned char>> args;  // parameter values copied at capture
};

struct GraphImpl {
  std::vector<Node> nodes;
};

struct StreamImpl {
  GraphImpl* capture = nullptr;
};

struct EventImpl {
  double ms = 0;
};

struct FunctionImpl {
  const emu::KernelInfo* kernel;
  std::string name;
};

const size_t TOTAL_MEM = 8ull << 30;
size_t allocated = 0;
std::map<void*, size_t> allocations;
// Ranks of a sharded engine are threads sharing this one fake device: launches (whose
// runtime and `__shared__` statics are global) and the allocation table take this lock.
std::mutex device_lock;
thread_local std::string last_launch_error;
int context_token = 0;

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

CUresult run(const Node& n) {
  std::vector<void*> ptrs;
  for (auto& a : n.args) ptrs.push_back((void*)a.data());
  static const bool trace = std::getenv("LLMRT_EMU_TRACE") != nullptr;
  const double t0 = trace ? now_ms() : 0;
  std::lock_guard<std::mutex> hold(device_lock);
  last_launch_error = emu::launch(*n.kernel, n.grid, n.block, ptrs.data());
  if (trace)
    std::fprintf(stderr, "emu %-32s grid %u,%u,%u block %u: %.2f ms\n", n.name.c_str(), n.grid.x, n.grid.y, n.grid.z,
                 n.block.x * n.block.y * n.block.z, now_ms() - t0);
  if (!last_launch_error.empty()) {
    std::fprintf(stderr, "llmrt cuda emulator: %s\n", last_launch_error.c_str());
    return CUDA_ERROR_LAUNCH_FAILED;
  }
  return CUDA_SUCCESS;
}

bool capturing(CUstream s) { return s && ((StreamImpl*)s)->capture; }

}  // namespace

extern "C" {

CUresult cuInit(unsigned int) {
  const char* no = std::getenv("LLMRT_EMU_NO_DEVICE");
  return no && no[0] == '1' ? CUDA_ERROR_NO_DEVICE : CUDA_SUCCESS;
}
CUresult cuDriverGetVersion(int* v) { return *v = 13000, CUDA_SUCCESS; }
CUresult cuDeviceGetCount(int* n) { return *n = 1, CUDA_SUCCESS; }
CUresult cuDeviceGet(CUdevice* d, int ordinal) { return ordinal == 0 ? (*d = 0, CUDA_SUCCESS) : CUDA_ERROR_INVALID_DEVICE; }
CUresult cuDeviceGetName(char* name, int len, CUdevice) {
  std::snprintf(name, len, "llmrt CPU emulator (no GPU)");
  return CUDA_SUCCESS;
}
CUresult cuDeviceGetAttribute(int* v, CUdevice_attribute a, CUdevice) {
  switch (a) {
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: *v = 4; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *v = 9; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *v = 0; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: *v = 232448; break;
    case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE: *v = 50 << 20; break;
    default: *v = 0;
  }
  return CUDA_SUCCESS;
}
CUresult cuDeviceTotalMem(size_t* bytes, CUdevice) { return *bytes = TOTAL_MEM, CUDA_SUCCESS; }
CUresult cuDevicePrimaryCtxRetain(CUcontext* ctx, CUdevice) { return *ctx = (CUcontext)&context_token, CUDA_SUCCESS; }
CUresult cuDevicePrimaryCtxRelease(CUdevice) { return CUDA_SUCCESS; }
CUresult cuCtxSetCurrent(CUcontext) { return CUDA_SUCCESS; }
CUresult cuCtxSynchronize(void) { return CUDA_SUCCESS; }

CUresult cuMemGetInfo(size_t* free, size_t* total) {
  std::lock_guard<std::mutex> hold(device_lock);
  *total = TOTAL_MEM, *free = TOTAL_MEM - allocated;
  return CUDA_SUCCESS;
}
CUresult cuMemAlloc(CUdeviceptr* p, size_t bytes) {
  std::lock_guard<std::mutex> hold(device_lock);
  if (allocated + bytes > TOTAL_MEM) return CUDA_ERROR_OUT_OF_MEMORY;
  void* m = std::aligned_alloc(256, (bytes + 255) / 256 * 256 + 256);
  if (!m) return CUDA_ERROR_OUT_OF_MEMORY;
  // garbage, not zeros: kernels must write what they read (METHOD.md: poison outputs)
  std::memset(m, 0x7f, bytes);
  allocations[m] = bytes, allocated += bytes;
  *p = (CUdeviceptr)m;
  return CUDA_SUCCESS;
}
CUresult cuMemFree(CUdeviceptr p) {
  std::lock_guard<std::mutex> hold(device_lock);
  auto it = allocations.find((void*)p);
  if (it == allocations.end()) return CUDA_ERROR_INVALID_VALUE;
  allocated -= it->second;
  allocations.erase(it);
  std::free((void*)p);
  return CUDA_SUCCESS;
}
CUresult cuMemAllocHost(void** p, size_t bytes) { return (*p = std::malloc(bytes)) ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY; }
CUresult cuMemFreeHost(void* p) { return std::free(p), CUDA_SUCCESS; }

#define NO_COPY_IN_CAPTURE(s) \
  if (capturing(s)) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
CUresult cuMemcpyHtoD(CUdeviceptr d, const void* s, size_t n) { return std::memcpy((void*)d, s, n), CUDA_SUCCESS; }
CUresult cuMemcpyDtoH(void* d, CUdeviceptr s, size_t n) { return std::memcpy(d, (void*)s, n), CUDA_SUCCESS; }
CUresult cuMemcpyDtoD(CUdeviceptr d, CUdeviceptr s, size_t n) { return std::memmove((void*)d, (void*)s, n), CUDA_SUCCESS; }
CUresult cuMemcpyHtoDAsync(CUdeviceptr d, const void* s, size_t n, CUstream st) {
  NO_COPY_IN_CAPTURE(st);
  return std::memcpy((void*)d, s, n), CUDA_SUCCESS;
}
CUresult cuMemcpyDtoHAsync(void* d, CUdeviceptr s, size_t n, CUstream st) {
  NO_COPY_IN_CAPTURE(st);
  return std::memcpy(d, (void*)s, n), CUDA_SUCCESS;
}
CUresult cuMemcpyDtoDAsync(CUdeviceptr d, CUdeviceptr s, size_t n, CUstream st) {
  NO_COPY_IN_CAPTURE(st);
  return std::memmove((void*)d, (void*)s, n), CUDA_SUCCESS;
}
CUresult cuMemsetD8(CUdeviceptr d, unsigned char v, size_t n) { return std::memset((void*)d, v, n), CUDA_SUCCESS; }
CUresult cuMemsetD32(CUdeviceptr d, unsigned int v, size_t n) {
  for (size_t i = 0; i < n; i++) ((unsigned*)d)[i] = v;
  return CUDA_SUCCESS;
}
CUresult cuMemsetD32Async(CUdeviceptr d, unsigned int v, size_t n, CUstream st) {
  NO_COPY_IN_CAPTURE(st);
  return cuMemsetD32(d, v, n);
}
CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char v, size_t n, CUstream st) {
  NO_COPY_IN_CAPTURE(st);
  return std::memset((void*)d, v, n), CUDA_SUCCESS;
}

CUresult cuStreamCreate(CUstream* s, unsigned int) { return *s = (CUstream) new StreamImpl(), CUDA_SUCCESS; }
CUresult cuStreamDestroy(CUstream s) { return delete (StreamImpl*)s, CUDA_SUCCESS; }
CUresult cuStreamSynchronize(CUstream) { return CUDA_SUCCESS; }

CUresult cuEventCreate(CUevent* e, unsigned int) { return *e = (CUevent) new EventImpl(), CUDA_SUCCESS; }
CUresult cuEventRecord(CUevent e, CUstream) { return ((EventImpl*)e)->ms = now_ms(), CUDA_SUCCESS; }
CUresult cuEventSynchronize(CUevent) { return CUDA_SUCCESS; }
CUresult cuEventElapsedTime(float* ms, CUevent a, CUevent b) {
  *ms = (float)(((EventImpl*)b)->ms - ((EventImpl*)a)->ms);
  return CUDA_SUCCESS;
}
CUresult cuEventDestroy(CUevent e) { return delete (EventImpl*)e, CUDA_SUCCESS; }

CUresult cuModuleLoadData(CUmodule* m, const void* image) {
  // a cubin is an ELF file; anything else is a sign the host sent the wrong bytes
  if (std::memcmp(image, "\x7f" "ELF", 4) != 0) return CUDA_ERROR_INVALID_IMAGE;
  *m = (CUmodule) new int(0);
  return CUDA_SUCCESS;
}
CUresult cuModuleUnload(CUmodule m) { return delete (int*)m, CUDA_SUCCESS; }
CUresult cuModuleGetFunction(CUfunction* f, CUmodule, const char* name) {
  const emu::KernelInfo* k = emu::find_kernel(name);
  if (!k) return CUDA_ERROR_NOT_FOUND;
  *f = (CUfunction) new FunctionImpl{k, name};
  return CUDA_SUCCESS;
}
CUresult cuFuncSetAttribute(CUfunction, CUfunction_attribute, int) { return CUDA_SUCCESS; }

CUresult cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned smem, CUstream st, void** params, void** extra) {
  if (extra || smem > 0) return CUDA_ERROR_NOT_SUPPORTED;  // the kernels use static shared memory
  if (gx == 0 || gy == 0 || gz == 0) return CUDA_ERROR_INVALID_VALUE;
  FunctionImpl* fn = (FunctionImpl*)f;
  Node n{fn->kernel, fn->name, emu::Dim3{gx, gy, gz}, emu::Dim3{bx, by, bz}, {}};
  for (size_t i = 0; i < fn->kernel->arg_sizes.size(); i++) {
    const unsigned char* p = (const unsigned char*)params[i];
    n.args.emplace_back(p, p + fn->kernel->arg_sizes[i]);
  }
  if (capturing(st)) {
    ((StreamImpl*)st)->capture->nodes.push_back(std::move(n));
    return CUDA_SUCCESS;
  }
  return run(n);
}

// Launch attributes change only when a kernel may start on a GPU (programmatic
// serialization lets it overlap the previous one); here every launch runs in order.
CUresult cuLaunchKernelEx(const CUlaunchConfig* c, CUfunction f, void** params, void** extra) {
  if (!c) return CUDA_ERROR_INVALID_VALUE;
  for (unsigned i = 0; i < c->numAttrs; i++)
    if (c->attrs[i].id != CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION) return CUDA_ERROR_NOT_SUPPORTED;
  return cuLaunchKernel(f, c->gridDimX, c->gridDimY, c->gridDimZ, c->blockDimX, c->blockDimY, c->blockDimZ,
                        c->sharedMemBytes, c->hStream, params, extra);
}

CUresult cuStreamBeginCapture(CUstream s, CUstreamCaptureMode) {
  if (!s) return CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED;
  ((StreamImpl*)s)->capture = new GraphImpl();
  return CUDA_SUCCESS;
}
CUresult cuStreamEndCapture(CUstream s, CUgraph* g) {
  StreamImpl* st = (StreamImpl*)s;
  if (!st || !st->capture) return CUDA_ERROR_ILLEGAL_STATE;
  *g = (CUgraph)st->capture;
  st->capture = nullptr;
  return CUDA_SUCCESS;
}
CUresult cuGraphInstantiateWithFlags(CUgraphExec* e, CUgraph g, unsigned long long) {
  *e = (CUgraphExec) new GraphImpl(*(GraphImpl*)g);
  return CUDA_SUCCESS;
}
CUresult cuGraphLaunch(CUgraphExec e, CUstream) {
  for (const Node& n : ((GraphImpl*)e)->nodes) {
    const CUresult r = run(n);
    if (r != CUDA_SUCCESS) return r;
  }
  return CUDA_SUCCESS;
}
CUresult cuGraphExecDestroy(CUgraphExec e) { return delete (GraphImpl*)e, CUDA_SUCCESS; }
CUresult cuGraphDestroy(CUgraph g) { return delete (GraphImpl*)g, CUDA_SUCCESS; }

CUresult cuGetErrorName(CUresult r, const char** s) {
  static std::map<int, std::string> names = {
      {CUDA_SUCCESS, "CUDA_SUCCESS"},
      {CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE"},
      {CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY"},
      {CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE"},
      {CUDA_ERROR_INVALID_IMAGE, "CUDA_ERROR_INVALID_IMAGE"},
      {CUDA_ERROR_NOT_FOUND, "CUDA_ERROR_NOT_FOUND"},
      {CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED"},
      {CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED"},
      {CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"},
  };
  auto it = names.find(r);
  *s = it == names.end() ? "CUDA_ERROR_UNKNOWN" : it->second.c_str();
  return CUDA_SUCCESS;
}
CUresult cuGetErrorString(CUresult r, const char** s) {
  if (r == CUDA_ERROR_LAUNCH_FAILED && !last_launch_error.empty()) return *s = last_launch_error.c_str(), CUDA_SUCCESS;
  return cuGetErrorName(r, s);
}

}  // extern "C"
