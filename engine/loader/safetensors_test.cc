#include "engine/loader/safetensors.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "engine/loader/test_util.h"

namespace moe::engine {
namespace {

using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;
using Catch::Matchers::Contains;

template <typename T>
std::string Bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

std::string Le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

// A raw file image: 8-byte length, the header text verbatim, then `data`.
std::string RawFile(const std::string& header, const std::string& data) {
  return Le64(header.size()) + header + data;
}

std::string ErrorOf(const std::string& path) {
  auto f = SafetensorsFile::Open(path);
  REQUIRE_FALSE(f.ok());
  return std::string(f.status().message());
}

TEST_CASE("WriteSafetensors then Open round-trips F32, F16 and BF16 tensors", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.File("model.safetensors");
  std::vector<float> w = {1.f, -2.f, 3.5f, 0.25f, 1e-3f, -7.f};
  std::vector<uint16_t> h = {F32ToF16(1.f), F32ToF16(-2.5f), F32ToF16(65504.f)};
  std::vector<uint16_t> b = {F32ToBf16(0.5f), F32ToBf16(-3.f), F32ToBf16(100.f), F32ToBf16(2.f)};
  std::vector<TensorToWrite> in = {
      {"model.layers.0.mlp.w1", DType::kF32, {2, 3}, Bytes(w)},
      {"lm_head.weight", DType::kBF16, {2, 2}, Bytes(b)},
      {"model.norm.weight", DType::kF16, {3}, Bytes(h)},
      {"scalar", DType::kF32, {}, Bytes(std::vector<float>{42.f})},
      {"empty", DType::kF32, {0, 4}, ""},
  };
  REQUIRE(WriteSafetensors(path, in, {{"format", "pt"}, {"producer", "test"}}).ok());

  auto file = SafetensorsFile::Open(path);
  REQUIRE(file.ok());
  const SafetensorsFile& f = **file;
  CHECK(f.path() == path);
  CHECK(f.tensors().size() == 5);
  CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"producer", "test"}});

  const TensorView* t = f.Find("model.layers.0.mlp.w1");
  REQUIRE(t != nullptr);
  CHECK(t->dtype == DType::kF32);
  CHECK(t->shape == std::vector<int64_t>{2, 3});
  CHECK(t->ShapeString() == "[2, 3]");
  CHECK(t->numel() == 6);
  CHECK(t->nbytes == 24);
  CHECK(t->file == path);
  for (size_t i = 0; i < w.size(); ++i) CHECK(LoadAsF32(t->data, t->dtype, i) == w[i]);

  t = f.Find("model.norm.weight");
  REQUIRE(t != nullptr);
  CHECK(t->dtype == DType::kF16);
  CHECK(LoadAsF32(t->data, t->dtype, 1) == -2.5f);
  CHECK(LoadAsF32(t->data, t->dtype, 2) == 65504.f);

  t = f.Find("lm_head.weight");
  REQUIRE(t != nullptr);
  CHECK(t->dtype == DType::kBF16);
  CHECK(t->ShapeString() == "[2, 2]");
  CHECK(LoadAsF32(t->data, t->dtype, 2) == 100.f);
  // Every tensor is aligned to its element size inside the mapping.
  for (const TensorView& v : f.tensors()) {
    CHECK(reinterpret_cast<uintptr_t>(v.data) % DTypeSize(v.dtype) == 0);
  }

  t = f.Find("scalar");
  REQUIRE(t != nullptr);
  CHECK(t->ShapeString() == "[]");
  CHECK(t->numel() == 1);
  CHECK(LoadAsF32(t->data, t->dtype, 0) == 42.f);
  t = f.Find("empty");
  REQUIRE(t != nullptr);
  CHECK(t->numel() == 0);
  CHECK(t->nbytes == 0);

  CHECK(f.Find("missing") == nullptr);
  CHECK(f.mapped_size() == ReadFile(path).size());
}

TEST_CASE("WriteSafetensors pads the header with spaces to a multiple of 8", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.File("x.safetensors");
  REQUIRE(WriteSafetensors(path, {{"abc", DType::kF32, {1}, Bytes(std::vector<float>{1.f})}}).ok());
  std::string bytes = ReadFile(path);
  REQUIRE(bytes.size() >= 8);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  CHECK(n % 8 == 0);
  CHECK(bytes.size() == 8 + n + 4);
  std::string header = bytes.substr(8, n);
  CHECK(header.rfind("{\"abc\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0) == 0);
  CHECK(header.find_first_not_of(' ', header.find_last_of('}') + 1) == std::string::npos);
  // No temp file is left behind beside the target.
  CHECK(ReadFile(path + ".tmp." + std::to_string(::getpid())).empty());
}

TEST_CASE("WriteSafetensors writes the same bytes as the Python library", "[safetensors]") {
  // testdata/python_ref.safetensors was written by safetensors 0.8.0's save_file (see
  // testdata/make_python_ref.py) from these exact tensors.
  const char* srcdir = std::getenv("TEST_SRCDIR");
  std::string ref_path = "engine/loader/testdata/python_ref.safetensors";
  if (ReadFile(ref_path).empty() && srcdir) ref_path = std::string(srcdir) + "/moe_serve/" + ref_path;
  const std::string ref = ReadFile(ref_path);
  REQUIRE_FALSE(ref.empty());

  std::vector<TensorToWrite> in = {
      {"b.weight", DType::kF16, {2, 3},
       Bytes(std::vector<uint16_t>{F32ToF16(1.f), F32ToF16(-2.5f), F32ToF16(3.25f),
                                   F32ToF16(0.5f), F32ToF16(65504.f), F32ToF16(-0.f)})},
      {"a.weight", DType::kBF16, {3},
       Bytes(std::vector<uint16_t>{F32ToBf16(1.f), F32ToBf16(-2.5f), F32ToBf16(1e-3f)})},
      {"c", DType::kF32, {3, 2, 1}, Bytes(std::vector<float>{0, 1, 2, 3, 4, 5})},
      {"z.bias", DType::kF32, {1}, Bytes(std::vector<float>{7.f})},
  };
  TempDir dir;
  REQUIRE(WriteSafetensors(dir.File("ours.safetensors"), in, {{"format", "pt"}}).ok());
  CHECK(ReadFile(dir.File("ours.safetensors")) == ref);

  auto file = SafetensorsFile::Open(ref_path);
  REQUIRE(file.ok());
  CHECK((*file)->metadata().at("format") == "pt");
  const TensorView* b = (*file)->Find("b.weight");
  REQUIRE(b != nullptr);
  CHECK(b->dtype == DType::kF16);
  CHECK(b->ShapeString() == "[2, 3]");
  CHECK(LoadAsF32(b->data, b->dtype, 4) == 65504.f);
  const TensorView* a = (*file)->Find("a.weight");
  REQUIRE(a != nullptr);
  CHECK(LoadAsF32(a->data, a->dtype, 1) == -2.5f);
  CHECK(LoadAsF32(a->data, a->dtype, 2) == Approx(1e-3f).epsilon(0.01));
}

TEST_CASE("WriteSafetensors rejects inconsistent input", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.File("bad.safetensors");
  auto s = WriteSafetensors(path, {{"w", DType::kF32, {2, 2}, std::string(12, '\0')}});
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(std::string(s.message()), Contains("'w'") && Contains("16 bytes"));
  s = WriteSafetensors(path, {{"w", DType::kF32, {1}, std::string(4, '\0')},
                              {"w", DType::kF32, {1}, std::string(4, '\0')}});
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(std::string(s.message()), Contains("given twice"));
  CHECK(ReadFile(path).empty());  // nothing written
}

TEST_CASE("Opening a missing, empty or truncated file names the file", "[safetensors]") {
  TempDir dir;
  const std::string missing = dir.File("nope.safetensors");
  auto f = SafetensorsFile::Open(missing);
  REQUIRE_FALSE(f.ok());
  CHECK(absl::IsNotFound(f.status()));
  CHECK_THAT(std::string(f.status().message()), Contains(missing));

  const std::string empty = dir.File("empty.safetensors");
  WriteFile(empty, "");
  CHECK_THAT(ErrorOf(empty), Contains(empty) && Contains("empty"));

  const std::string tiny = dir.File("tiny.safetensors");
  WriteFile(tiny, "abc");
  CHECK_THAT(ErrorOf(tiny), Contains(tiny) && Contains("too short"));

  // A good file cut short inside its data section: the last tensor runs past the end.
  const std::string cut = dir.File("cut.safetensors");
  REQUIRE(WriteSafetensors(cut, {{"a", DType::kF32, {4}, std::string(16, '\1')},
                                 {"b", DType::kF32, {4}, std::string(16, '\2')}})
              .ok());
  std::string bytes = ReadFile(cut);
  WriteFile(cut, bytes.substr(0, bytes.size() - 5));
  CHECK_THAT(ErrorOf(cut), Contains(cut) && Contains("'b'") && Contains("truncated"));

  // Cut inside the header.
  WriteFile(cut, bytes.substr(0, 20));
  CHECK_THAT(ErrorOf(cut), Contains(cut) && Contains("header length") && Contains("past the file"));
}

TEST_CASE("Corrupt headers are rejected with the file and tensor named", "[safetensors]") {
  TempDir dir;
  const std::string path = dir.File("bad.safetensors");
  const std::string data16(16, '\0');

  SECTION("header length larger than the file") {
    WriteFile(path, Le64(1000) + "{}");
    CHECK_THAT(ErrorOf(path), Contains(path) && Contains("1000") && Contains("past the file"));
  }
  SECTION("malformed JSON") {
    WriteFile(path, RawFile("{\"a\": {\"dtype\": \"F32\",", data16));
    CHECK_THAT(ErrorOf(path), Contains(path) && Contains("malformed JSON"));
  }
  SECTION("JSON that is not an object") {
    WriteFile(path, RawFile("[1, 2]  ", data16));
    CHECK_THAT(ErrorOf(path), Contains(path) && Contains("not an object"));
  }
  SECTION("offsets past the data section") {
    WriteFile(path, RawFile(R"({"w":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})", data16));
    CHECK_THAT(ErrorOf(path), Contains(path) && Contains("'w'") && Contains("past the end"));
  }
  SECTION("shape disagrees with the byte range") {
    WriteFile(path, RawFile(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})", data16));
    CHECK_THAT(ErrorOf(path),
               Contains(path) && Contains("'w'") && Contains("[2, 3]") && Contains("24 bytes"));
  }
  SECTION("unknown dtype") {
    WriteFile(path, RawFile(R"({"w":{"dtype":"F8_E4M3","shape":[16],"data_offsets":[0,16]}})", data16));
    CHECK_THAT(ErrorOf(path), Contains(path) && Contains("'w'") && Contains("F8_E4M3"));
  }
  SECTION("overlapping tensors") {
    WriteFile(path, RawFile(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                            data16));
    CHECK_THAT(ErrorOf(path), Contains(path) && Contains("'a'") && Contains("'b'") &&
                                  Contains("overlap"));
  }
  SECTION("missing data_offsets") {
    WriteFile(path, RawFile(R"({"w":{"dtype":"F32","shape":[4]}})", data16));
    CHECK_THAT(ErrorOf(path), Contains("'w'") && Contains("data_offsets"));
  }
  SECTION("missing shape") {
    WriteFile(path, RawFile(R"({"w":{"dtype":"F32","data_offsets":[0,16]}})", data16));
    CHECK_THAT(ErrorOf(path), Contains("'w'") && Contains("shape"));
  }
  SECTION("negative dimension") {
    WriteFile(path, RawFile(R"({"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", data16));
    CHECK_THAT(ErrorOf(path), Contains("'w'") && Contains("negative"));
  }
  SECTION("offsets that run backwards") {
    WriteFile(path, RawFile(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[16,0]}})", data16));
    CHECK_THAT(ErrorOf(path), Contains("'w'") && Contains("backwards"));
  }
  SECTION("element count that overflows 64 bits") {
    WriteFile(path, RawFile(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],)"
                            R"("data_offsets":[0,16]}})",
                            data16));
    CHECK_THAT(ErrorOf(path), Contains("'w'") && Contains("2^64"));
  }
  SECTION("non-string metadata") {
    WriteFile(path, RawFile(R"({"__metadata__":{"format":3}})", ""));
    CHECK_THAT(ErrorOf(path), Contains(path) && Contains("__metadata__") && Contains("format"));
  }
}

TEST_CASE("ParseSafetensorsHeader is a pure function of the bytes", "[safetensors]") {
  std::string image = RawFile(R"({"__metadata__":{"k":"v"},)"
                              R"("x":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},)"
                              R"("y":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})",
                              std::string(8, '\0'));
  auto h = ParseSafetensorsHeader(image, "mem://x");
  REQUIRE(h.ok());
  CHECK(h->metadata.at("k") == "v");
  REQUIRE(h->entries.size() == 2);
  CHECK(h->header_size == image.size() - 16);
  bool saw_x = false;
  for (const auto& e : h->entries) {
    if (e.name == "x") {
      saw_x = true;
      CHECK(e.dtype == DType::kBF16);
      CHECK(e.begin == 4);
      CHECK(e.end == 8);
    }
  }
  CHECK(saw_x);

  auto bad = ParseSafetensorsHeader(image.substr(0, image.size() - 1), "mem://x");
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(std::string(bad.status().message()), Contains("mem://x") && Contains("'x'"));
  // Every prefix of a valid image is rejected cleanly (no crash, no over-read).
  for (size_t n = 0; n + 1 < image.size(); ++n) {
    CHECK_FALSE(ParseSafetensorsHeader(image.substr(0, n), "p").ok());
  }
}

}  // namespace
}  // namespace moe::engine
