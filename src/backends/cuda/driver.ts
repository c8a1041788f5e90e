/**
 * The CUDA driver API through koffi: initialization, device properties, memory, copies,
 * streams, events, modules, kernel launches and graph capture/replay. Symbol names are
 * the ones cuda.h maps the API to (cuMemAlloc -> cuMemAlloc_v2, ...). Every call checks
 * its CUresult and throws CudaError naming the call.
 *
 * Opening the driver is lazy and fails with CudaUnavailableError (where it looked, which
 * variable to set) on machines without libcuda or without a GPU.
 */
import { CudaError, CudaUnavailableError } from "../../errors.js";
import { addr, bindFirst, loadKoffi, openLibrary, type NativeFn } from "./ffi.js";
import { findLibrary, LIB_DIR_ENV, type SearchEnv, systemSearchEnv } from "./libs.js";

export type Ptr = bigint; // host-side handles (contexts, streams, modules, functions, pinned memory)
export type DevPtr = number; // device addresses

export const ATTR = { smCount: 16, l2Bytes: 38, ccMajor: 75, ccMinor: 76, smemOptin: 97 } as const;
// a non-blocking stream, as CUDA-graph capture prefers: every copy and memset llmrt issues
// is on it (the async calls) or complete when it returns (synchronous copies)
const CU_STREAM_NON_BLOCKING = 1;
const CU_STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;
const CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;

export interface DeviceInfo {
  name: string;
  /** e.g. [9, 0] for Hopper */
  computeCapability: [number, number];
  smCount: number;
  l2Bytes: number;
  totalBytes: number;
  driverVersion: number;
  libraryPath: string;
}

const PROTOS: Record<string, string[]> = {
  init: ["int cuInit(unsigned int flags)"],
  driverVersion: ["int cuDriverGetVersion(_Out_ int *v)"],
  deviceCount: ["int cuDeviceGetCount(_Out_ int *n)"],
  deviceGet: ["int cuDeviceGet(_Out_ int *dev, int ordinal)"],
  deviceName: ["int cuDeviceGetName(_Out_ uint8_t *name, int len, int dev)"],
  deviceAttr: ["int cuDeviceGetAttribute(_Out_ int *v, int attr, int dev)"],
  totalMem: ["int cuDeviceTotalMem_v2(_Out_ size_t *bytes, int dev)"],
  ctxRetain: ["int cuDevicePrimaryCtxRetain(_Out_ void **ctx, int dev)"],
  ctxRelease: ["int cuDevicePrimaryCtxRelease_v2(int dev)", "int cuDevicePrimaryCtxRelease(int dev)"],
  ctxSetCurrent: ["int cuCtxSetCurrent(void *ctx)"],
  ctxSync: ["int cuCtxSynchronize()"],
  memGetInfo: ["int cuMemGetInfo_v2(_Out_ size_t *free, _Out_ size_t *total)"],
  memAlloc: ["int cuMemAlloc_v2(_Out_ uint64_t *dptr, size_t bytes)"],
  memFree: ["int cuMemFree_v2(uint64_t dptr)"],
  memAllocHost: ["int cuMemAllocHost_v2(_Out_ void **p, size_t bytes)"],
  memFreeHost: ["int cuMemFreeHost(void *p)"],
  htod: ["int cuMemcpyHtoD_v2(uint64_t dst, const void *src, size_t n)"],
  dtoh: ["int cuMemcpyDtoH_v2(void *dst, uint64_t src, size_t n)"],
  dtod: ["int cuMemcpyDtoD_v2(uint64_t dst, uint64_t src, size_t n)"],
  htodAsync: ["int cuMemcpyHtoDAsync_v2(uint64_t dst, const void *src, size_t n, void *stream)"],
  dtohAsync: ["int cuMemcpyDtoHAsync_v2(void *dst, uint64_t src, size_t n, void *stream)"],
  dtodAsync: ["int cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t n, void *stream)"],
  memset8: ["int cuMemsetD8_v2(uint64_t dst, uint8_t v, size_t n)"],
  memset32: ["int cuMemsetD32_v2(uint64_t dst, uint32_t v, size_t n)"],
  memset32Async: ["int cuMemsetD32Async(uint64_t dst, uint32_t v, size_t n, void *stream)"],
  streamCreate: ["int cuStreamCreate(_Out_ void **s, unsigned int flags)"],
  streamDestroy: ["int cuStreamDestroy_v2(void *s)", "int cuStreamDestroy(void *s)"],
  streamSync: ["int cuStreamSynchronize(void *s)"],
  eventCreate: ["int cuEventCreate(_Out_ void **e, unsigned int flags)"],
  eventRecord: ["int cuEventRecord(void *e, void *s)"],
  eventSync: ["int cuEventSynchronize(void *e)"],
  eventElapsed: ["int cuEventElapsedTime_v2(_Out_ float *ms, void *a, void *b)", "int cuEventElapsedTime(_Out_ float *ms, void *a, void *b)"],
  eventDestroy: ["int cuEventDestroy_v2(void *e)", "int cuEventDestroy(void *e)"],
  moduleLoad: ["int cuModuleLoadData(_Out_ void **m, const void *image)"],
  moduleUnload: ["int cuModuleUnload(void *m)"],
  moduleFunction: ["int cuModuleGetFunction(_Out_ void **f, void *m, const char *name)"],
  funcSetAttr: ["int cuFuncSetAttribute(void *f, int attr, int v)"],
  launch: [
    "int cuLaunchKernel(void *f, unsigned int gx, unsigned int gy, unsigned int gz, unsigned int bx, unsigned int by, unsigned int bz, unsigned int smem, void *stream, void *params, void *extra)",
  ],
  beginCapture: ["int cuStreamBeginCapture_v2(void *s, int mode)"],
  endCapture: ["int cuStreamEndCapture(void *s, _Out_ void **g)"],
  graphInstantiate: ["int cuGraphInstantiateWithFlags(_Out_ void **e, void *g, unsigned long long flags)"],
  graphLaunch: ["int cuGraphLaunch(void *e, void *s)"],
  graphExecDestroy: ["int cuGraphExecDestroy(void *e)"],
  graphDestroy: ["int cuGraphDestroy(void *g)"],
  errorName: ["int cuGetErrorName(int r, _Out_ const char **s)"],
  errorString: ["int cuGetErrorString(int r, _Out_ const char **s)"],
};

type Fns = Record<keyof typeof PROTOS, NativeFn>;

/** Present in drivers of CUDA 11.8 and later; launches with attributes (programmatic dependent launch). */
const LAUNCH_EX = "int cuLaunchKernelEx(void *config, void *f, void *params, void *extra)";
const CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION = 6;
// CUlaunchConfig (56 bytes: grid, block, shared bytes, stream at 32, attrs at 40, count at 48),
// then one CUlaunchAttribute (id at 0, its value union from 8; 72 bytes)
const CONFIG_BYTES = 56;
const ATTRIBUTE_BYTES = 72;

type Library = { fn: Fns; launchEx: NativeFn | null; path: string; count: number };

const drivers = new Map<string, CudaDriver>();
const libraries = new Map<string, Library>();

/** libcuda bound and initialized (once per thread), with its device count. */
function initLibrary(search: SearchEnv): Library {
  const found = findLibrary("cuda", search);
  if (!found.path) {
    throw new CudaUnavailableError("no CUDA driver (libcuda.so.1) was found", found.searched, `install the NVIDIA driver, or set ${LIB_DIR_ENV} to the folder holding libcuda.so.1`);
  }
  const cached = libraries.get(found.path);
  if (cached) return cached;
  const lib = openLibrary(found.path);
  const fn = Object.fromEntries(Object.entries(PROTOS).map(([k, p]) => [k, bindFirst(lib, p)])) as Fns;
  let launchEx: NativeFn | null = null;
  try {
    launchEx = lib.func(LAUNCH_EX);
  } catch {
    // an older driver: launches never overlap (CudaDriver.launchOverlapped falls back)
  }
  const r = fn.init(0) as number;
  if (r !== 0) {
    const what = r === 100 ? "no CUDA-capable GPU is visible" : `cuInit failed with error ${r}`;
    throw new CudaUnavailableError(`${what} (driver ${found.path})`, [], `check nvidia-smi and CUDA_VISIBLE_DEVICES; set ${LIB_DIR_ENV} to use another driver`);
  }
  const count = [0];
  fn.deviceCount(count);
  if (count[0] < 1) throw new CudaUnavailableError(`the CUDA driver at ${found.path} sees no GPU`, [], "check nvidia-smi and CUDA_VISIBLE_DEVICES");
  const out = { fn, launchEx, path: found.path, count: count[0] };
  libraries.set(found.path, out);
  return out;
}

/**
 * Whether a GPU is usable here, and the first one's compute capability, without creating a
 * context (cuInit and device attributes only); null where there is no driver, no GPU, or
 * the driver cannot be opened.
 */
export function probeGpu(search: SearchEnv = systemSearchEnv): { devices: number; computeCapability: [number, number] } | null {
  let lib: Library;
  try {
    lib = initLibrary(search);
  } catch {
    return null; // no driver, no GPU, or no koffi: nothing to run CUDA on
  }
  const dev = [0];
  if ((lib.fn.deviceGet(dev, 0) as number) !== 0) return null;
  const attr = (a: number) => {
    const v = [0];
    return (lib.fn.deviceAttr(v, a, dev[0]) as number) === 0 ? v[0] : 0;
  };
  return { devices: lib.count, computeCapability: [attr(ATTR.ccMajor), attr(ATTR.ccMinor)] };
}

export class CudaDriver {
  readonly info: DeviceInfo;
  private readonly fn: Fns;
  private readonly ctx: Ptr;

  private readonly launchEx: NativeFn | null;
  /** Native memory for cuLaunchKernelEx's config and its one attribute (one launch at a time per driver). */
  private launchConfig: { ptr: Ptr; view: DataView } | null = null;

  private constructor(
    fn: Fns,
    launchEx: NativeFn | null,
    readonly libraryPath: string,
    /** Devices the driver sees (CUDA_VISIBLE_DEVICES applied), and the one this driver binds. */
    readonly deviceCount = 1,
    readonly ordinal = 0,
  ) {
    this.fn = fn;
    this.launchEx = launchEx;
    const dev = this.out("cuDeviceGet", (o) => fn.deviceGet(o, ordinal));
    this.ctx = this.out("cuDevicePrimaryCtxRetain", (o) => fn.ctxRetain(o, dev)) as Ptr;
    this.check("cuCtxSetCurrent", fn.ctxSetCurrent(this.ctx));
    const name = Buffer.alloc(256);
    this.check("cuDeviceGetName", fn.deviceName(name, name.length, dev));
    const attr = (a: number) => this.out("cuDeviceGetAttribute", (o) => fn.deviceAttr(o, a, dev)) as number;
    this.info = {
      name: name.toString("utf8", 0, name.indexOf(0)),
      computeCapability: [attr(ATTR.ccMajor), attr(ATTR.ccMinor)],
      smCount: attr(ATTR.smCount),
      l2Bytes: attr(ATTR.l2Bytes),
      totalBytes: Number(this.out("cuDeviceTotalMem_v2", (o) => fn.totalMem(o, dev))),
      driverVersion: this.out("cuDriverGetVersion", (o) => fn.driverVersion(o)) as number,
      libraryPath,
    };
  }

  /**
   * The driver for device `ordinal` (default 0), opened once per thread and device. Throws
   * CudaUnavailableError where libcuda is missing or reports no such device.
   */
  static open(search: SearchEnv = systemSearchEnv, ordinal = 0): CudaDriver {
    const { fn, launchEx, path, count } = initLibrary(search);
    const key = `${path}#${ordinal}`;
    const cached = drivers.get(key);
    if (cached) return cached;
    if (ordinal >= count) throw new CudaUnavailableError(`device ${ordinal} was asked for, the CUDA driver at ${path} sees ${count}`, [], "check nvidia-smi and CUDA_VISIBLE_DEVICES");
    const d = new CudaDriver(fn, launchEx, path, count, ordinal);
    drivers.set(key, d);
    return d;
  }

  /** How many GPUs the driver sees (opens no context). */
  static countDevices(search: SearchEnv = systemSearchEnv): number {
    return initLibrary(search).count;
  }

  get arch(): string {
    return `sm_${this.info.computeCapability[0]}${this.info.computeCapability[1]}`;
  }

  /** The name and message of a CUresult. */
  errorName(r: number): string {
    const s: (string | null)[] = [null];
    this.fn.errorName(r, s);
    return s[0] ?? `CUresult ${r}`;
  }

  check(call: string, r: number, detail = ""): void {
    if (r === 0) return;
    const msg: (string | null)[] = [null];
    this.fn.errorString(r, msg);
    const text = [msg[0], detail].filter(Boolean).join("; ");
    throw new CudaError(call, r, this.errorName(r), text, r === 2 ? "the GPU is out of memory: lower --max-seqs, --max-seq-len or --kv-cache-bytes" : undefined);
  }

  /** Calls a function whose result is an out-parameter; returns it. */
  private out<T = number | bigint | null>(call: string, f: (o: unknown[]) => number): T {
    const o: unknown[] = [null];
    this.check(call, f(o));
    return o[0] as T;
  }

  memInfo(): { free: number; total: number } {
    const free = [0],
      total = [0];
    this.check("cuMemGetInfo_v2", this.fn.memGetInfo(free, total));
    return { free: Number(free[0]), total: Number(total[0]) };
  }

  alloc(bytes: number): DevPtr {
    return addr(this.out("cuMemAlloc_v2", (o) => this.fn.memAlloc(o, Math.max(1, bytes))));
  }

  free(p: DevPtr): void {
    this.check("cuMemFree_v2", this.fn.memFree(p));
  }

  /** Page-locked host memory (for fast, async copies) and an ArrayBuffer over it. */
  allocHost(bytes: number): { ptr: Ptr; buffer: ArrayBuffer } {
    const ptr = this.out<Ptr>("cuMemAllocHost_v2", (o) => this.fn.memAllocHost(o, bytes));
    return { ptr, buffer: loadKoffi().view(ptr, bytes) as ArrayBuffer };
  }

  freeHost(p: Ptr): void {
    this.check("cuMemFreeHost", this.fn.memFreeHost(p));
  }

  htod(dst: DevPtr, src: ArrayBufferView, bytes = src.byteLength): void {
    this.check("cuMemcpyHtoD_v2", this.fn.htod(dst, src, bytes));
  }

  dtoh(dst: ArrayBufferView, src: DevPtr, bytes = dst.byteLength): void {
    this.check("cuMemcpyDtoH_v2", this.fn.dtoh(dst, src, bytes));
  }

  dtod(dst: DevPtr, src: DevPtr, bytes: number): void {
    this.check("cuMemcpyDtoD_v2", this.fn.dtod(dst, src, bytes));
  }

  /** Async copy from pinned memory (a Ptr from allocHost) on `stream`. */
  htodAsync(dst: DevPtr, src: Ptr | ArrayBufferView, bytes: number, stream: Ptr | null): void {
    this.check("cuMemcpyHtoDAsync_v2", this.fn.htodAsync(dst, src, bytes, stream));
  }

  dtohAsync(dst: Ptr | ArrayBufferView, src: DevPtr, bytes: number, stream: Ptr | null): void {
    this.check("cuMemcpyDtoHAsync_v2", this.fn.dtohAsync(dst, src, bytes, stream));
  }

  dtodAsync(dst: DevPtr, src: DevPtr, bytes: number, stream: Ptr | null): void {
    this.check("cuMemcpyDtoDAsync_v2", this.fn.dtodAsync(dst, src, bytes, stream));
  }

  memset8(dst: DevPtr, value: number, bytes: number): void {
    this.check("cuMemsetD8_v2", this.fn.memset8(dst, value, bytes));
  }

  memset32(dst: DevPtr, value: number, count: number): void {
    this.check("cuMemsetD32_v2", this.fn.memset32(dst, value >>> 0, count));
  }

  memset32Async(dst: DevPtr, value: number, count: number, stream: Ptr | null): void {
    this.check("cuMemsetD32Async", this.fn.memset32Async(dst, value >>> 0, count, stream));
  }

  synchronize(): void {
    this.check("cuCtxSynchronize", this.fn.ctxSync());
  }

  createStream(): Ptr {
    return this.out<Ptr>("cuStreamCreate", (o) => this.fn.streamCreate(o, CU_STREAM_NON_BLOCKING));
  }

  syncStream(s: Ptr | null): void {
    this.check("cuStreamSynchronize", this.fn.streamSync(s));
  }

  destroyStream(s: Ptr): void {
    this.check("cuStreamDestroy", this.fn.streamDestroy(s));
  }

  createEvent(): Ptr {
    return this.out<Ptr>("cuEventCreate", (o) => this.fn.eventCreate(o, 0));
  }

  recordEvent(e: Ptr, s: Ptr | null): void {
    this.check("cuEventRecord", this.fn.eventRecord(e, s));
  }

  /** Milliseconds between two recorded events (waits for the second). */
  elapsedMs(a: Ptr, b: Ptr): number {
    this.check("cuEventSynchronize", this.fn.eventSync(b));
    return this.out<number>("cuEventElapsedTime", (o) => this.fn.eventElapsed(o, a, b));
  }

  destroyEvent(e: Ptr): void {
    this.check("cuEventDestroy", this.fn.eventDestroy(e));
  }

  loadModule(image: Uint8Array, what: string): Ptr {
    const o: unknown[] = [null];
    this.check("cuModuleLoadData", this.fn.moduleLoad(o, image), what);
    return o[0] as Ptr;
  }

  unloadModule(m: Ptr): void {
    this.check("cuModuleUnload", this.fn.moduleUnload(m));
  }

  /** The kernel `name` of module `m`, or null if the module has none by that name. */
  getFunction(m: Ptr, name: string): Ptr | null {
    const o: unknown[] = [null];
    const r = this.fn.moduleFunction(o, m, name) as number;
    if (r === 500) return null; // CUDA_ERROR_NOT_FOUND
    this.check("cuModuleGetFunction", r, name);
    return o[0] as Ptr;
  }

  setMaxDynamicShared(f: Ptr, bytes: number): void {
    this.check("cuFuncSetAttribute", this.fn.funcSetAttr(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes));
  }

  /** Launches `f` with `params`: the address of an array of pointers to each argument's value. */
  launch(f: Ptr, grid: [number, number, number], block: [number, number, number], params: Ptr, stream: Ptr | null, name = "kernel"): void {
    this.check("cuLaunchKernel", this.fn.launch(f, grid[0], grid[1], grid[2], block[0], block[1], block[2], 0, stream, params, null), `${name} grid [${grid}] block [${block}]`);
  }

  /** Whether launchOverlapped can overlap kernels (the driver has cuLaunchKernelEx and the GPU is Hopper or later). */
  get canOverlapLaunches(): boolean {
    return this.launchEx !== null && this.info.computeCapability[0] >= 9;
  }

  /**
   * Launches `f` allowed to start before the previous kernel on the stream has finished
   * (programmatic dependent launch): the kernel must wait for it itself (griddepcontrol.wait,
   * kernels/common.cuh pdl_wait) before it reads what that kernel wrote or writes anything.
   * A plain launch where the driver or GPU cannot.
   */
  launchOverlapped(f: Ptr, grid: [number, number, number], block: [number, number, number], params: Ptr, stream: Ptr | null, name = "kernel"): void {
    if (!this.canOverlapLaunches) return this.launch(f, grid, block, params, stream, name);
    if (!this.launchConfig) {
      const koffi = loadKoffi();
      const ptr: Ptr = koffi.alloc("uint8_t", CONFIG_BYTES + ATTRIBUTE_BYTES);
      const view = new DataView(koffi.view(ptr, CONFIG_BYTES + ATTRIBUTE_BYTES) as ArrayBuffer);
      view.setBigUint64(40, BigInt(ptr) + BigInt(CONFIG_BYTES), true);
      view.setUint32(48, 1, true);
      view.setUint32(CONFIG_BYTES, CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION, true);
      view.setInt32(CONFIG_BYTES + 8, 1, true); // programmaticStreamSerializationAllowed
      this.launchConfig = { ptr, view };
    }
    const v = this.launchConfig.view;
    [...grid, ...block].forEach((x, i) => v.setUint32(4 * i, x, true));
    v.setUint32(24, 0, true);
    v.setBigUint64(32, stream === null ? 0n : BigInt(stream), true);
    this.check("cuLaunchKernelEx", this.launchEx!(this.launchConfig.ptr, f, params, null), `${name} grid [${grid}] block [${block}] (overlapped)`);
  }

  beginCapture(s: Ptr): void {
    this.check("cuStreamBeginCapture_v2", this.fn.beginCapture(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
  }

  /** Ends a capture and instantiates it; returns the executable graph. */
  endCapture(s: Ptr): Ptr {
    const g = this.out<Ptr>("cuStreamEndCapture", (o) => this.fn.endCapture(s, o));
    try {
      return this.out<Ptr>("cuGraphInstantiateWithFlags", (o) => this.fn.graphInstantiate(o, g, 0));
    } finally {
      this.fn.graphDestroy(g);
    }
  }

  launchGraph(exec: Ptr, s: Ptr | null): void {
    this.check("cuGraphLaunch", this.fn.graphLaunch(exec, s));
  }

  destroyGraph(exec: Ptr): void {
    this.check("cuGraphExecDestroy", this.fn.graphExecDestroy(exec));
  }
}
