// The restricted unpickler (formats/pickle*) as .pth loading meets it: the writer's large values
// read back, protocol-2 and protocol-4 spellings of shared storages, hostile pickles refused at
// their GLOBAL or call, malformed and randomly mutated pickles as clean errors, never crashes.
#include <filesystem>
#include <string>
#include <vector>

#include "formats/pth.h"
#include "formats/pickle.h"
#include "common/error.h"
#include "pth_fixtures.h"
#include "test.h"

using namespace wan;
using namespace pthtest;
namespace fs = std::filesystem;

TEST(pth_pickle_writer_large_values) {
  // Sizes past 2^31 need LONG1; more than 255 memo slots need LONG_BINPUT/LONG_BINGET; more than
  // 1000 items need several SETITEMS batches. Check the writer against our own reader.
  std::vector<pickle::TensorSpec> specs;
  for (int k = 0; k < 1001; ++k) specs.push_back({"w" + std::to_string(k), DType::U8, {k % 3}});
  specs.push_back({"huge", DType::BF16, {(int64_t(1) << 31) + 5, 3}});
  std::string pkl = pickle::pickle_state_dict(specs);
  auto up = pickle::unpickle(reinterpret_cast<const uint8_t*>(pkl.data()), pkl.size(), "test");
  EXPECT(up->root->kind == pickle::Kind::Dict);
  EXPECT(up->root->items.size() == 2 * specs.size());
  const pickle::Value* huge = up->root->items.back();
  EXPECT(huge->kind == pickle::Kind::Tensor);
  EXPECT(huge->tensor->size == std::vector<int64_t>({(int64_t(1) << 31) + 5, 3}));
  EXPECT(huge->tensor->stride == std::vector<int64_t>({3, 1}));
  EXPECT(huge->tensor->storage->storage->numel == ((int64_t(1) << 31) + 5) * 3);
  EXPECT(huge->tensor->storage->storage->key == "1001");
}

TEST(pth_shared_storage_and_strided_views) {
  // One 12-float storage viewed four ways, in protocol-2 and protocol-4 spellings (STACK_GLOBAL,
  // SHORT_BINUNICODE, MEMOIZE, FRAME), with a Parameter inside a nested dict and non-tensor leaves.
  for (bool p4 : {false, true}) {
    Pk body;
    body.empty_ordered_dict(p4).op('(');
    body.str("base").tensor("0", "FloatStorage", 12, 0, {3, 4}, {4, 1}, p4);
    body.str("view").tensor("0", "FloatStorage", 12, 5, {2, 2}, {4, 2}, p4);
    body.str("tpose").tensor("0", "FloatStorage", 12, 0, {4, 3}, {1, 4}, p4);
    body.str("sub").op('}').str("param");
    body.global("torch._utils", "_rebuild_parameter", p4).op('(');
    body.tensor("0", "FloatStorage", 12, 11, {1}, {1}, p4).op(0x88);
    body.empty_ordered_dict(p4).op('t').op('R').op('s');
    body.str("epoch").op('K').op(5);
    body.str("note").op(']').op('N').op('a');
    body.op('u').op('.');
    Pk pk;
    pk.op(0x80).op(p4 ? 4 : 2);
    if (p4) {
      pk.op(0x95);
      for (int k = 0; k < 8; ++k) pk.op(uint8_t(k == 0 ? body.b.size() & 0xff : k == 1 ? body.b.size() >> 8 : 0));
    }
    pk.b += body.b;
    std::string p = write_archive(p4 ? "shared4.pth" : "shared2.pth", pk.b, {{"0", floats(12)}});
    for (bool mmap : {true, false}) {
      TensorMap m = load_pth(p, mmap);
      EXPECT(m.size() == 4);  // base, view, tpose, sub.param; epoch and note are not tensors
      at::Tensor base = at::arange(12, at::kFloat).reshape({3, 4});
      EXPECT(at::equal(m["base"].data, base));
      EXPECT(at::equal(m["view"].data, base.flatten().as_strided({2, 2}, {4, 2}, 5)));
      EXPECT(at::equal(m["tpose"].data, base.t()));
      EXPECT(m["sub.param"].data.item<float>() == 11.0f);
      EXPECT(m["view"].data.is_alias_of(m["base"].data));
      EXPECT(m["tpose"].data.is_alias_of(m["base"].data));
      EXPECT(m["sub.param"].data.is_alias_of(m["base"].data));
      EXPECT(m["view"].data.data_ptr<float>() == m["base"].data.data_ptr<float>() + 5);
    }
  }
}

TEST(pth_refuses_posix_system) {
  std::string pwned = scratch("pwned");
  Pk pk;
  pk.op(0x80).op(2).global("posix", "system").str("touch " + pwned).op(0x85).op('R').op('.');
  std::string p = write_archive("evil_system.pth", pk.b);
  EXPECT_ERROR(load_pth(p), "refusing global posix.system", p);
  EXPECT(!fs::exists(pwned));

  // Buried inside an otherwise valid state dict, it is refused just the same.
  Pk pk2;
  pk2.op(0x80).op(2).empty_ordered_dict().op('(').str("w").tensor("0", "FloatStorage", 2, 0, {2}, {1});
  pk2.str("x").global("os", "system").str("touch " + pwned).op(0x85).op('R').op('u').op('.');
  std::string p2 = write_archive("evil_nested.pth", pk2.b, {{"0", floats(2)}});
  EXPECT_ERROR(load_pth(p2), "refusing global os.system", p2);
  EXPECT(!fs::exists(pwned));
}

TEST(pth_refuses_builtins_eval_via_stack_global) {
  std::string pwned = scratch("pwned2");
  Pk pk;
  pk.op(0x80).op(4).global("builtins", "eval", true);
  pk.sstr("__import__('os').system('touch " + pwned + "')").op(0x85).op('R').op('.');
  std::string p = write_archive("evil_eval.pth", pk.b);
  EXPECT_ERROR(load_pth(p), "refusing global builtins.eval", p);
  EXPECT(!fs::exists(pwned));
  // Allowlisted names cannot be abused either: calling a storage class, constructing via NEWOBJ.
  Pk call;
  call.op(0x80).op(2).global("torch", "FloatStorage").op(')').op('R').op('.');
  EXPECT_ERROR(load_pth(write_archive("evil_call.pth", call.b)), "refusing to call torch.FloatStorage");
  Pk newobj;
  newobj.op(0x80).op(2).global("torch._utils", "_rebuild_tensor_v2").op(')').op(0x81).op('.');
  EXPECT_ERROR(load_pth(write_archive("evil_newobj.pth", newobj.b)), "refusing to construct");
}

TEST(pth_malformed_pickles_are_errors) {
  Pk good;
  good.op(0x80).op(2).empty_ordered_dict().op('(').str("w").tensor("0", "FloatStorage", 2, 0, {2}, {1}).op('u').op('.');
  auto load = [&](const std::string& name, const std::string& pkl) {
    return load_pth(write_archive(name, pkl, {{"0", floats(2)}}));
  };
  EXPECT(load("good.pth", good.b).size() == 1);
  // Every prefix of a valid pickle is a clean error, never a crash or a hang.
  for (size_t cut = 0; cut < good.b.size(); ++cut)
    EXPECT_ERROR(load("cut.pth", good.b.substr(0, cut)), "cut.pth");
  EXPECT_ERROR(load("under.pth", "\x80\x02t."), "no MARK");
  EXPECT_ERROR(load("under2.pth", "\x80\x02" "a."), "stack underflow");
  EXPECT_ERROR(load("memo.pth", "\x80\x02h\x07."), "memo index 7");
  EXPECT_ERROR(load("opcode.pth", "\x80\x02\xff."), "unsupported pickle opcode 0xff");
  EXPECT_ERROR(load("proto.pth", "\x80\x09}."), "protocol 9");
  EXPECT_ERROR(load("len.pth", std::string("\x80\x02X\xff\xff\xff\x7f", 7)), "truncated pickle");
  EXPECT_ERROR(load("list.pth", "\x80\x02]."), "not a dict of tensors");
  // A dict that contains itself: bounded, not infinite recursion.
  Pk cycle;
  cycle.op(0x80).op(2).op('}').op('q').op(0).str("loop").op('h').op(0).op('s').op('.');
  EXPECT_ERROR(load("cycle.pth", cycle.b), "nested deeper");
  // Unsupported tensor kinds and storage types are named as such.
  Pk sparse;
  sparse.op(0x80).op(2).global("torch._utils", "_rebuild_sparse_tensor").op('.');
  EXPECT_ERROR(load("sparse.pth", sparse.b), "unsupported tensor kind torch._utils._rebuild_sparse_tensor");
  Pk cplx;
  cplx.op(0x80).op(2).empty_ordered_dict().op('(').str("w").tensor("0", "ComplexFloatStorage", 1, 0, {1}, {1}).op('u').op('.');
  EXPECT_ERROR(load("complex.pth", cplx.b), "unsupported storage type torch.ComplexFloatStorage");
}

TEST(pth_mutated_pickles_never_crash) {
  // Random byte edits of a real data.pkl (and of a whole file) load or fail with wan::Error:
  // never a crash, a hang, or another exception type escaping.
  TensorMap in = all_dtypes();
  const Archive parts = archive_parts(in);
  uint64_t seed = 12345;
  auto rnd = [&seed](uint64_t n) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (seed >> 33) % n;
  };
  auto mutate = [&rnd](std::string m) {  // one to four random bytes overwritten
    for (uint64_t k = 0, edits = 1 + rnd(4); k < edits; ++k) m[rnd(m.size())] = char(rnd(256));
    return m;
  };
  int loaded = 0;
  for (int iter = 0; iter < 400; ++iter) {
    std::string m = mutate(parts.pkl);
    try {
      load_pth(write_archive("mutant.pth", m, parts.storages));
      ++loaded;
    } catch (const wan::Error&) {
    }
  }
  std::string whole = scratch("whole_mutant.pth");
  save_pth(whole, in);
  const std::string bytes = read_bytes(whole);
  for (int iter = 0; iter < 300; ++iter) {
    write_bytes(whole, mutate(bytes));
    try {
      for (const auto& [name, t] : load_pth(whole, iter % 2 == 0)) (void)t.data.sum();
      ++loaded;
    } catch (const wan::Error&) {
    }
  }
  EXPECT(loaded > 0);  // some edits (inside tensor bytes or names) are harmless
}
