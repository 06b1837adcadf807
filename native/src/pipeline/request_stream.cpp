// The request stream of a multi-node engine (t2v.h follow): node 0 publishes each request to the
// group's TCPStore under wanlab/request/N (N = 1, 2, ...) as {"request": the request's JSON form
// (pipeline/request.h request_to_json), "inputLatentsShape": [z, f, h, w] (video-to-video only),
// "resumeLatentsShape": [z, f, h, w] (a resumed run only)}, the input's encoded latents beside it
// as raw float32 bytes under wanlab/request/N/input_latents and a resumed run's latents under
// wanlab/request/N/resume_latents; "end" closes the stream. The other nodes take them in order and run each one as node 0 does
// (the same seed, TeaCache skips, sizes), or their collectives would not meet.
#include "pipeline/t2v.h"

#include <chrono>
#include <cstring>
#include <thread>

namespace wan {

namespace {
const char* kRequestKey = "wanlab/request/";

// Latents as raw float32 bytes under `key`; their shape goes into the request's JSON.
void put_latents(Rendezvous& store, const std::string& key, const at::Tensor& latents, nlohmann::json& shape) {
  const at::Tensor c = latents.to(at::kFloat).contiguous();  // [z, f, h, w]
  shape = c.sizes().vec();
  store.set(key, std::string(static_cast<const char*>(c.data_ptr()), size_t(c.nbytes())));
}

at::Tensor get_latents(Rendezvous& store, const std::string& key, const std::vector<int64_t>& shape, int64_t n,
                       const char* what) {
  const std::string bytes = store.get(key);
  at::Tensor t = at::empty(shape, at::kFloat);
  if (size_t(t.nbytes()) != bytes.size()) fail("request ", n, ": ", what, " latents of ", bytes.size(), " bytes for shape ", t.sizes());
  std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}
}  // namespace

void T2VEngine::publish(const T2VRequest& r, const at::Tensor& input_latents) const {
  nlohmann::json j = {{"request", request_to_json(r)}};
  std::lock_guard<std::mutex> lock(requests_mu_);
  const int64_t n = ++published_;
  // The tensors under their own keys first, so a follower that sees the request finds them.
  if (input_latents.defined())  // video-to-video: the encoded input
    put_latents(*requests_, concat(kRequestKey, n, "/input_latents"), input_latents, j["inputLatentsShape"]);
  if (r.resume_latents.defined())  // a resumed run: the latents it starts from
    put_latents(*requests_, concat(kRequestKey, n, "/resume_latents"), r.resume_latents, j["resumeLatentsShape"]);
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
      if (j.contains("inputLatentsShape"))  // video-to-video: node 0's encoded input
        r.input_latents = get_latents(*requests_, concat(key, "/input_latents"), j["inputLatentsShape"], n, "input");
      if (j.contains("resumeLatentsShape"))  // a resumed run: the latents node 0 resumes from
        r.resume_latents = get_latents(*requests_, concat(key, "/resume_latents"), j["resumeLatentsShape"], n, "resume");
      generate(r);
    } catch (const std::exception& e) {
      error = e.what();  // node 0 reports the request's failure; this node serves the next one
    }
    if (on_request) on_request(n, error);
  }
}

}  // namespace wan
