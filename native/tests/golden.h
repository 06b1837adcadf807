// Golden data (test/golden/data/NAME.safetensors, written by test/golden/make_NAME.py from
// DiffSynth-Studio's own code on the tiny model) and the engine it is compared against.
#pragma once
#include <string>

#include "common/dtype.h"
#include "test.h"

namespace wan {
class T2VEngine;
}

namespace wantest {
// source_dir() + "/test/golden/data/" + name + ".safetensors"
std::string golden_path(const std::string& name);
// The tensors of golden file `name` ("dit", "t2v", ...), read once per run.
const wan::TensorMap& golden(const std::string& name);
// One tensor of golden file `name` as stored; a missing one is a test failure naming both.
const at::Tensor& golden_tensor(const std::string& name, const std::string& tensor);
// The same in float32 (bf16 and f16 goldens widened).
at::Tensor golden_float(const std::string& name, const std::string& tensor);
// One rank over tiny_model() (official layout, seed 0: the model the golden data was made from),
// opened once per run and shared by the cases that only run requests on it.
const wan::T2VEngine& tiny_engine();
}  // namespace wantest
