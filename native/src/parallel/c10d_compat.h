// The one place that knows which libtorch's c10d this is built against (Debian's 1.13 or 2.x).
// Both have TCPStore, PrefixStore and ProcessGroupGloo(store, rank, size, options) with the same
// collective methods; they differ in the base class (1.13: ProcessGroup, 2.x: Backend), in
// ProcessGroupNCCL's presence (only CUDA builds of 2.x define USE_C10D_NCCL) and in the optional
// type of TCPStoreOptions. Everything else in parallel/ uses the names below.
#pragma once
#ifndef USE_C10D_GLOO
#error "wanlab's parallel/ needs c10d's Gloo backend: build with -DUSE_C10D_GLOO (native/CMakeLists.txt does)"
#endif

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>
#include <memory>
#include <string>

namespace wan::c10d_compat {

using Store = ::c10d::Store;
using Work = ::c10d::Work;
using WorkPtr = c10::intrusive_ptr<::c10d::Work>;
#if TORCH_VERSION_MAJOR >= 2
using Group = ::c10d::Backend;  // 2.x: ProcessGroupGloo/NCCL are Backends
#else
using Group = ::c10d::ProcessGroup;
#endif
using GroupPtr = c10::intrusive_ptr<Group>;

// A TCPStore: the server (listening on `port`, 0 = any free port) or a client of it.
inline c10::intrusive_ptr<Store> tcp_store(const std::string& host, uint16_t port, bool server,
                                           std::chrono::milliseconds timeout) {
  ::c10d::TCPStoreOptions o;
  o.port = port;
  o.isServer = server;
  o.waitWorkers = false;
  o.timeout = timeout;
#if TORCH_VERSION_MAJOR >= 2
  o.useLibUV = false;  // the classic server: same behaviour as 1.13
#endif
  return c10::make_intrusive<::c10d::TCPStore>(host, o);
}
inline uint16_t tcp_store_port(const c10::intrusive_ptr<Store>& s) {
  return static_cast<::c10d::TCPStore*>(s.get())->getPort();
}
inline c10::intrusive_ptr<Store> prefix_store(const std::string& prefix, const c10::intrusive_ptr<Store>& s) {
  return c10::make_intrusive<::c10d::PrefixStore>(prefix, s);
}

// Gloo over TCP on `host` (the address peers reach this process at), one worker thread, with
// `timeout` on every collective (Gloo's own: a stalled peer fails the op, never hangs it).
inline GroupPtr gloo_group(const c10::intrusive_ptr<Store>& store, int rank, int size, const std::string& host,
                           std::chrono::milliseconds timeout) {
  auto opts = ::c10d::ProcessGroupGloo::Options::create(timeout);
  opts->devices.push_back(::c10d::ProcessGroupGloo::createDeviceForHostname(host));
  opts->threads = 1;
  return c10::make_intrusive<::c10d::ProcessGroupGloo>(store, rank, size, opts);
}

#ifdef USE_C10D_NCCL
inline GroupPtr nccl_group(const c10::intrusive_ptr<Store>& store, int rank, int size,
                           std::chrono::milliseconds timeout) {
  auto opts = ::c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = timeout;
  return c10::make_intrusive<::c10d::ProcessGroupNCCL>(store, rank, size, opts);
}
constexpr bool kHaveNccl = true;
#else
constexpr bool kHaveNccl = false;
#endif

}  // namespace wan::c10d_compat
