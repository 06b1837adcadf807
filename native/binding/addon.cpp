// The Node face of the engine. Every call that touches files or compute runs on a worker
// thread and returns a Promise, so the JavaScript event loop (and a notebook kernel) never
// blocks; results cross as JSON strings that src/native.ts parses and types.
#include <napi.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "tools/doctor.h"
#include "tools/inspect.h"
#include "tools/load_bench.h"
#include "tools/make_model.h"
#include "pipeline/t2v.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace {

// A JS Error for an engine error: a wan::ParamError also carries code "WANLAB_PARAM" and `field`,
// the request field as the engine spells it (snake_case), which src/params.ts maps to the API's name.
Napi::Error js_error(Napi::Env env, const std::exception& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  if (const auto* p = dynamic_cast<const wan::ParamError*>(&e)) {
    err.Value().Set("code", "WANLAB_PARAM");
    err.Value().Set("field", p->field);
  }
  return err;
}

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
T get(const Napi::Object& o, const char* key, T fallback);

// `budget`: bytes, or "auto" (wan::kAutoBudget); -1 when absent.
int64_t budget_option(const Napi::Object& o) {
  if (!o.Get("budget").IsString()) return static_cast<int64_t>(get<double>(o, "budget", -1));
  if (get<std::string>(o, "budget", "") != "auto") throw Napi::TypeError::New(o.Env(), "budget must be bytes or \"auto\"");
  return wan::kAutoBudget;
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

// doctor() -> Promise<json string>: bench/doctor.h (runs small checks on every CUDA device).
Napi::Value Doctor(const Napi::CallbackInfo& info) {
  auto* w = new PromiseWorker(info.Env(), [] { return wan::doctor_report().dump(); });
  w->Queue();
  return w->promise();
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
  opts.budget_bytes = budget_option(o);
  opts.persistent_params = static_cast<int64_t>(get<double>(o, "persistentParams", -1));
  opts.t5_device = get<std::string>(o, "t5Device", "");
  opts.t5_offload = get<bool>(o, "t5Offload", false);
  opts.tiled = get<bool>(o, "tiled", false);
  opts.shard_weights = get<bool>(o, "shardWeights", false);
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


// ---- the engine: a loaded model that stays resident across generate() calls ----------------

// A tensor handed to JavaScript without a copy: the ArrayBuffer's finalizer owns a reference.
Napi::Value float_array(Napi::Env env, const at::Tensor& t0) {
  auto* keep = new at::Tensor(t0.to(at::kFloat).contiguous());
  size_t n = keep->numel();
  if (n == 0) {
    delete keep;
    return Napi::Float32Array::New(env, 0);
  }
  auto buf = Napi::ArrayBuffer::New(env, keep->data_ptr(), n * sizeof(float),
                                    [](Napi::Env, void*, at::Tensor* t) { delete t; }, keep);
  return Napi::Float32Array::New(env, n, buf, 0);
}
Napi::Array shape_of(Napi::Env env, const at::Tensor& t) {
  Napi::Array a = Napi::Array::New(env, t.dim());
  for (int64_t i = 0; i < t.dim(); ++i) a.Set(uint32_t(i), Napi::Number::New(env, double(t.size(i))));
  return a;
}
Napi::Object tensor_object(Napi::Env env, const at::Tensor& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("data", float_array(env, t));
  o.Set("shape", shape_of(env, t));
  return o;
}

at::Tensor int64_tensor(const Napi::Object& req, const char* key, bool required) {
  Napi::Value v = req.Get(key);
  if (v.IsUndefined() || v.IsNull()) {
    if (required) throw Napi::TypeError::New(req.Env(), std::string(key) + " is required");
    return {};
  }
  if (!v.IsTypedArray()) throw Napi::TypeError::New(req.Env(), std::string(key) + " must be a typed array");
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  const int64_t n = static_cast<int64_t>(ta.ElementLength());
  at::Tensor t = at::empty({n}, at::kLong);
  int64_t* out = t.data_ptr<int64_t>();
  const uint8_t* base = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  switch (ta.TypedArrayType()) {
    case napi_bigint64_array: std::memcpy(out, base, n * 8); break;
    case napi_uint8_array: for (int64_t i = 0; i < n; ++i) out[i] = base[i]; break;
    case napi_int32_array: for (int64_t i = 0; i < n; ++i) out[i] = reinterpret_cast<const int32_t*>(base)[i]; break;
    default: throw Napi::TypeError::New(req.Env(), std::string(key) + " must be a BigInt64Array, Int32Array or Uint8Array");
  }
  return t;
}

uint64_t seed_value(const Napi::Value& v) {
  Napi::Env env = v.Env();
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t s = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::RangeError::New(env, "seed must be an integer from 0 to 2^64-1");
    return s;
  }
  if (v.IsString()) {
    std::string s = v.As<Napi::String>().Utf8Value();
    if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string::npos)
      throw Napi::RangeError::New(env, "seed must be an integer from 0 to 2^64-1, got '" + s + "'");
    errno = 0;
    unsigned long long r = std::strtoull(s.c_str(), nullptr, 10);
    if (errno == ERANGE) throw Napi::RangeError::New(env, "seed must be at most 2^64-1, got " + s);
    return r;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<uint64_t>(d)))
      throw Napi::RangeError::New(env, "seed must be an integer from 0 to 2^53-1 as a number (use a BigInt beyond)");
    return static_cast<uint64_t>(d);
  }
  throw Napi::TypeError::New(env, "seed must be a bigint, a decimal string or a number");
}

// The request's video and decode shape, CFG and TeaCache: all the memory plan needs.
wan::T2VRequest request_shape_from(const Napi::Object& req) {
  wan::T2VRequest r;
  r.cfg_scale = get<double>(req, "cfgScale", r.cfg_scale);
  r.tea_cache_l1_thresh = get<double>(req, "teaCacheL1Thresh", r.tea_cache_l1_thresh);
  r.tea_cache_model_id = get<std::string>(req, "teaCacheModelId", r.tea_cache_model_id);
  r.height = get<int64_t>(req, "height", r.height);
  r.width = get<int64_t>(req, "width", r.width);
  r.num_frames = get<int64_t>(req, "numFrames", r.num_frames);
  r.denoising_strength = get<double>(req, "denoisingStrength", r.denoising_strength);
  // inputVideo: {data: Float32Array [3 * numFrames * height * width], shape} for a generation;
  // `true` for a memory plan, which only needs to know that a video will be encoded.
  Napi::Value video = req.Get("inputVideo");
  if (video.IsBoolean()) {
    if (video.As<Napi::Boolean>().Value()) r.input_video = at::empty({0});
  } else if (video.IsObject()) {
    Napi::Object o = video.As<Napi::Object>();
    Napi::Value data = o.Get("data"), shape = o.Get("shape");
    if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array || !shape.IsArray())
      throw Napi::TypeError::New(req.Env(), "inputVideo must be {data: Float32Array, shape: [3, F, H, W]}");
    std::vector<int64_t> dims;
    Napi::Array a = shape.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); ++i) dims.push_back(a.Get(i).As<Napi::Number>().Int64Value());
    Napi::Float32Array f = data.As<Napi::Float32Array>();
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    if (n != int64_t(f.ElementLength()))
      throw Napi::RangeError::New(req.Env(), "inputVideo: shape and data length disagree");
    r.input_video = at::from_blob(f.Data(), dims, at::kFloat).clone();
  } else if (!video.IsUndefined() && !video.IsNull()) {
    throw Napi::TypeError::New(req.Env(), "inputVideo must be {data, shape} or true");
  }
  r.tiled = get<bool>(req, "tiled", r.tiled);
  for (const char* key : {"tileSize", "tileStride"}) {
    Napi::Value v = req.Get(key);
    if (v.IsUndefined()) continue;
    if (!v.IsArray() || v.As<Napi::Array>().Length() != 2)
      throw Napi::TypeError::New(req.Env(), std::string(key) + " must be [height, width] in latent units");
    auto& dst = std::string(key) == "tileSize" ? r.tile_size : r.tile_stride;
    for (uint32_t i = 0; i < 2; ++i) dst[i] = v.As<Napi::Array>().Get(i).As<Napi::Number>().Int64Value();
  }
  return r;
}

wan::T2VRequest request_from(const Napi::Object& req) {
  wan::T2VRequest r = request_shape_from(req);
  r.prompt_ids = int64_tensor(req, "promptIds", true);
  r.prompt_mask = int64_tensor(req, "promptMask", true);
  r.negative_ids = int64_tensor(req, "negativeIds", false);
  r.negative_mask = int64_tensor(req, "negativeMask", false);
  r.seed = seed_value(req.Get("seed"));
  r.num_inference_steps = get<int64_t>(req, "numInferenceSteps", r.num_inference_steps);
  r.sigma_shift = get<double>(req, "sigmaShift", r.sigma_shift);
  return r;
}

class EngineWrap : public Napi::ObjectWrap<EngineWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Engine",
                       {InstanceMethod("generate", &EngineWrap::Generate), InstanceMethod("cancel", &EngineWrap::Cancel),
                        InstanceMethod("info", &EngineWrap::Info), InstanceMethod("memory", &EngineWrap::Memory),
                        InstanceMethod("plan", &EngineWrap::Plan),
                        InstanceMethod("promptCache", &EngineWrap::PromptCache),
                        InstanceMethod("close", &EngineWrap::Close),
                        InstanceMethod("follow", &EngineWrap::Follow),
                        InstanceMethod("stopFollowing", &EngineWrap::StopFollowing),
                        InstanceMethod("endRequests", &EngineWrap::EndRequests)});
  }
  EngineWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "use openEngine(dir) to create an Engine");
    engine_ = *info[0].As<Napi::External<std::shared_ptr<wan::T2VEngine>>>().Data();
  }

 private:
  std::shared_ptr<wan::T2VEngine> engine() {
    if (!engine_) throw Napi::Error::New(Env(), "the engine is closed");
    return engine_;
  }

  // generate(request, onProgress?, saveTensorsPath?, previewEvery?) -> Promise<{noise, context, latents, video, timings}>
  // previewEvery k > 0: every k-th denoise event (and the last) carries `latents` [16, f, h, w].
  Napi::Value Generate(const Napi::CallbackInfo& info) {
    auto eng = engine();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "request must be an object");
    wan::T2VRequest req = request_from(info[0].As<Napi::Object>());
    try {
      eng->validate(req);  // bad parameters (and a request over the memory budget) reject before any work is queued
    } catch (const std::exception& e) {
      throw js_error(info.Env(), e);
    }
    Napi::Function cb = info.Length() > 1 && info[1].IsFunction() ? info[1].As<Napi::Function>() : Napi::Function();
    std::string save = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
    const int64_t preview_every = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int64Value() : 0;
    auto cancel = cancel_;
    auto* w = new GenerateWorker(info.Env(), cb, eng, std::move(req), std::move(save), cancel, preview_every);
    w->Queue();
    return w->promise();
  }
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    cancel_->store(true);
    return info.Env().Undefined();
  }
  // follow() -> Promise<json {followed, failed: [{request, error}]}>: nodes 1.. of a multi-node
  // engine run node 0's requests until node 0 ends them or stopFollowing() is called.
  Napi::Value Follow(const Napi::CallbackInfo& info) {
    auto eng = engine();
    auto stop = follow_stop_;
    stop->store(false);
    auto* w = new PromiseWorker(info.Env(), [eng, stop] {
      nlohmann::json failed = nlohmann::json::array();
      int64_t followed = 0;
      eng->follow(*stop, [&](int64_t n, const std::string& error) {
        ++followed;
        if (!error.empty()) failed.push_back({{"request", n}, {"error", error}});
      });
      return nlohmann::json{{"followed", followed}, {"failed", failed}}.dump();
    });
    w->Queue();
    return w->promise();
  }
  Napi::Value StopFollowing(const Napi::CallbackInfo& info) {
    follow_stop_->store(true);
    return info.Env().Undefined();
  }
  Napi::Value EndRequests(const Napi::CallbackInfo& info) {
    engine()->end_requests();
    return info.Env().Undefined();
  }
  // promptCache() -> json string: the engine's prompt-embedding cache (pipeline/prompt_cache.h).
  Napi::Value PromptCache(const Napi::CallbackInfo& info) {
    const wan::PromptCache::Stats s = engine()->prompt_cache_stats();
    const nlohmann::json j = {{"entries", s.entries}, {"bytes", s.bytes}, {"capacity_bytes", s.capacity_bytes},
                              {"hits", s.hits}, {"misses", s.misses}};
    return Napi::String::New(info.Env(), j.dump());
  }
  // memory() -> json string: T2VEngine::memory_now() (cheap: driver and allocator counters).
  Napi::Value Memory(const Napi::CallbackInfo& info) {
    auto eng = engine();
    try {
      return Napi::String::New(info.Env(), eng->memory_now().dump());
    } catch (const std::exception& e) {  // a CUDA error reading the counters: a JS error, not an abort
      throw Napi::Error::New(info.Env(), e.what());
    }
  }
  // plan({height, width, numFrames, tiled, tileSize}) -> JSON: the memory model's stages for that
  // video on this engine's placement, and whether it fits the budget (T2VEngine::memory_report).
  Napi::Value Plan(const Napi::CallbackInfo& info) {
    auto eng = engine();
    if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(info.Env(), "plan: request must be an object");
    const wan::T2VRequest r = request_shape_from(info[0].As<Napi::Object>());
    try {
      return Napi::String::New(info.Env(), eng->memory_report(r).dump());
    } catch (const std::exception& e) {  // e.g. no TeaCache calibration fits this DiT: a ParamError
      throw js_error(info.Env(), e);
    }
  }
  Napi::Value Info(const Napi::CallbackInfo& info) {
    auto eng = engine();
    const auto& m = eng->model();
    nlohmann::json j = {{"dir", m.files.dir},
                        {"layout", wan::layout_name(m.files.layout)},
                        {"tokenizer_dir", m.files.tokenizer_dir},
                        {"dit", wan::to_json(m.arch.dit)},
                        {"t5", wan::to_json(m.arch.t5)},
                        {"vae", wan::to_json(m.arch.vae)},
                        {"parallel", {{"devices", eng->layout().devices}, {"ulysses", eng->layout().ulysses},
                                      {"ring", eng->layout().ring}, {"cfg", eng->layout().cfg}}},
                        {"placement", eng->placement()}};
    return Napi::String::New(info.Env(), j.dump());
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    cancel_->store(true);  // a running generation stops within seconds (pipeline/t2v.h Cancelled) and frees the model after
    engine_.reset();
    return info.Env().Undefined();
  }

  struct Event {
    std::string stage;
    int64_t step, total;
    double elapsed, eta;
    at::Tensor latents;  // only on preview steps
  };
  class GenerateWorker : public Napi::AsyncProgressQueueWorker<Event> {
   public:
    GenerateWorker(Napi::Env env, Napi::Function cb, std::shared_ptr<wan::T2VEngine> eng, wan::T2VRequest req,
                   std::string save, std::shared_ptr<std::atomic<bool>> cancel, int64_t preview_every)
        : Napi::AsyncProgressQueueWorker<Event>(env),
          eng_(std::move(eng)),
          req_(std::move(req)),
          save_(std::move(save)),
          cancel_(std::move(cancel)),
          preview_every_(preview_every),
          deferred_(Napi::Promise::Deferred::New(env)) {
      if (!cb.IsEmpty()) cb_ = Napi::Persistent(cb);
    }
    Napi::Promise promise() { return deferred_.Promise(); }
    void Execute(const ExecutionProgress& progress) override {
      // One generation at a time per engine; a cancel() before this one starts does not count.
      std::lock_guard<std::mutex> lock(mutex());
      cancel_->store(false);
      try {
        result_ = eng_->generate(req_, [&](const wan::T2VEvent& e) {
          Event ev{e.stage, e.step, e.total, e.elapsed_s, e.eta_s, {}};
          if (preview_every_ > 0 && e.latents.defined() && (e.step % preview_every_ == 0 || e.step == e.total))
            ev.latents = e.latents.to(at::kCPU, at::kFloat);  // a copy: the engine's x moves on
          progress.Send(&ev, 1);
        }, cancel_.get());
        if (!save_.empty()) wan::save_result_tensors(save_, result_, req_);
      } catch (const wan::Cancelled& e) {
        cancelled_ = true;
        stopped_ = e;
        SetError(e.what());
      } catch (const wan::ParamError& e) {
        param_field_ = e.field;
        SetError(e.what());
      } catch (const std::exception& e) {
        SetError(e.what());
      }
    }
    void OnProgress(const Event* e, size_t n) override {
      if (cb_.IsEmpty()) return;
      for (size_t i = 0; i < n; ++i) {
        Napi::Object o = Napi::Object::New(Env());
        o.Set("stage", e[i].stage);
        o.Set("step", double(e[i].step));
        o.Set("total", double(e[i].total));
        o.Set("elapsed", e[i].elapsed);
        o.Set("eta", e[i].eta);
        if (e[i].latents.defined()) o.Set("latents", tensor_object(Env(), e[i].latents));
        cb_.Call({o});
      }
    }
    void OnOK() override {
      Napi::Env env = Env();
      Napi::Object o = Napi::Object::New(env);
      o.Set("noise", tensor_object(env, result_.noise));
      o.Set("context", tensor_object(env, result_.context));
      o.Set("latents", tensor_object(env, result_.latents));
      o.Set("video", tensor_object(env, result_.video));
      o.Set("timings", Napi::String::New(env, result_.timings.dump()));
      deferred_.Resolve(o);
    }
    void OnError(const Napi::Error& e) override {
      Napi::Object err = e.Value();
      if (cancelled_) {  // where it stopped (pipeline/t2v.h Cancelled); absent fields do not apply
        err.Set("code", "WANLAB_CANCELLED");
        err.Set("stage", stopped_->stage);
        if (stopped_->step > 0) err.Set("step", double(stopped_->step)), err.Set("steps", double(stopped_->steps));
        if (stopped_->part > 0) {
          err.Set(stopped_->unit, double(stopped_->part));
          err.Set(stopped_->unit + "s", double(stopped_->parts));
        }
      }
      if (param_field_) err.Set("code", "WANLAB_PARAM"), err.Set("field", *param_field_);
      deferred_.Reject(err);
    }

   private:
    static std::mutex& mutex() {
      static std::mutex m;
      return m;
    }
    std::shared_ptr<wan::T2VEngine> eng_;
    wan::T2VRequest req_;
    std::string save_;
    std::shared_ptr<std::atomic<bool>> cancel_;
    int64_t preview_every_ = 0;
    Napi::FunctionReference cb_;
    Napi::Promise::Deferred deferred_;
    wan::T2VResult result_;
    bool cancelled_ = false;
    std::optional<wan::Cancelled> stopped_;
    std::optional<std::string> param_field_;  // the request field of a wan::ParamError
  };

  std::shared_ptr<wan::T2VEngine> engine_;
  std::shared_ptr<std::atomic<bool>> cancel_ = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<bool>> follow_stop_ = std::make_shared<std::atomic<bool>>(false);
};

// openEngine(dir, {devices, ulysses, ring, cfgParallel, timeoutS, rendezvous, nnodes, nodeRank, logDir, logLevel,
//                  dtype, t5Device, t5Offload, vaeDevice, persistentParams, shardWeights, budget,
//                  budgetVideo: {height, width, numFrames, tiled}})
// -> Promise<Engine>: loads and
// validates the model on a worker thread; with several devices, starts the device group.
Napi::Value OpenEngine(const Napi::CallbackInfo& info) {
  std::string dir = string_arg(info, 0, "dir");
  Napi::Object o = object_arg(info, 1);
  wan::ParallelOptions par;
  par.devices = get<std::string>(o, "devices", par.devices);
  par.ulysses = get<int>(o, "ulysses", par.ulysses);
  par.ring = get<int>(o, "ring", par.ring);
  par.cfg_parallel = get<bool>(o, "cfgParallel", par.cfg_parallel);
  par.timeout_s = get<double>(o, "timeoutS", par.timeout_s);
  par.rendezvous = get<std::string>(o, "rendezvous", par.rendezvous);
  par.nnodes = get<int>(o, "nnodes", par.nnodes);
  par.node_rank = get<int>(o, "nodeRank", par.node_rank);
  par.log_dir = get<std::string>(o, "logDir", par.log_dir);
  par.log_level = get<std::string>(o, "logLevel", par.log_level);
  wan::ComputeOptions compute;
  compute.dtype = get<std::string>(o, "dtype", compute.dtype);
  compute.t5_device = get<std::string>(o, "t5Device", compute.t5_device);
  compute.t5_offload = get<bool>(o, "t5Offload", false);
  compute.vae_device = get<std::string>(o, "vaeDevice", compute.vae_device);
  compute.persistent_params = static_cast<int64_t>(get<double>(o, "persistentParams", -1));
  compute.shard_weights = get<bool>(o, "shardWeights", false);
  compute.memory_budget = budget_option(o);
  if (o.Has("budgetVideo") && o.Get("budgetVideo").IsObject()) {
    Napi::Object v = o.Get("budgetVideo").As<Napi::Object>();
    auto& b = compute.budget_video;
    b.height = static_cast<int64_t>(get<double>(v, "height", double(b.height)));
    b.width = static_cast<int64_t>(get<double>(v, "width", double(b.width)));
    b.num_frames = static_cast<int64_t>(get<double>(v, "numFrames", double(b.num_frames)));
    b.tiled = get<bool>(v, "tiled", b.tiled);
  }
  class OpenWorker : public Napi::AsyncWorker {
   public:
    OpenWorker(Napi::Env env, std::string dir, wan::ParallelOptions par, wan::ComputeOptions compute)
        : Napi::AsyncWorker(env), dir_(std::move(dir)), par_(std::move(par)), compute_(std::move(compute)),
          deferred_(Napi::Promise::Deferred::New(env)) {}
    Napi::Promise promise() { return deferred_.Promise(); }
    void Execute() override {
      try {
        engine_ = std::make_shared<wan::T2VEngine>(dir_, par_, compute_);
      } catch (const std::exception& e) {
        SetError(e.what());
      }
    }
    void OnOK() override {
      Napi::Env env = Env();
      auto* ctor = env.GetInstanceData<Napi::FunctionReference>();
      auto ext = Napi::External<std::shared_ptr<wan::T2VEngine>>::New(
          env, new std::shared_ptr<wan::T2VEngine>(engine_),
          [](Napi::Env, std::shared_ptr<wan::T2VEngine>* p) { delete p; });
      deferred_.Resolve(ctor->New({ext}));
    }
    void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

   private:
    std::string dir_;
    wan::ParallelOptions par_;
    wan::ComputeOptions compute_;
    std::shared_ptr<wan::T2VEngine> engine_;
    Napi::Promise::Deferred deferred_;
  };
  auto* w = new OpenWorker(info.Env(), dir, par, compute);
  w->Queue();
  return w->promise();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function engine = EngineWrap::Define(env);
  env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(engine)));
  exports.Set("Engine", engine);
  exports.Set("openEngine", Napi::Function::New(env, OpenEngine));
  exports.Set("inspect", Napi::Function::New(env, Inspect));
  exports.Set("doctor", Napi::Function::New(env, Doctor));
  exports.Set("makeModel", Napi::Function::New(env, MakeModel));
  exports.Set("benchLoad", Napi::Function::New(env, BenchLoad));
  exports.Set("registerFatalCleanup", Napi::Function::New(env, RegisterFatalCleanup));
  return exports;
}

}  // namespace

NODE_API_MODULE(wanlab, Init)
