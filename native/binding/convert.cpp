#include "convert.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "pipeline/json_fields.h"

namespace wanjs {

using json = nlohmann::json;

Napi::Error js_error(Napi::Env env, const std::exception& e) {
  Napi::Error err = Napi::Error::New(env, e.what());
  if (const auto* p = dynamic_cast<const wan::ParamError*>(&e)) {
    err.Value().Set("code", "WANLAB_PARAM");
    err.Value().Set("field", p->field);
  }
  return err;
}

namespace {

constexpr int kMaxDepth = 16;

std::string last_key(const std::string& path) {
  const size_t dot = path.find_last_of('.');
  return dot == std::string::npos ? path : path.substr(dot + 1);
}

void check_length(size_t n, const std::string& path) {
  if (n > wan::kMaxJsonArray)
    throw wan::ParamError(last_key(path), wan::concat(path, " has ", n, " values, over the limit of ", wan::kMaxJsonArray));
}

template <typename T>
json typed_values(const Napi::TypedArray& a) {
  const size_t n = a.ElementLength();
  const uint8_t* base = static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  json out = json::array();
  out.get_ref<json::array_t&>().reserve(n);
  for (size_t i = 0; i < n; ++i) {
    T x;
    std::memcpy(&x, base + i * sizeof(T), sizeof(T));  // typed arrays may sit unaligned in a Buffer
    out.push_back(x);
  }
  return out;
}

json typed_array(const Napi::TypedArray& a, const std::string& path) {
  check_length(a.ElementLength(), path);
  switch (a.TypedArrayType()) {
    case napi_int8_array: return typed_values<int8_t>(a);
    case napi_uint8_array:
    case napi_uint8_clamped_array: return typed_values<uint8_t>(a);
    case napi_int16_array: return typed_values<int16_t>(a);
    case napi_uint16_array: return typed_values<uint16_t>(a);
    case napi_int32_array: return typed_values<int32_t>(a);
    case napi_uint32_array: return typed_values<uint32_t>(a);
    case napi_float32_array: return typed_values<float>(a);
    case napi_float64_array: return typed_values<double>(a);
    case napi_bigint64_array: return typed_values<int64_t>(a);
    case napi_biguint64_array: return typed_values<uint64_t>(a);
  }
  throw wan::ParamError(last_key(path), wan::concat(path, " is a typed array of a kind the engine does not read"));
}

json object_json(const Napi::Object& o, const std::string& path, int depth, std::initializer_list<const char*> skip);

json convert(const Napi::Value& v, const std::string& path, int depth) {
  if (depth > kMaxDepth) throw wan::ParamError(last_key(path), wan::concat(path, " nests deeper than ", kMaxDepth));
  switch (v.Type()) {
    case napi_null: return nullptr;
    case napi_boolean: return v.As<Napi::Boolean>().Value();
    case napi_string: return v.As<Napi::String>().Utf8Value();
    case napi_number: {
      const double d = v.As<Napi::Number>().DoubleValue();
      if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) <= 9007199254740992.0) return int64_t(d);
      return d;
    }
    case napi_bigint: return v.ToString().Utf8Value();  // decimal, any size: the decoder bounds it
    case napi_object: {
      if (v.IsTypedArray()) return typed_array(v.As<Napi::TypedArray>(), path);
      if (v.IsArray()) {
        const Napi::Array a = v.As<Napi::Array>();
        check_length(a.Length(), path);
        json out = json::array();
        for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(convert(a.Get(i), wan::concat(path, "[", i, "]"), depth + 1));
        return out;
      }
      return object_json(v.As<Napi::Object>(), path, depth, {});
    }
    default: break;  // undefined (as an array element), function, symbol, external
  }
  throw wan::ParamError(last_key(path), wan::concat(path, " must be JSON-like (a number, string, boolean, array or object)"));
}

json object_json(const Napi::Object& o, const std::string& path, int depth, std::initializer_list<const char*> skip) {
  json out = json::object();
  const Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    const std::string k = keys.Get(i).ToString().Utf8Value();
    bool skipped = false;
    for (const char* s : skip) skipped = skipped || k == s;
    const Napi::Value v = o.Get(k);
    if (skipped || v.IsUndefined()) continue;
    out[k] = convert(v, path + "." + k, depth + 1);
  }
  return out;
}

}  // namespace

json to_json(const Napi::Value& v, const std::string& path) { return convert(v, path, 0); }

json object_to_json(const Napi::Object& o, const std::string& path, std::initializer_list<const char*> skip) {
  return object_json(o, path, 0, skip);
}

at::Tensor input_video(const Napi::Value& video) {
  Napi::Env env = video.Env();
  if (video.IsUndefined() || video.IsNull()) return {};
  if (video.IsBoolean()) return video.As<Napi::Boolean>().Value() ? at::empty({0}) : at::Tensor();
  if (!video.IsObject()) throw Napi::TypeError::New(env, "inputVideo must be {data, shape} or true");
  Napi::Object o = video.As<Napi::Object>();
  Napi::Value data = o.Get("data"), shape = o.Get("shape");
  if (!data.IsTypedArray() || data.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array || !shape.IsArray())
    throw Napi::TypeError::New(env, "inputVideo must be {data: Float32Array, shape: [3, F, H, W]}");
  std::vector<int64_t> dims;
  Napi::Array a = shape.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const Napi::Value d = a.Get(i);
    if (!d.IsNumber() || d.As<Napi::Number>().DoubleValue() < 0 || d.As<Napi::Number>().DoubleValue() > 1e9)
      throw Napi::RangeError::New(env, "inputVideo: shape must be [3, F, H, W] of sizes");
    dims.push_back(d.As<Napi::Number>().Int64Value());
  }
  Napi::Float32Array f = data.As<Napi::Float32Array>();
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  if (n != int64_t(f.ElementLength())) throw Napi::RangeError::New(env, "inputVideo: shape and data length disagree");
  return at::from_blob(f.Data(), dims, at::kFloat).clone();
}

namespace {
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
}  // namespace

Napi::Object tensor_object(Napi::Env env, const at::Tensor& t) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("data", float_array(env, t));
  o.Set("shape", shape_of(env, t));
  return o;
}

std::string string_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Object object_arg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined()) return Napi::Object::New(info.Env());
  if (!info[i].IsObject()) throw Napi::TypeError::New(info.Env(), "options must be an object");
  return info[i].As<Napi::Object>();
}

}  // namespace wanjs
