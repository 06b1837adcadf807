// The request stream of a multi-node engine (t2v.h follow): node 0 publishes each request to the
// group's TCPStore under wanlab/request/N (N = 1, 2, ...) as {"request": the request's JSON form
// (pipeline/request.h request_to_json), "inputLatentsShape": [z, f, h, w] (video-to-video only)},
// the input's encoded latents beside it as raw float32 bytes under wanlab/request/N/input_latents;
// "end" closes the stream. The other nodes take them in order and run each one as node 0 does
// (the same seed, TeaCache skips, sizes), or their collectives would not meet.
#include "pipeline/t2v.h"

#include <chrono>
#include <cstring>
#include <thread>

namespace wan {

namespace {
const char* kRequestKey = "wanlab/request/";
}  // namespace

void T2VEngine::publish(const T2VRequest& r, const at::Tensor& input_latents) const {
  nlohmann::json j = {{"request", request_to_json(r)}};
  std::lock_guard<std::mutex> lock(requests_mu_);
  const int64_t n = ++published_;
  if (input_latents.defined()) {  // video-to-video: the encoded input, raw float32, under its own key first
    const at::Tensor c = input_latents.to(at::kFloat).contiguous();  // [z, f, h, w]
    j["inputLatentsShape"] = c.sizes().vec();
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
      T2VRequest r = request_from_json(j.at("request"));
      if (j.contains("inputLatentsShape")) {  // video-to-video: node 0's encoded input
        const std::string bytes = requests_->get(concat(key, "/input_latents"));
        const std::vector<int64_t> shape = j["inputLatentsShape"];
        r.input_latents = at::empty(shape, at::kFloat);
        if (size_t(r.input_latents.nbytes()) != bytes.size())
          fail("request ", n, ": input latents of ", bytes.size(), " bytes for shape ", r.input_latents.sizes());
        std::memcpy(r.input_latents.data_ptr(), bytes.data(), bytes.size());
      }
      generate(r);
    } catch (const std::exception& e) {
      error = e.what();  // node 0 reports the request's failure; this node serves the next one
    }
    if (on_request) on_request(n, error);
  }
}

}  // namespace wan
