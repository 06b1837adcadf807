#include "kernels/jit.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/DeviceGuard.h>
#include <dlfcn.h>
#include <glob.h>

#include <cstdlib>
#include <map>
#include <mutex>

#include "common/cuda.h"
#include "common/error.h"
#include "common/log.h"
#include "kernels/kernel_code.h"

namespace wan::kernels {

namespace {

// The few NVRTC and driver entry points, by their C signatures (enums as int, handles as void*).
struct Nvrtc {
  int (*create)(void** prog, const char* src, const char* name, int n, const char* const* h, const char* const* hn);
  int (*compile)(void* prog, int n, const char* const* options);
  int (*log_size)(void* prog, size_t* size);
  int (*log)(void* prog, char* log);
  int (*cubin_size)(void* prog, size_t* size);
  int (*cubin)(void* prog, char* cubin);
  int (*destroy)(void** prog);
  const char* (*error_string)(int result);
};
struct Driver {
  int (*init)(unsigned flags);
  int (*module_load_data)(void** module, const void* image);
  int (*module_get_function)(void** fn, void* module, const char* name);
  int (*launch_kernel)(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                       unsigned shared, void* stream, void** params, void** extra);
  int (*error_string)(int result, const char** text);
};

template <typename F>
bool bind(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  return f != nullptr;
}

// Candidate paths for libnvrtc, in the order of the header's comment.
std::vector<std::string> nvrtc_candidates() {
  std::vector<std::string> c;
  if (const char* env = std::getenv("WANLAB_NVRTC")) c.push_back(env);
  for (const char* so : {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"}) c.push_back(so);
  Dl_info info;  // where libc10 (so libtorch) was loaded from: a pip wheel keeps NVRTC beside it
  if (dladdr(reinterpret_cast<void*>(&c10::GetCPUAllocator), &info) && info.dli_fname) {
    std::string dir = info.dli_fname;
    dir = dir.substr(0, dir.rfind('/'));
    for (const std::string& pattern : {dir + "/../../nvidia/*/lib/libnvrtc.so*", dir + "/libnvrtc*.so*",
                                       std::string("/usr/local/cuda/lib64/libnvrtc.so*")}) {
      glob_t g;
      if (glob(pattern.c_str(), 0, nullptr, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) c.push_back(g.gl_pathv[i]);
      globfree(&g);
    }
  }
  return c;
}

// Opened once per process; `why` says what is missing.
const Nvrtc* nvrtc(std::string* why) {
  static Nvrtc api;
  static std::string error;
  static const bool ok = [] {
    void* lib = nullptr;
    std::string tried;
    for (const std::string& p : nvrtc_candidates()) {
      if ((lib = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL))) {
        log_debug("kernels: NVRTC from ", p);
        break;
      }
      tried += (tried.empty() ? "" : ", ") + p;
    }
    if (!lib) {
      error = concat("libnvrtc not found (tried ", tried, "; set WANLAB_NVRTC=/path/libnvrtc.so)");
      return false;
    }
    const bool all = bind(lib, "nvrtcCreateProgram", api.create) && bind(lib, "nvrtcCompileProgram", api.compile) &&
                     bind(lib, "nvrtcGetProgramLogSize", api.log_size) && bind(lib, "nvrtcGetProgramLog", api.log) &&
                     bind(lib, "nvrtcGetCUBINSize", api.cubin_size) && bind(lib, "nvrtcGetCUBIN", api.cubin) &&
                     bind(lib, "nvrtcDestroyProgram", api.destroy) && bind(lib, "nvrtcGetErrorString", api.error_string);
    if (!all) error = "libnvrtc lacks the cubin API (NVRTC >= 11.1 is needed)";
    return all;
  }();
  if (!ok && why) *why = error;
  return ok ? &api : nullptr;
}

const Driver* driver(std::string* why) {
  static Driver api;
  static std::string error;
  static const bool ok = [] {
    void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      error = "libcuda.so.1 (the NVIDIA driver) not found";
      return false;
    }
    const bool all = bind(lib, "cuInit", api.init) && bind(lib, "cuModuleLoadData", api.module_load_data) &&
                     bind(lib, "cuModuleGetFunction", api.module_get_function) &&
                     bind(lib, "cuLaunchKernel", api.launch_kernel) && bind(lib, "cuGetErrorString", api.error_string);
    if (!all) {
      error = "libcuda.so.1 lacks a driver entry point";
      return false;
    }
    const int r = api.init(0);
    if (r) error = concat("cuInit failed with CUresult ", r);
    return r == 0;
  }();
  if (!ok && why) *why = error;
  return ok ? &api : nullptr;
}

std::string driver_error(const Driver& d, int r) {
  const char* text = nullptr;
  d.error_string(r, &text);
  return concat("CUresult ", r, text ? concat(" (", text, ")") : std::string());
}

// -> the cubin, or "" with `error` set.
std::string compile_cubin(const std::string& name, const std::string& source, int cc, std::string& error) {
  const Nvrtc* api = nvrtc(&error);
  if (!api) return {};
  void* prog = nullptr;
  if (int r = api->create(&prog, source.c_str(), (name + ".cu").c_str(), 0, nullptr, nullptr)) {
    error = concat("nvrtcCreateProgram: ", api->error_string(r));
    return {};
  }
  // --fmad=false: the same float32 arithmetic as the host emulation the tests compare against.
  const std::string arch = concat("--gpu-architecture=sm_", cc);
  const char* options[] = {arch.c_str(), "--std=c++17", "--fmad=false"};
  const int r = api->compile(prog, 3, options);
  std::string cubin;
  if (r) {
    size_t n = 0;
    api->log_size(prog, &n);
    std::string log(n, '\0');
    if (n) api->log(prog, log.data());
    error = concat("NVRTC could not compile kernel '", name, "' for sm_", cc, ": ", api->error_string(r), "\n", log);
  } else {
    size_t n = 0;
    api->cubin_size(prog, &n);
    cubin.resize(n);
    api->cubin(prog, cubin.data());
  }
  api->destroy(&prog);
  return cubin;
}

}  // namespace

std::string device_source(const char* code, const std::string& entry) {
  return concat(
      "#define WANLAB_FN __device__ __forceinline__\n"
      "__device__ __forceinline__ unsigned int as_uint(float f) { return __float_as_uint(f); }\n"
      "__device__ __forceinline__ float as_float(unsigned int u) { return __uint_as_float(u); }\n",
      bf16_code(), "\n", code, "\n", entry);
}

Kernel device_kernel(const std::string& name, const std::function<std::string()>& source, const at::Device& device,
                     const std::function<std::string(const Kernel&)>& check) {
  Kernel k;
  const char* off = std::getenv("WANLAB_OWN_KERNELS");
  if (off && std::string(off) == "0") k.error = "turned off by WANLAB_OWN_KERNELS=0";
  else if (!cuda_built()) k.error = "this build has no CUDA";
  else if (!device.is_cuda()) k.error = concat(device.str(), " is not a CUDA device");
  if (!k.error.empty()) return k;  // not cached: nothing was compiled
  static std::mutex mu;
  static std::map<std::pair<std::string, int>, Kernel> cache;
  std::lock_guard<std::mutex> lock(mu);
  const int index = device.has_index() ? device.index() : 0;
  auto it = cache.find({name, index});
  if (it != cache.end()) return it->second;
  c10::DeviceGuard guard(device);  // the module loads into this device's context
  const Driver* d = driver(&k.error);
  if (d) {
    const std::string cubin = compile_cubin(name, source(), cuda_compute_capability(device), k.error);
    void* module = nullptr;
    if (!cubin.empty()) {
      if (int r = d->module_load_data(&module, cubin.data())) {
        k.error = concat("cuModuleLoadData: ", driver_error(*d, r));
      } else if (int r2 = d->module_get_function(&k.fn, module, name.c_str())) {
        k.error = concat("cuModuleGetFunction '", name, "': ", driver_error(*d, r2));
        k.fn = nullptr;
      }
    }
  }
  if (k) {
    try {
      k.error = check(k);
    } catch (const std::exception& e) {
      k.error = concat("its check threw: ", e.what());
    }
    if (!k.error.empty()) k.fn = nullptr;
  }
  if (k) log_info("kernels: '", name, "' ready on ", device.str());
  else log_warn("kernels: '", name, "' unavailable on ", device.str(), ", ATen's path runs instead: ", k.error);
  return cache.emplace(std::make_pair(name, index), k).first->second;
}

void launch(const Kernel& k, int64_t blocks, int threads_x, int threads_y, void* stream, std::vector<void*> args) {
  if (!k) fail("kernels: launch of an unavailable kernel: ", k.error);
  if (blocks < 1 || blocks > 0x7fffffff) fail("kernels: ", blocks, " blocks is outside the grid's 1..2^31-1");
  const Driver* d = driver(nullptr);
  if (int r = d->launch_kernel(k.fn, unsigned(blocks), 1, 1, unsigned(threads_x), unsigned(threads_y), 1, 0, stream,
                               args.data(), nullptr))
    fail("kernels: cuLaunchKernel (", blocks, " blocks of ", threads_x, "x", threads_y, "): ", driver_error(*d, r));
}

}  // namespace wan::kernels
