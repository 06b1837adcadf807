// Work off the JavaScript thread: each call that touches files or compute runs on the libuv pool
// and settles a Promise, so the event loop (and a notebook kernel) never blocks.
#pragma once
#include <napi.h>

#include <functional>
#include <string>

#include "common/error.h"
#include "convert.h"

namespace wanjs {

// Runs `work` on the libuv pool; resolves with its string, rejects with its error (a ParamError
// keeps code and field: convert.h js_error).
class PromiseWorker : public Napi::AsyncWorker {
 public:
  PromiseWorker(Napi::Env env, std::function<std::string()> work)
      : Napi::AsyncWorker(env), work_(std::move(work)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      result_ = work_();
    } catch (const wan::ParamError& e) {
      param_field_ = e.field, has_field_ = true;
      SetError(e.what());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Napi::String::New(Env(), result_)); }
  void OnError(const Napi::Error& e) override {
    if (has_field_) e.Value().Set("code", "WANLAB_PARAM"), e.Value().Set("field", param_field_);
    deferred_.Reject(e.Value());
  }

 private:
  std::function<std::string()> work_;
  Napi::Promise::Deferred deferred_;
  std::string result_, param_field_;
  bool has_field_ = false;
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

}  // namespace wanjs
