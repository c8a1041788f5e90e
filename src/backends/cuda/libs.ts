/**
 * Finding the CUDA libraries: the driver (libcuda.so.1, comes with the NVIDIA driver),
 * NVRTC, cuBLASLt and NCCL (come with the toolkit, or with PyTorch's pip wheels under
 * site-packages/nvidia/<pkg>/lib; NCCL's folder may also be named by LLMRT_NCCL_LIB). Looks, in order, in LLMRT_CUDA_LIB_DIR (':'-separated
 * folders), LD_LIBRARY_PATH, the usual system and toolkit folders, what `ldconfig -p`
 * lists, and last Python's nvidia packages. Nothing here loads a library.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

export type CudaLibrary = "cuda" | "nvrtc" | "cublasLt" | "nccl";

export const LIB_DIR_ENV = "LLMRT_CUDA_LIB_DIR";

/** File names to try, newest ABI first. */
export const LIBRARY_FILES: Record<CudaLibrary, string[]> = {
  cuda: ["libcuda.so.1", "libcuda.so"],
  nvrtc: ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"],
  cublasLt: ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"],
  nccl: ["libnccl.so.2", "libnccl.so"],
};

/** Per-library override folders, searched before LLMRT_CUDA_LIB_DIR. */
export const LIB_ENV: Partial<Record<CudaLibrary, string>> = { nccl: "LLMRT_NCCL_LIB" };

export const STANDARD_DIRS = [
  "/usr/local/nvidia/lib64",
  "/usr/local/nvidia/lib",
  "/usr/lib/x86_64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/usr/lib64",
  "/usr/lib/wsl/lib",
  "/usr/local/cuda/lib64",
  "/usr/local/cuda/targets/x86_64-linux/lib",
  "/usr/local/cuda/targets/sbsa-linux/lib",
];

/** What the search may consult; injectable for tests. */
export interface SearchEnv {
  env: NodeJS.ProcessEnv;
  exists(path: string): boolean;
  /** `ldconfig -p` output, or "" where it fails. */
  ldconfig(): string;
  /** Folders holding Python's `nvidia` namespace packages (site-packages/nvidia), or []. */
  pythonNvidiaDirs(): string[];
  /** Entries of a folder, or [] where it cannot be read. */
  list(dir: string): string[];
}

export interface LibrarySearchResult {
  path: string | null;
  /** Every folder looked in, in order (for error messages). */
  searched: string[];
}

let ldconfigCache: string | null = null;
let pythonCache: string[] | null = null;

export const systemSearchEnv: SearchEnv = {
  env: process.env,
  exists: existsSync,
  ldconfig() {
    if (ldconfigCache === null) {
      try {
        ldconfigCache = execFileSync("ldconfig", ["-p"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 5000 });
      } catch {
        try {
          ldconfigCache = execFileSync("/sbin/ldconfig", ["-p"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 5000 });
        } catch {
          ldconfigCache = "";
        }
      }
    }
    return ldconfigCache;
  },
  pythonNvidiaDirs() {
    if (pythonCache === null) {
      try {
        const out = execFileSync("python3", ["-c", "import nvidia; print('\\n'.join(list(nvidia.__path__)))"], {
          encoding: "utf8",
          stdio: ["ignore", "pipe", "ignore"],
          timeout: 20000,
        });
        pythonCache = out.split("\n").map((s) => s.trim()).filter(Boolean);
      } catch {
        pythonCache = [];
      }
    }
    return pythonCache;
  },
  list(dir) {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  },
};

/** `ldconfig -p` lines "\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/.../libcuda.so.1": name -> paths. */
export function parseLdconfig(out: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of out.split("\n")) {
    const m = /^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)/.exec(line);
    if (!m || !m[2].includes("64")) continue; // 64-bit entries only
    const paths = map.get(m[1]) ?? [];
    paths.push(m[3]);
    map.set(m[1], paths);
  }
  return map;
}

/** lib folders of Python's nvidia packages: nvidia/<pkg>/lib and nvidia/<cuXY>/lib. */
export function pythonLibDirs(s: SearchEnv): string[] {
  const out: string[] = [];
  for (const root of s.pythonNvidiaDirs()) {
    for (const pkg of s.list(root)) {
      const lib = join(root, pkg, "lib");
      if (s.exists(lib)) out.push(lib);
    }
  }
  return out;
}

function splitPath(v: string | undefined): string[] {
  return (v ?? "").split(":").map((s) => s.trim()).filter(Boolean);
}

/** Looks for one library; `path` is null where none of its file names exist anywhere searched. */
export function findLibrary(lib: CudaLibrary, s: SearchEnv = systemSearchEnv): LibrarySearchResult {
  const names = LIBRARY_FILES[lib];
  const searched: string[] = [];
  const tryDirs = (dirs: string[]): string | null => {
    for (const dir of dirs) {
      if (searched.includes(dir)) continue;
      searched.push(dir);
      for (const n of names) if (s.exists(join(dir, n))) return join(dir, n);
    }
    return null;
  };
  const own = LIB_ENV[lib] ? splitPath(s.env[LIB_ENV[lib]!]) : [];
  const first = tryDirs([...own, ...splitPath(s.env[LIB_DIR_ENV]), ...splitPath(s.env.LD_LIBRARY_PATH), ...STANDARD_DIRS]);
  if (first) return { path: first, searched };

  searched.push("ldconfig -p");
  const cache = parseLdconfig(s.ldconfig());
  for (const n of names) {
    const hit = cache.get(n)?.find((p) => s.exists(p));
    if (hit) return { path: hit, searched };
  }
  return { path: tryDirs(pythonLibDirs(s)), searched };
}

/** A one-line account of every library, for logs: "cuda: /usr/lib/.../libcuda.so.1; nvrtc: not found; ...". */
export function describeLibraries(s: SearchEnv = systemSearchEnv): Record<CudaLibrary, string | null> {
  return {
    cuda: findLibrary("cuda", s).path,
    nvrtc: findLibrary("nvrtc", s).path,
    cublasLt: findLibrary("cublasLt", s).path,
    nccl: findLibrary("nccl", s).path,
  };
}
