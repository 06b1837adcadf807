// The request stream of a multi-node engine (t2v.h follow): node 0 publishes each request to the
// group's TCPStore under wanlab/request/N (N = 1, 2, ...), as JSON beside the raw float32 bytes
// of a video-to-video input's latents under wanlab/request/N/input_latents; "end" closes the
// stream. The other nodes take them in order and run each one.
#include "pipeline/t2v.h"

#include <chrono>
#include <cstring>
#include <thread>

namespace wan {

namespace {
const char* kRequestKey = "wanlab/request/";
std::vector<int64_t> int_list(const at::Tensor& t) {
  at::Tensor c = t.to(at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}
at::Tensor int_tensor(const nlohmann::json& j) { return at::tensor(j.get<std::vector<int64_t>>(), at::kLong); }
}  // namespace

void T2VEngine::publish(const T2VRequest& r, const at::Tensor& input_latents) const {
  nlohmann::json j = {{"seed", std::to_string(r.seed)}, {"height", r.height}, {"width", r.width},
                      {"num_frames", r.num_frames}, {"steps", r.num_inference_steps}, {"cfg_scale", r.cfg_scale},
                      {"sigma_shift", r.sigma_shift}, {"tiled", r.tiled}, {"tile_size", r.tile_size},
                      {"tile_stride", r.tile_stride}, {"tea_cache_l1_thresh", r.tea_cache_l1_thresh},
                      {"tea_cache_model_id", r.tea_cache_model_id}, {"prompt_ids", int_list(r.prompt_ids)},
                      {"prompt_mask", int_list(r.prompt_mask)}};
  if (r.negative_ids.defined()) j["negative_ids"] = int_list(r.negative_ids), j["negative_mask"] = int_list(r.negative_mask);
  std::lock_guard<std::mutex> lock(requests_mu_);
  const int64_t n = ++published_;
  if (input_latents.defined()) {  // video-to-video: the encoded input, raw float32, under its own key first
    const at::Tensor c = input_latents.to(at::kFloat).contiguous();
    j["input_latents_shape"] = c.sizes().vec(), j["denoising_strength"] = r.denoising_strength;
    requests_->set(concat(kRequestKey, n, "/input_latents"),
                   std::string(static_cast<const char*>(c.data_ptr()), size_t(c.nbytes())));
  }
  requests_->set(concat(kRequestKey, n), j.dump());
}

void T2VEngine::end_requests() const {
  if (!requests_ || node_rank_ != 0) return;
  std::lock_guard<std::mutex> lock(requests_mu_);
  requests_->set(concat(kRequestKey, ++published_), "end");
}

void T2VEngine::follow(const std::atomic<bool>& stop,
                       const std::function<void(int64_t, const std::string&)>& on_request) const {
  if (!requests_ || node_rank_ == 0) fail("follow() is for nodes 1.. of a multi-node engine (this is node ", node_rank_, " of ", nnodes_, ")");
  for (int64_t n = 1;; ++n) {
    const std::string key = concat(kRequestKey, n);
    while (!requests_->check(key)) {
      if (stop.load()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const std::string text = requests_->get(key);
    if (text == "end") return;
    std::string error;
    try {
      const nlohmann::json j = nlohmann::json::parse(text);
      T2VRequest r;
      r.seed = std::stoull(j["seed"].get<std::string>());
      r.height = j["height"], r.width = j["width"], r.num_frames = j["num_frames"];
      r.num_inference_steps = j["steps"], r.cfg_scale = j["cfg_scale"], r.sigma_shift = j["sigma_shift"];
      r.tiled = j["tiled"], r.tile_size = j["tile_size"], r.tile_stride = j["tile_stride"];
      // Every node skips the steps node 0 skips, or their collectives would not meet.
      r.tea_cache_l1_thresh = j["tea_cache_l1_thresh"], r.tea_cache_model_id = j["tea_cache_model_id"];
      r.prompt_ids = int_tensor(j["prompt_ids"]), r.prompt_mask = int_tensor(j["prompt_mask"]);
      if (j.contains("negative_ids")) r.negative_ids = int_tensor(j["negative_ids"]), r.negative_mask = int_tensor(j["negative_mask"]);
      if (j.contains("input_latents_shape")) {  // video-to-video: node 0's encoded input
        const std::string bytes = requests_->get(concat(key, "/input_latents"));
        const std::vector<int64_t> shape = j["input_latents_shape"];
        r.input_latents = at::empty(shape, at::kFloat);
        if (size_t(r.input_latents.nbytes()) != bytes.size())
          fail("request ", n, ": input latents of ", bytes.size(), " bytes for shape ", r.input_latents.sizes());
        std::memcpy(r.input_latents.data_ptr(), bytes.data(), bytes.size());
        r.denoising_strength = j["denoising_strength"];
      }
      generate(r);
    } catch (const std::exception& e) {
      error = e.what();  // node 0 reports the request's failure; this node serves the next one
    }
    if (on_request) on_request(n, error);
  }
}

}  // namespace wan
