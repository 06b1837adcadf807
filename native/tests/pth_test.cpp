// .pth (torch.save zip) loading and saving: round trips, the archive torch.save writes, mmap
// aliasing, storages too small for their views, failed saves, and, when WANLAB_PYTHON names a
// python with torch, interop both ways with real PyTorch. The unpickler's own cases are in
// pickle_test.cpp, the zip container's in zip_test.cpp.
#include "formats/pth.h"

#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "formats/pickle.h"
#include "formats/zip.h"
#include "common/error.h"
#include "common/mapped_file.h"
#include "pth_fixtures.h"
#include "test.h"

using namespace wan;
using namespace pthtest;
namespace fs = std::filesystem;

namespace {

using wantest::same;

// Whether p lies in a mapping of the file `path` (per /proc/self/maps).
bool in_file_mapping(const void* p, const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  std::string line, canon = fs::canonical(path).string();
  while (std::getline(maps, line)) {
    std::istringstream is(line);
    unsigned long lo = 0, hi = 0;
    char dash = 0;
    std::string perms, off, dev, inode, name;
    is >> std::hex >> lo >> dash >> hi >> perms >> off >> dev >> inode;
    std::getline(is >> std::ws, name);
    auto q = reinterpret_cast<uintptr_t>(p);
    if (q >= lo && q < hi) return name == canon;
  }
  return false;
}

}  // namespace

TEST(pth_round_trip_all_dtypes) {
  TensorMap in = all_dtypes();
  std::string p = scratch("dtypes.pth");
  save_pth(p, in);
  EXPECT(!fs::exists(p + ".tmp"));
  for (bool mmap : {true, false}) {
    TensorMap out = load_pth(p, mmap);
    EXPECT(out.size() == in.size());
    for (const auto& [name, t] : in) {
      EXPECT(out.count(name));
      EXPECT(same(out[name], t));
    }
  }
}

TEST(pth_round_trip_scalars_zero_size_and_views) {
  at::Tensor base = at::arange(24, at::kFloat).reshape({4, 6});
  TensorMap in;
  in["scalar"] = {at::scalar_tensor(3.5, at::kFloat), DType::F32};
  in["scalar_i64"] = {at::scalar_tensor(int64_t(1) << 50, at::kLong), DType::I64};
  in["empty_0x3"] = {at::zeros({0, 3}, at::kBFloat16), DType::BF16};
  in["empty_3x0"] = {at::zeros({3, 0}, at::kFloat), DType::F32};
  in["strided"] = {base.slice(1, 1, 6, 2), DType::F32};  // stride (6, 2), offset 1
  in["transposed"] = {base.t(), DType::F32};
  in["five_d"] = {at::arange(32, at::kLong).to(at::kShort).reshape({2, 1, 2, 2, 4}), DType::I16};
  std::string p = scratch("odd.pth");
  save_pth(p, in);
  TensorMap out = load_pth(p);
  EXPECT(out.size() == in.size());
  for (const auto& [name, t] : in) EXPECT(same(out[name], t));
  EXPECT(out["scalar"].data.dim() == 0 && out["scalar"].data.item<float>() == 3.5f);
  EXPECT(out["strided"].data.is_contiguous());  // views are written compactly
  EXPECT(out["empty_0x3"].data.sizes() == at::IntArrayRef({0, 3}));

  // An empty state dict is a valid file too.
  save_pth(scratch("none.pth"), {});
  EXPECT(load_pth(scratch("none.pth")).empty());
}

TEST(pth_layout_matches_torch_save) {
  TensorMap in = all_dtypes();
  std::string p = scratch("layout.pth");
  save_pth(p, in);
  ZipReader z(MappedFile::open(p));
  std::vector<std::string> want = {"archive/data.pkl", "archive/byteorder"};
  for (size_t i = 0; i < in.size(); ++i) want.push_back("archive/data/" + std::to_string(i));
  want.push_back("archive/version");
  EXPECT(z.entries().size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const ZipEntry& e = z.entries()[i];
    EXPECT(e.name == want[i]);
    EXPECT(e.method == 0);
    EXPECT(e.data_offset % 64 == 0);  // torch's 64-byte record alignment
    z.verify_crc(e);
  }
  const ZipEntry* v = z.find("archive/version");
  EXPECT(std::string(reinterpret_cast<const char*>(z.data(*v)), v->size) == "3\n");
  const ZipEntry* bo = z.find("archive/byteorder");
  EXPECT(std::string(reinterpret_cast<const char*>(z.data(*bo)), bo->size) == "little");

  // The pickle is protocol 2 with the globals torch writes, and round-trips through our reader.
  const ZipEntry* pk = z.find("archive/data.pkl");
  std::string pkl(reinterpret_cast<const char*>(z.data(*pk)), pk->size);
  EXPECT(pkl.compare(0, 2, "\x80\x02") == 0);
  EXPECT(pkl.find("ccollections\nOrderedDict\n") != std::string::npos);
  EXPECT(pkl.find("ctorch._utils\n_rebuild_tensor_v2\n") != std::string::npos);
  EXPECT(pkl.find("ctorch\nBFloat16Storage\n") != std::string::npos);
  // float8: what torch >= 2.2 writes (UntypedStorage + _rebuild_tensor_v3 + dtype).
  EXPECT(pkl.find("ctorch._utils\n_rebuild_tensor_v3\n") != std::string::npos);
  EXPECT(pkl.find("ctorch.storage\nUntypedStorage\n") != std::string::npos);
  EXPECT(pkl.find("ctorch\nfloat8_e4m3fn\n") != std::string::npos);
}

TEST(pth_mmap_aliases_the_file) {
  TensorMap in = all_dtypes();
  std::string p = scratch("alias.pth");
  save_pth(p, in);
  TensorMap mapped = load_pth(p, true);
  for (const auto& [name, t] : mapped) EXPECT(in_file_mapping(t.data.data_ptr(), p));
  TensorMap copied = load_pth(p, false);
  for (const auto& [name, t] : copied) EXPECT(!in_file_mapping(t.data.data_ptr(), p));
  // The mapping outlives the call: the tensors still read correctly after others are gone.
  at::Tensor keep = mapped["t_f32"].data;
  mapped.clear();
  EXPECT(same({keep, DType::F32}, in["t_f32"]));
}

TEST(pth_storage_too_small_names_the_tensor) {
  Pk pk;  // declares 12 floats, the record holds 10
  pk.op(0x80).op(2).empty_ordered_dict().op('(').str("blocks.0.weight").tensor("0", "FloatStorage", 12, 0, {12}, {1});
  pk.op('u').op('.');
  std::string p = write_archive("small.pth", pk.b, {{"0", floats(10)}});
  EXPECT_ERROR(load_pth(p), "tensor blocks.0.weight", p, "archive/data/0");

  Pk over;  // the view reaches element 4 of a 4-element storage
  over.op(0x80).op(2).empty_ordered_dict().op('(').str("over").tensor("0", "FloatStorage", 4, 1, {2, 2}, {2, 1});
  over.op('u').op('.');
  std::string p2 = write_archive("over.pth", over.b, {{"0", floats(4)}});
  EXPECT_ERROR(load_pth(p2), "tensor over", "reach past");

  Pk huge;  // sizes whose product overflows 64 bits
  huge.op(0x80).op(2).empty_ordered_dict().op('(').str("huge");
  huge.tensor("0", "FloatStorage", 4, 0, {1 << 30, 1 << 30, 1 << 30}, {1, 1, 1}).op('u').op('.');
  EXPECT_ERROR(load_pth(write_archive("huge.pth", huge.b, {{"0", floats(4)}})), "tensor huge");

  Pk missing;
  missing.op(0x80).op(2).empty_ordered_dict().op('(').str("gone").tensor("7", "FloatStorage", 1, 0, {1}, {1});
  missing.op('u').op('.');
  EXPECT_ERROR(load_pth(write_archive("missing.pth", missing.b)), "tensor gone", "archive/data/7", "missing");
}

TEST(pth_save_errors_keep_the_old_file) {
  std::string p = scratch("keep.pth");
  TensorMap good;
  good["w"] = {at::ones({2}, at::kFloat), DType::F32};
  save_pth(p, good);
  TensorMap bad;
  bad["w"] = {at::ones({2}, at::kFloat), DType::BF16};  // declared bf16, holds f32
  EXPECT_ERROR(save_pth(p, bad), "tensor w", p);
  EXPECT(!fs::exists(p + ".tmp"));
  EXPECT(load_pth(p).count("w"));
  EXPECT_ERROR(save_pth(scratch("no/such/dir/x.pth"), good), "no/such/dir/x.pth.tmp");
}

// Interop with real PyTorch, through test/python/pth_interop.py. Needs WANLAB_PYTHON (a python
// with torch, e.g. Debian's /usr/bin/python3 with python3-torch); skipped when unset.
TEST(pth_python_interop) {
  const char* py = std::getenv("WANLAB_PYTHON");
  if (py == nullptr || *py == '\0') {
    std::cout << "     pth_python_interop: skipped (set WANLAB_PYTHON to a python with torch)\n";
    return;
  }
  std::string script = (fs::path(__FILE__).parent_path().parent_path().parent_path() / "test/python/pth_interop.py").string();
  EXPECT(fs::exists(script));
  auto expected = [](const nlohmann::json& w, const StoredTensor& t) {
    if (w["dtype"].get<std::string>() != dtype_name(t.dtype)) return false;
    if (w["shape"].get<std::vector<int64_t>>() != t.data.sizes().vec()) return false;
    at::Tensor v = (t.dtype == DType::F8_E4M3 || t.dtype == DType::F8_E5M2 ? to_float32(t) : t.data)
                       .to(at::kDouble).contiguous().reshape({-1});
    std::vector<double> got(v.data_ptr<double>(), v.data_ptr<double>() + v.numel());
    return got == w["values"].get<std::vector<double>>();
  };

  // torch -> wanlab
  std::string from_torch = scratch("from_torch");
  EXPECT(run(quote(py) + " " + quote(script) + " write " + quote(from_torch)) == 0);
  nlohmann::json manifest = nlohmann::json::parse(read_text_file(from_torch + "/manifest.json"));
  EXPECT(manifest["files"].size() >= 5);
  for (const auto& f : manifest["files"]) {
    std::string p = from_torch + "/" + f["file"].get<std::string>();
    if (f.contains("error")) {
      EXPECT_ERROR(load_pth(p), f["error"].get<std::string>(), p);
      continue;
    }
    for (bool mmap : {true, false}) {
      TensorMap m = load_pth(p, mmap);
      EXPECT(m.size() == f["tensors"].size());
      for (const auto& [name, w] : f["tensors"].items()) {
        if (!m.count(name)) throw wantest::Failure{p + ": no tensor " + name};
        if (!expected(w, m[name])) throw wantest::Failure{p + ": tensor " + name + " differs from torch's"};
      }
      for (const auto& pair : f["shares"])
        EXPECT(m[pair[0].get<std::string>()].data.is_alias_of(m[pair[1].get<std::string>()].data));
    }
  }

  // wanlab -> torch
  std::string to_torch = scratch("to_torch");
  fs::create_directories(to_torch);
  nlohmann::json out;
  out["files"] = nlohmann::json::array();
  auto add = [&](const std::string& file, const TensorMap& tensors, bool written = false) {
    if (!written) save_pth(to_torch + "/" + file, tensors);
    nlohmann::json f;
    f["file"] = file;
    f["tensors"] = nlohmann::json::object();
    f["shares"] = nlohmann::json::array();
    f["checks"] = nlohmann::json::array({"data_pkl_exact"});
    for (const auto& [name, t] : tensors) {
      at::Tensor v = (t.dtype == DType::F8_E4M3 || t.dtype == DType::F8_E5M2 ? to_float32(t) : t.data)
                         .to(at::kDouble).contiguous().reshape({-1});
      f["tensors"][name] = {{"dtype", dtype_name(t.dtype)},
                            {"shape", t.data.sizes().vec()},
                            {"values", std::vector<double>(v.data_ptr<double>(), v.data_ptr<double>() + v.numel())}};
    }
    out["files"].push_back(f);
  };
  TensorMap plain, f8;
  for (const auto& [name, t] : all_dtypes()) (t.dtype == DType::F8_E4M3 || t.dtype == DType::F8_E5M2 ? f8 : plain)[name] = t;
  add("plain.pth", plain);
  add("f8.pth", f8);  // torch < 2.2 cannot read float8 and skips this file
  TensorMap odd;
  at::Tensor base = at::arange(24, at::kFloat).reshape({4, 6});
  odd["scalar"] = {at::scalar_tensor(-2.25, at::kFloat), DType::F32};
  odd["empty"] = {at::zeros({0, 3}, at::kHalf), DType::F16};
  odd["empty_tail"] = {at::zeros({3, 0}, at::kFloat), DType::F32};
  odd["strided"] = {base.slice(1, 1, 6, 2), DType::F32};
  odd["five_d"] = {at::arange(32, at::kLong).reshape({2, 1, 2, 2, 4}), DType::I64};
  odd["wide"] = {at::arange(140000, at::kLong).remainder(251).to(at::kByte).reshape({2, 70000}), DType::U8};
  add("odd.pth", odd);
  TensorMap single;
  single["only_one"] = {at::arange(3, at::kFloat), DType::F32};
  add("single.pth", single);
  TensorMap many;  // > 255 memo slots and > 1000 items: LONG_BINPUT and two SETITEMS batches
  for (int k = 0; k < 1001; ++k) many["layer" + std::to_string(k)] = {at::full({2}, double(k), at::kFloat), DType::F32};
  add("many.pth", many);
  {  // every field in ZIP64 form
    const Archive parts = archive_parts(plain);
    ZipWriter w(to_torch + "/zip64.pth", true);
    w.add("archive/data.pkl", parts.pkl);
    w.add("archive/byteorder", std::string("little"));
    for (const auto& [key, bytes] : parts.storages) w.add("archive/data/" + key, bytes);
    w.add("archive/version", std::string("3\n"));
    w.finish();
    add("zip64.pth", plain, true);
  }
  std::string mf = to_torch + "/manifest.json";
  std::string js = out.dump(1);
  write_file_atomic(mf, js.data(), js.size());
  EXPECT(run(quote(py) + " " + quote(script) + " check " + quote(to_torch)) == 0);
}
