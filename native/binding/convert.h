// Values across the Node boundary: JavaScript values to the JSON the engine's decoders read
// (pipeline/request.h, pipeline/engine_options.h), tensors to and from typed arrays, and engine
// errors to JavaScript errors that keep their structure.
#pragma once
#include <napi.h>

#include <exception>
#include <string>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace wanjs {

// A JS Error for an engine error: a wan::ParamError also carries code "WANLAB_PARAM" and `field`,
// the request field as the engine spells it (snake_case), which src/params.ts maps to the API's name.
Napi::Error js_error(Napi::Env env, const std::exception& e);

// f()'s value; an engine error f throws becomes js_error's JS error (a JS error passes unchanged).
template <class F>
auto engine_call(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw js_error(env, e);
  }
}

// A JavaScript value as JSON: numbers (integral ones within +-2^53 as JSON integers, others as
// doubles), strings, booleans, null, arrays, objects (properties holding undefined are left out),
// BigInts as decimal strings (a seed up to 2^64-1 survives), and typed arrays as arrays of their
// values (BigInt64Array, Int32Array, Uint8Array token ids as integers). `path` names the value in
// errors ("request.promptIds"). A function or symbol, nesting deeper than 16, or an array of more
// than kMaxJsonArray values (pipeline/json_fields.h) throws wan::ParamError naming the path's
// last key.
nlohmann::json to_json(const Napi::Value& v, const std::string& path);

// The object's properties as JSON without those named in `skip` (values decoded apart, such as
// a request's inputVideo tensor).
nlohmann::json object_to_json(const Napi::Object& o, const std::string& path, std::initializer_list<const char*> skip = {});

// A request's inputVideo: {data: Float32Array [3 * F * H * W], shape: [3, F, H, W]} as a float32
// tensor (copied), for a generation; `true` (a memory plan: a video will be encoded) as an empty
// tensor; undefined, null or false as an undefined tensor.
at::Tensor input_video(const Napi::Value& v);

// {data: Float32Array, shape: number[]} sharing the tensor's memory (as float32, contiguous): the
// ArrayBuffer's finalizer holds a reference.
Napi::Object tensor_object(Napi::Env env, const at::Tensor& t);

// Argument helpers: a string argument (TypeError naming it), an options object (undefined: {}).
std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* name);
Napi::Object object_arg(const Napi::CallbackInfo& info, size_t i);

}  // namespace wanjs
