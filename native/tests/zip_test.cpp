// The zip container of .pth files (formats/zip): CRC-32, stored-only entries, truncated and
// foreign files refused cleanly, ZIP64 records forced and past 4 GiB.
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "formats/pth.h"
#include "formats/zip.h"
#include "common/error.h"
#include "common/mapped_file.h"
#include "pth_fixtures.h"
#include "test.h"

using namespace wan;
using namespace pthtest;
using wantest::same;
namespace fs = std::filesystem;

namespace {

// Rewrites the compression method of zip entry `name` (central and local header) in place.
void set_method(const std::string& path, const std::string& name, uint16_t method) {
  std::string f = read_bytes(path);
  bool found = false;
  for (size_t p = 0; p + 46 <= f.size(); ++p) {
    if (f.compare(p, 4, "PK\x01\x02") != 0) continue;
    uint16_t nlen = uint16_t(uint8_t(f[p + 28]) | uint8_t(f[p + 29]) << 8);
    if (f.compare(p + 46, nlen, name) != 0 || nlen != name.size()) continue;
    uint32_t local = 0;
    std::memcpy(&local, &f[p + 42], 4);
    std::memcpy(&f[p + 10], &method, 2);
    std::memcpy(&f[local + 8], &method, 2);
    found = true;
  }
  if (!found) throw wantest::Failure{"no zip entry " + name + " in " + path};
  write_bytes(path, f);
}

}  // namespace

TEST(pth_crc32_known_values) {
  EXPECT(crc32("123456789", 9) == 0xcbf43926u);
  EXPECT(crc32("", 0) == 0);
  // Running checksums compose, whatever the split.
  std::string s(1000, 'x');
  for (size_t k = 0; k < s.size(); ++k) s[k] = char(k * 7);
  uint32_t whole = crc32(s.data(), s.size());
  for (size_t cut : {size_t(0), size_t(1), size_t(7), size_t(500), size_t(999)})
    EXPECT(crc32(s.data() + cut, s.size() - cut, crc32(s.data(), cut)) == whole);
}

TEST(pth_rejects_compressed_entries) {
  TensorMap in;
  in["w"] = {at::ones({4}, at::kFloat), DType::F32};
  std::string p = scratch("deflated.pth");
  save_pth(p, in);
  set_method(p, "archive/data/0", 8);
  EXPECT_ERROR(load_pth(p), "archive/data/0", "compressed", p);
  std::string p2 = scratch("deflated_pkl.pth");
  save_pth(p2, in);
  set_method(p2, "archive/data.pkl", 8);
  EXPECT_ERROR(load_pth(p2), "archive/data.pkl", "compressed", p2);
}

TEST(pth_rejects_truncated_legacy_and_foreign_files) {
  TensorMap in = all_dtypes();
  std::string p = scratch("whole.pth");
  save_pth(p, in);
  std::string bytes = read_bytes(p);
  std::string half = scratch("half.pth");
  write_bytes(half, bytes.substr(0, bytes.size() / 2));
  EXPECT_ERROR(load_pth(half), half);
  // Cut anywhere in the central directory or end records: still a clean error.
  ZipReader z(MappedFile::open(p));
  for (size_t cut = z.entries().back().data_offset + 3; cut < bytes.size(); cut += 7) {
    write_bytes(half, bytes.substr(0, cut));
    EXPECT_ERROR(load_pth(half), half);
  }

  // Legacy format: pickle of the magic number 0x1950a86a20f9469cfc6c, then more pickles.
  std::string legacy = scratch("legacy.pth");
  write_bytes(legacy, std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03."));
  EXPECT_ERROR(load_pth(legacy), "legacy (non-zip) torch.save format is not supported: " + legacy,
               "re-save it with torch.save in PyTorch >= 1.6");

  std::string text = scratch("notes.pth");
  write_bytes(text, "just some text\n");
  EXPECT_ERROR(load_pth(text), text, "not a PyTorch checkpoint");
  EXPECT_ERROR(load_pth(scratch("absent.pth")), scratch("absent.pth"));

  // A zip that is not a torch archive.
  std::string other = scratch("other.zip");
  {
    ZipWriter w(other);
    w.add("readme.txt", std::string("hi"));
    w.finish();
  }
  EXPECT_ERROR(load_pth(other), other, "not inside an archive directory");
}

TEST(pth_forced_zip64_archive_loads) {
  TensorMap in = all_dtypes();
  const Archive parts = archive_parts(in);
  std::string p = write_archive("zip64.pth", parts.pkl, parts.storages, true);
  ZipReader z(MappedFile::open(p));
  for (const ZipEntry& e : z.entries()) {
    EXPECT(e.data_offset % 64 == 0);
    z.verify_crc(e);
  }
  TensorMap out = load_pth(p);
  EXPECT(out.size() == in.size());
  for (const auto& [name, t] : in) EXPECT(same(out[name], t));
}

// Opt-in (WANLAB_PTH_BIG=1; writes a 4.1 GiB file): real ZIP64 sizes and offsets past 4 GiB.
TEST(pth_zip64_past_4gib) {
  const char* big = std::getenv("WANLAB_PTH_BIG");
  if (big == nullptr || std::string(big) != "1") {
    std::cout << "     pth_zip64_past_4gib: skipped (set WANLAB_PTH_BIG=1 to write a 4.1 GiB zip)\n";
    return;
  }
  std::string p = scratch("big.zip");
  const uint64_t size = (uint64_t(4) << 30) + 100;
  {
    ZipWriter w(p);
    w.add("archive/small", std::string("abc"));
    w.begin_entry("archive/big", size);
    std::vector<uint8_t> chunk(64 << 20, 0);
    for (uint64_t off = 0; off < size; off += chunk.size()) {
      uint64_t n = std::min<uint64_t>(chunk.size(), size - off);
      chunk[0] = uint8_t(off >> 26);
      w.write(chunk.data(), n);
    }
    w.end_entry();
    w.add("archive/after", std::string("xyz"));  // local header offset past 4 GiB
    w.finish();
  }
  {
    ZipReader z(MappedFile::open(p));
    const ZipEntry* b = z.find("archive/big");
    const ZipEntry* a = z.find("archive/after");
    EXPECT(b && a && b->size == size && a->header_offset > (uint64_t(1) << 32));
    EXPECT(b->data_offset % 64 == 0 && a->data_offset % 64 == 0);
    EXPECT(z.data(*b)[uint64_t(64) << 20] == 1);
    EXPECT(std::string(reinterpret_cast<const char*>(z.data(*a)), 3) == "xyz");
    z.verify_crc(*a);
    z.verify_crc(*b);
  }
  if (const char* py = std::getenv("WANLAB_PYTHON")) {
    std::string check = std::string(py) + " -c \"import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); " +
                        "assert z.getinfo('archive/big').file_size==" + std::to_string(size) +
                        "; assert z.read('archive/after')==b'xyz'; assert z.read('archive/small')==b'abc'\" " + quote(p);
    EXPECT(run(check) == 0);
  }
  fs::remove(p);
}
