// The Node face of the engine. Every call that touches files or compute runs on a worker
// thread and returns a Promise, so the JavaScript event loop (and a notebook kernel) never
// blocks; results cross as JSON strings that kernel/native.ts parses and types.
#include <napi.h>

#include <functional>
#include <string>

#include "checkpoint/inspect.h"
#include "checkpoint/load_bench.h"
#include "checkpoint/make_model.h"

namespace {

// Runs `work` on the libuv pool; resolves with its string, rejects with the wan::Error text.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::function<std::string()> work)
      : Napi::AsyncWorker(env), work_(std::move(work)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      result_ = work_();
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Napi::String::New(Env(), result_)); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::function<std::string()> work_;
  Napi::Promise::Deferred deferred_;
  std::string result_;
};

// Like PromiseWorker, with progress events (message, fraction) delivered on the JS thread.
struct Progress {
  std::string message;
  double fraction;
};
class ProgressWorker : public Napi::AsyncProgressQueueWorker<Progress> {
 public:
  using Report = std::function<void(const std::string&, double)>;
  ProgressWorker(Napi::Env env, Napi::Function on_progress, std::function<std::string(const Report&)> work)
      : Napi::AsyncProgressQueueWorker<Progress>(env),
        work_(std::move(work)),
        deferred_(Napi::Promise::Deferred::New(env)) {
    if (!on_progress.IsEmpty()) callback_ = Napi::Persistent(on_progress);
  }
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute(const ExecutionProgress& progress) override {
    try {
      result_ = work_([&](const std::string& m, double f) {
        Progress p{m, f};
        progress.Send(&p, 1);
      });
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnProgress(const Progress* p, size_t n) override {
    if (callback_.IsEmpty()) return;
    for (size_t i = 0; i < n; ++i)
      callback_.Call({Napi::String::New(Env(), p[i].message), Napi::Number::New(Env(), p[i].fraction)});
  }
  void OnOK() override { deferred_.Resolve(Napi::String::New(Env(), result_)); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::function<std::string(const Report&)> work_;
  Napi::FunctionReference callback_;
  Napi::Promise::Deferred deferred_;
  std::string result_;
};

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}
Napi::Object object_arg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined()) return Napi::Object::New(info.Env());
  if (!info[i].IsObject()) throw Napi::TypeError::New(info.Env(), "options must be an object");
  return info[i].As<Napi::Object>();
}
template <typename T>
T get(const Napi::Object& o, const char* key, T fallback) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return fallback;
  if constexpr (std::is_same_v<T, std::string>) {
    if (!v.IsString()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a string");
    return v.As<Napi::String>().Utf8Value();
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a boolean");
    return v.As<Napi::Boolean>().Value();
  } else {
    if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a number");
    return static_cast<T>(v.As<Napi::Number>().DoubleValue());
  }
}

// inspect(dir, {devices, ulysses, ring, cfg, height, width, numFrames}) -> Promise<json string>
Napi::Value Inspect(const Napi::CallbackInfo& info) {
  std::string dir = string_arg(info, 0, "dir");
  Napi::Object o = object_arg(info, 1);
  wan::InspectOptions opts;
  opts.devices = get<std::string>(o, "devices", opts.devices);
  opts.ulysses = get<int>(o, "ulysses", opts.ulysses);
  opts.ring = get<int>(o, "ring", opts.ring);
  opts.cfg = get<int>(o, "cfg", opts.cfg);
  opts.height = get<int>(o, "height", opts.height);
  opts.width = get<int>(o, "width", opts.width);
  opts.num_frames = get<int>(o, "numFrames", opts.num_frames);
  auto* w = new PromiseWorker(info.Env(), [dir, opts] { return wan::inspect_model(dir, opts).dump(); });
  w->Queue();
  return w->promise();
}

// makeModel(out, {layout, dims, seed}, onProgress?) -> Promise<"">
Napi::Value MakeModel(const Napi::CallbackInfo& info) {
  std::string out = string_arg(info, 0, "out");
  Napi::Object o = object_arg(info, 1);
  wan::MakeModelOptions opts;
  opts.layout = get<std::string>(o, "layout", opts.layout);
  opts.dims = get<std::string>(o, "dims", opts.dims);
  double seed = get<double>(o, "seed", 0.0);
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
  std::string dir = string_arg(info, 0, "dir");
  Napi::Object o = object_arg(info, 1);
  bool mmap = get<bool>(o, "mmap", true), touch = get<bool>(o, "touch", false);
  auto* w = new PromiseWorker(info.Env(), [dir, mmap, touch] { return wan::bench_load(dir, mmap, touch).dump(); });
  w->Queue();
  return w->promise();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("inspect", Napi::Function::New(env, Inspect));
  exports.Set("makeModel", Napi::Function::New(env, MakeModel));
  exports.Set("benchLoad", Napi::Function::New(env, BenchLoad));
  return exports;
}

}  // namespace

NODE_API_MODULE(wanlab, Init)
