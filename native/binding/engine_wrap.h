// The engine's Node face: the Engine class (a loaded model that stays resident across
// generate() calls) and openEngine, which makes one on a worker thread.
#pragma once
#include <napi.h>

namespace wanjs {

// The Engine class for exports.Engine; its constructor is internal (openEngine calls it). Stores
// the constructor as the env's instance data.
Napi::Function define_engine_class(Napi::Env env);

// openEngine(dir, options) -> Promise<Engine>: options as pipeline/engine_options.h decodes them
// (devices, ulysses, ring, cfgParallel, timeoutS, rendezvous, nnodes, nodeRank, logDir, logLevel,
// dtype, t5Device, t5Offload, vaeDevice, persistentParams, shardWeights, budget, budgetVideo:
// {height, width, numFrames, tiled}, promptCacheBytes). Loads and validates the model on a worker
// thread; with several devices, starts the device group. A bad option throws at once, a
// ParamError (code WANLAB_PARAM, field: the key).
Napi::Value OpenEngine(const Napi::CallbackInfo& info);

}  // namespace wanjs
