// What the fake driver needs from the emulator: registered kernels and a launcher.
#pragma once
#include <string>
#include <vector>

#include "cuda_emu.hpp"

namespace emu {

struct KernelInfo {
  Thunk thunk;
  std::vector<size_t> arg_sizes;  // bytes of each parameter, in order
};

const KernelInfo* find_kernel(const char* name);

// Runs every block of the launch to completion; returns "" or what went wrong.
std::string launch(const KernelInfo& k, Dim3 grid, Dim3 block, void** params);

}  // namespace emu
