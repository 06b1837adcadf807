#include "tools/tiny_tokenizer.h"

#include <cmath>
#include <filesystem>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/mapped_file.h"

namespace wan {

namespace {
constexpr int kSentinels = 8;  // umt5-xxl has 300; a handful keeps the tiny vocabulary small

void write_json(const std::filesystem::path& p, const nlohmann::json& j) {
  std::string s = j.dump(2) + "\n";
  write_file_atomic(p.string(), s.data(), s.size());
}

nlohmann::json added_token(int64_t id, const std::string& content) {
  return {{"id", id},          {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},   {"normalized", false}, {"special", true}};
}
}  // namespace

TokenizerFiles write_tiny_tokenizer(const std::string& dir) {
  std::filesystem::create_directories(dir);
  const std::string bar = "\u2581";  // SentencePiece's word-boundary mark
  // Pieces with log-probabilities: whole words are likelier than letters, so a Unigram
  // segmentation prefers them; anything else falls back to letters or <unk>.
  std::vector<std::pair<std::string, double>> vocab = {{"<pad>", 0.0}, {"</s>", 0.0}, {"<unk>", 0.0}, {bar, -3.0}};
  const char* words[] = {"a",     "the",   "of",     "and",    "in",     "on",    "with",   "cat",   "dog",
                         "man",   "woman", "walks",  "runs",   "sits",   "city",  "street", "night", "day",
                         "sun",   "rain",  "snow",   "sea",    "beach",  "forest", "tree",  "car",   "red",
                         "blue",  "green", "white",  "black",  "bright", "dark",  "slow",   "fast",  "motion",
                         "camera", "video", "shot",  "close",  "up",     "view",  "light",  "sky",   "water",
                         "river", "mountain", "flower", "bird", "fish",  "playing", "dancing", "flying", "old",
                         "young", "small", "big",   "over",   "under",  "quality", "low",   "high",  "blurry",
                         "static", "still", "picture", "style", "art",  "detailed", "realistic", "cinematic"};
  double score = -6.0;
  for (const char* w : words) vocab.push_back({bar + w, score -= 0.01});
  for (char c = 'a'; c <= 'z'; ++c) vocab.push_back({bar + std::string(1, c), -9.0 - (c - 'a') * 0.01});
  for (char c = 'a'; c <= 'z'; ++c) vocab.push_back({std::string(1, c), -10.0 - (c - 'a') * 0.01});
  for (char c = 'A'; c <= 'Z'; ++c) vocab.push_back({std::string(1, c), -11.0 - (c - 'A') * 0.01});
  for (char c = '0'; c <= '9'; ++c) vocab.push_back({std::string(1, c), -11.5 - (c - '0') * 0.01});
  for (const char* p : {".", ",", "!", "?", "'", "-", ":", ";", "\"", "(", ")", "s", "ing", "ed"})
    vocab.push_back({p, -12.0});
  for (const char* han : {"猫", "狗", "的", "在", "一", "只", "街", "夜", "雨", "海"}) vocab.push_back({han, -12.5});
  // "s", "ing", "ed" as suffixes: drop duplicates of single letters already present.
  std::vector<std::pair<std::string, double>> unique;
  for (const auto& v : vocab) {
    bool seen = false;
    for (const auto& u : unique) seen = seen || u.first == v.first;
    if (!seen) unique.push_back(v);
  }
  vocab = unique;
  const int64_t pieces = static_cast<int64_t>(vocab.size());

  nlohmann::json added = nlohmann::json::array();
  added.push_back(added_token(0, "<pad>"));
  added.push_back(added_token(1, "</s>"));
  added.push_back(added_token(2, "<unk>"));
  std::vector<std::string> sentinels;
  for (int i = 0; i < kSentinels; ++i) {
    std::string s = "<extra_id_" + std::to_string(kSentinels - 1 - i) + ">";
    added.push_back(added_token(pieces + i, s));
    sentinels.push_back("<extra_id_" + std::to_string(i) + ">");
  }
  nlohmann::json model_vocab = nlohmann::json::array();
  for (const auto& [p, s] : vocab) model_vocab.push_back({p, s});

  nlohmann::json tok = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      // umt5-xxl uses SentencePiece's precompiled nmt_nfkc charsmap; NFKC is its documented equivalent.
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "NFKC"}}, {{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", " "}}}}}},
      {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", bar}, {"add_prefix_space", true}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}, {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "B"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"</s>", {{"id", "</s>"}, {"ids", {1}}, {"tokens", {"</s>"}}}}}}}},
      {"decoder", {{"type", "Metaspace"}, {"replacement", bar}, {"add_prefix_space", true}}},
      {"model", {{"type", "Unigram"}, {"unk_id", 2}, {"vocab", model_vocab}}},
  };
  std::filesystem::path d(dir);
  write_json(d / "tokenizer.json", tok);
  write_json(d / "special_tokens_map.json", {{"additional_special_tokens", sentinels},
                                             {"eos_token", "</s>"},
                                             {"pad_token", "<pad>"},
                                             {"unk_token", "<unk>"}});
  write_json(d / "tokenizer_config.json", {{"additional_special_tokens", sentinels},
                                           {"eos_token", "</s>"},
                                           {"extra_ids", kSentinels},
                                           {"model_max_length", 512},
                                           {"pad_token", "<pad>"},
                                           {"sp_model_kwargs", nlohmann::json::object()},
                                           {"tokenizer_class", "T5Tokenizer"},
                                           {"unk_token", "<unk>"}});
  return {pieces + kSentinels};
}

}  // namespace wan
