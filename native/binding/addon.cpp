// The Node face of the engine: the module's functions and the Engine class (engine_wrap.h). Every
// call that touches files or compute runs on a worker thread and returns a Promise (workers.h),
// so the JavaScript event loop (and a notebook kernel) never blocks; results cross as JSON strings
// that src/native.ts parses and types.
#include <napi.h>

#include <string>
#include <vector>

#include "common/mapped_file.h"
#include "convert.h"
#include "engine_wrap.h"
#include "model_facts.h"
#include "tools/doctor.h"
#include "tools/inspect.h"
#include "tools/links.h"
#include "tools/load_bench.h"
#include "tools/make_model.h"
#include "workers.h"

namespace wanjs {

// registerFatalCleanup(paths: string[]) -> undefined, synchronous: the files to remove when a
// fatal SIGBUS ends the process (a memory-mapped model file truncated under a running engine:
// common/mapped_file.h logs the file on stderr, unlinks these, exits with status 135). Replaces
// the earlier list; [] clears it. Relative paths are resolved against the working directory now.
Napi::Value RegisterFatalCleanup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray())
    throw Napi::TypeError::New(env, "registerFatalCleanup: paths must be an array of strings");
  Napi::Array a = info[0].As<Napi::Array>();
  std::vector<std::string> paths;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value v = a.Get(i);
    if (!v.IsString())
      throw Napi::TypeError::New(env, "registerFatalCleanup: paths[" + std::to_string(i) + "] must be a string");
    paths.push_back(v.As<Napi::String>().Utf8Value());
  }
  try {
    wan::set_fatal_cleanup(paths);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, std::string("registerFatalCleanup: ") + e.what());
  }
  return env.Undefined();
}

// doctor() -> Promise<json string>: tools/doctor.h (runs small checks on every CUDA device).
Napi::Value Doctor(const Napi::CallbackInfo& info) {
  auto* w = new PromiseWorker(info.Env(), [] { return wan::doctor_report().dump(); });
  w->Queue();
  return w->promise();
}

// checkLinks(options) -> Promise<json string>: tools/links.h (the group's pre-flight check and its
// collectives measured); a bad option throws at once.
Napi::Value CheckLinks(const Napi::CallbackInfo& info) {
  const nlohmann::json opts = engine_call(info.Env(), [&] { return object_to_json(object_arg(info, 0), "options"); });
  auto* w = new PromiseWorker(info.Env(), [opts] { return wan::links_report(opts).dump(); });
  w->Queue();
  return w->promise();
}

// inspect(dir, options) -> Promise<json string>: options as tools/inspect.h
// inspect_options_from_json decodes them; a bad one throws at once (a ParamError on its key).
Napi::Value Inspect(const Napi::CallbackInfo& info) {
  const std::string dir = string_arg(info, 0, "dir");
  const wan::InspectOptions opts = engine_call(
      info.Env(), [&] { return wan::inspect_options_from_json(object_to_json(object_arg(info, 1), "options")); });
  auto* w = new PromiseWorker(info.Env(), [dir, opts] { return wan::inspect_model(dir, opts).dump(); });
  w->Queue();
  return w->promise();
}

// makeModel(out, {layout, dims, seed}, onProgress?) -> Promise<"">
Napi::Value MakeModel(const Napi::CallbackInfo& info) {
  const std::string out = string_arg(info, 0, "out");
  Napi::Object o = object_arg(info, 1);
  wan::MakeModelOptions opts;
  auto str = [&](const char* key, std::string& dst) {
    const Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return;
    if (!v.IsString()) throw Napi::TypeError::New(info.Env(), std::string(key) + " must be a string");
    dst = v.As<Napi::String>().Utf8Value();
  };
  str("layout", opts.layout);
  str("dims", opts.dims);
  const Napi::Value s = o.Get("seed");
  if (!s.IsUndefined() && !s.IsNumber()) throw Napi::TypeError::New(info.Env(), "seed must be a number");
  const double seed = s.IsUndefined() ? 0.0 : s.As<Napi::Number>().DoubleValue();
  if (seed < 0 || seed > 9007199254740991.0 || seed != static_cast<double>(static_cast<uint64_t>(seed)))
    throw Napi::RangeError::New(info.Env(), "seed must be an integer from 0 to 2^53-1");
  opts.seed = static_cast<uint64_t>(seed);
  Napi::Function cb = info.Length() > 2 && info[2].IsFunction() ? info[2].As<Napi::Function>() : Napi::Function();
  auto* w = new ProgressWorker(info.Env(), cb, [out, opts](const ProgressWorker::Report& report) {
    wan::MakeModelOptions o = opts;
    o.progress = report;
    wan::make_model(out, o);
    return std::string();
  });
  w->Queue();
  return w->promise();
}

// benchLoad(dir, {mmap, touch}) -> Promise<json string>
Napi::Value BenchLoad(const Napi::CallbackInfo& info) {
  const std::string dir = string_arg(info, 0, "dir");
  Napi::Object o = object_arg(info, 1);
  auto flag = [&](const char* key, bool fallback) {
    const Napi::Value v = o.Get(key);
    if (v.IsUndefined()) return fallback;
    if (!v.IsBoolean()) throw Napi::TypeError::New(info.Env(), std::string(key) + " must be a boolean");
    return v.As<Napi::Boolean>().Value();
  };
  const bool mmap = flag("mmap", true), touch = flag("touch", false);
  auto* w = new PromiseWorker(info.Env(), [dir, mmap, touch] { return wan::bench_load(dir, mmap, touch).dump(); });
  w->Queue();
  return w->promise();
}

}  // namespace wanjs

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace wanjs;
  exports.Set("Engine", define_engine_class(env));
  exports.Set("openEngine", Napi::Function::New(env, OpenEngine));
  exports.Set("inspect", Napi::Function::New(env, Inspect));
  exports.Set("doctor", Napi::Function::New(env, Doctor));
  exports.Set("checkLinks", Napi::Function::New(env, CheckLinks));
  exports.Set("makeModel", Napi::Function::New(env, MakeModel));
  exports.Set("benchLoad", Napi::Function::New(env, BenchLoad));
  exports.Set("registerFatalCleanup", Napi::Function::New(env, RegisterFatalCleanup));
  exports.Set("modelConstants", Napi::Function::New(env, ModelConstants));
  exports.Set("ditFacts", Napi::Function::New(env, DitFacts));
  exports.Set("memoryPlan", Napi::Function::New(env, MemoryPlanOf));
  return exports;
}

}  // namespace

NODE_API_MODULE(wanlab, Init)
