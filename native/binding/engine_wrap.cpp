#include "engine_wrap.h"

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>

#include "convert.h"
#include "pipeline/engine_options.h"
#include "pipeline/request.h"
#include "pipeline/t2v.h"
#include "workers.h"

namespace wanjs {

namespace {

// A request object as the engine takes it: every key but inputVideo and resumeLatents through the
// request codec (pipeline/request.h), those two as tensors beside it (convert.h input_video). A memory plan
// (`need_prompt` false) needs no token ids.
wan::T2VRequest request_arg(const Napi::CallbackInfo& info, const char* call, bool need_prompt) {
  if (info.Length() < 1 || !info[0].IsObject())
    throw Napi::TypeError::New(info.Env(), std::string(call) + ": request must be an object");
  const Napi::Object o = info[0].As<Napi::Object>();
  wan::T2VRequest r = engine_call(
      info.Env(), [&] { return wan::request_from_json(object_to_json(o, "request", {"inputVideo", "resumeLatents"}), need_prompt); });
  r.input_video = input_video(o.Get("inputVideo"));
  // A resumed run's latents (pipeline/fork.h), {data: Float32Array, shape: [16, f, h, w]}: decoded as
  // inputVideo is; the engine checks the shape.
  r.resume_latents = input_video(o.Get("resumeLatents"));
  return r;
}

struct Event {
  std::string stage;
  int64_t step, total;
  double elapsed, eta;
  at::Tensor latents;  // only on preview steps
};

// One generation on the pool, its progress events on the JS thread; a cancelled one rejects with
// code WANLAB_CANCELLED and where it stopped, a bad parameter with WANLAB_PARAM and the field.
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
    // One generation at a time per process; a cancel() before this one starts does not count.
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
    if (result_.video.defined()) o.Set("video", tensor_object(env, result_.video));  // none for a stopped run
    if (!result_.fork.is_null()) o.Set("fork", Napi::String::New(env, result_.fork.dump()));
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
  // (a run stopped early, request.stopAtStep: no video, and `fork`, its fork state as JSON: pipeline/fork.h)
  // request: pipeline/request.h's JSON keys (token ids as typed arrays, the seed as a BigInt,
  // string or number) plus inputVideo {data: Float32Array, shape}. previewEvery k > 0: every
  // k-th denoise event (and the last) carries `latents` [16, f, h, w].
  Napi::Value Generate(const Napi::CallbackInfo& info) {
    auto eng = engine();
    wan::T2VRequest req = request_arg(info, "generate", true);
    // Bad parameters (and a request over the memory budget) reject before any work is queued.
    engine_call(info.Env(), [&] { eng->validate(req); });
    Napi::Function cb = info.Length() > 1 && info[1].IsFunction() ? info[1].As<Napi::Function>() : Napi::Function();
    std::string save = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
    const int64_t preview_every = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Int64Value() : 0;
    auto* w = new GenerateWorker(info.Env(), cb, eng, std::move(req), std::move(save), cancel_, preview_every);
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
  // plan(request) -> JSON: the memory model's stages for that video on this engine's placement,
  // and whether it fits the budget (T2VEngine::memory_report). The request as generate's without
  // token ids; inputVideo `true` when a video will be encoded.
  Napi::Value Plan(const Napi::CallbackInfo& info) {
    auto eng = engine();
    const wan::T2VRequest r = request_arg(info, "plan", false);
    // An error is e.g. no TeaCache calibration that fits this DiT, or a video with fewer DiT tokens
    // than the group's sequence-parallel ranks: a ParamError, so a server turns it away at submit.
    return Napi::String::New(info.Env(), engine_call(info.Env(), [&] { return eng->memory_report(r).dump(); }));
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
                        {"placement", eng->placement()},
                        {"dit_fingerprint", eng->dit_identity()}};  // what fork states record as "model"
    if (!eng->layout_reason().empty()) j["parallel"]["reason"] = eng->layout_reason();  // --layout auto's choice
    if (const wan::DeviceGroup* g = eng->group(); g && g->devices()[0].type == "cuda") {
      j["parallel"]["transport"] = wan::transport_name(g->transport());  // CUDA ranks: gloo or nccl (CPU ranks: gloo)
      if (g->shared_device()) j["parallel"]["shared_device"] = true;     // ranks sharing a GPU: a test mode
    }
    return Napi::String::New(info.Env(), j.dump());
  }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    cancel_->store(true);  // a running generation stops within seconds (pipeline/t2v.h Cancelled) and frees the model after
    engine_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<wan::T2VEngine> engine_;
  std::shared_ptr<std::atomic<bool>> cancel_ = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<bool>> follow_stop_ = std::make_shared<std::atomic<bool>>(false);
};

class OpenWorker : public Napi::AsyncWorker {
 public:
  OpenWorker(Napi::Env env, std::string dir, wan::EngineOptions options)
      : Napi::AsyncWorker(env), dir_(std::move(dir)), options_(std::move(options)),
        deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      engine_ = std::make_shared<wan::T2VEngine>(dir_, options_.parallel, options_.compute);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    auto* ctor = env.GetInstanceData<Napi::FunctionReference>();
    auto ext = Napi::External<std::shared_ptr<wan::T2VEngine>>::New(
        env, new std::shared_ptr<wan::T2VEngine>(engine_), [](Napi::Env, std::shared_ptr<wan::T2VEngine>* p) { delete p; });
    deferred_.Resolve(ctor->New({ext}));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  std::string dir_;
  wan::EngineOptions options_;
  std::shared_ptr<wan::T2VEngine> engine_;
  Napi::Promise::Deferred deferred_;
};

}  // namespace

Napi::Function define_engine_class(Napi::Env env) {
  Napi::Function engine = EngineWrap::Define(env);
  env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(engine)));
  return engine;
}

Napi::Value OpenEngine(const Napi::CallbackInfo& info) {
  const std::string dir = string_arg(info, 0, "dir");
  // The options decoded, and the device list and transport checked, before the load starts: their
  // errors reject with code WANLAB_PARAM and the field ("devices", "transport").
  wan::EngineOptions options = engine_call(info.Env(), [&] {
    wan::EngineOptions o = wan::engine_options_from_json(object_to_json(object_arg(info, 1), "options"));
    wan::check_group_devices(o.parallel.devices, o.parallel.transport);
    return o;
  });
  auto* w = new OpenWorker(info.Env(), dir, std::move(options));
  w->Queue();
  return w->promise();
}

}  // namespace wanjs
