// tools/generate_file.h: `wanlab-engine generate DIR --request REQ.json`, the engine CLI's run of a
// request file, is the engine's own generation of that request.
#include <fstream>

#include "common/error.h"
#include "formats/safetensors.h"
#include "pipeline/request.h"
#include "pipeline/t2v.h"
#include "test.h"
#include "tools/generate_file.h"

using namespace wan;

namespace {
std::string write_request(const std::string& name, const nlohmann::json& j) {
  const std::string path = wantest::scratch(name);
  wantest::write_bytes(path, j.dump());
  return path;
}
GenerateFileOptions cpu_options(const std::string& request_path) {
  GenerateFileOptions o;
  o.model_dir = wantest::tiny_model();
  o.request_path = request_path;
  o.engine.parallel.devices = "cpu";
  return o;
}
}  // namespace

TEST(generate_file_runs_the_request_as_the_engine_does_and_saves_its_tensors) {
  const T2VRequest r = wantest::tiny_request(32, 32, 5, 2, 5.0, 18446744073709551615ULL);
  GenerateFileOptions o = cpu_options(write_request("generate-file-request.json", request_to_json(r)));
  o.save_tensors = wantest::scratch("generate-file-out.safetensors");
  int64_t denoise_events = 0;
  o.progress = [&](const T2VEvent& e) { denoise_events += e.stage == "denoise"; };
  const nlohmann::json timings = generate_from_file(o);
  EXPECT(timings.contains("denoise_s") && timings["step_s"].size() == 2);
  EXPECT(denoise_events >= 2);
  const TensorMap saved = load_safetensors(o.save_tensors, false);
  const T2VResult direct = T2VEngine(wantest::tiny_model()).generate(r);
  EXPECT(saved.at("latents").data.equal(direct.latents));
  EXPECT(saved.at("noise").data.equal(direct.noise));
  EXPECT(saved.at("token_ids").data.equal(r.prompt_ids));
}

TEST(generate_file_names_the_file_and_the_key_of_a_bad_request) {
  nlohmann::json j = request_to_json(wantest::tiny_request(32, 32, 5));
  j["numFrame"] = 5;
  const std::string path = write_request("generate-file-bad.json", j);
  EXPECT_ERROR(generate_from_file(cpu_options(path)), path, "unknown request key 'numFrame'");
  j.erase("numFrame"), j["height"] = 20;  // decodes, and the engine refuses it before any compute
  EXPECT_ERROR(generate_from_file(cpu_options(write_request("generate-file-height.json", j))), "height must be a multiple of 16");
  EXPECT_ERROR(generate_from_file(cpu_options(wantest::scratch("no-such-request.json"))), "no-such-request.json");
}
