#include "engine/tokenizer/bpe_model.h"

#include <queue>

#include "absl/strings/str_format.h"
#include "engine/tokenizer/utf8.h"

namespace moe::engine::tok {

absl::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Parse(const Json& j) {
  const std::string path = "model";
  auto model = std::unique_ptr<BpeModel>(new BpeModel());
  if (!j.contains("vocab") || !j["vocab"].is_object()) {
    return FieldError("model.vocab", "must be an object of token -> id");
  }
  for (auto it = j["vocab"].begin(); it != j["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > INT32_MAX) {
      return FieldError("model.vocab", "has a bad id for token '" + it.key() + "'");
    }
    model->vocab_[it.key()] = static_cast<int32_t>(it.value().get<int64_t>());
  }
  if (j.contains("dropout") && !j["dropout"].is_null() &&
      !(j["dropout"].is_number() && j["dropout"].get<double>() == 0.0)) {
    return FieldError("model.dropout", "is not supported (must be null)");
  }
  if (j.contains("unk_token") && !j["unk_token"].is_null()) {
    auto unk = GetString(j, "unk_token", path);
    if (!unk.ok()) return unk.status();
    auto it = model->vocab_.find(*unk);
    if (it == model->vocab_.end()) {
      return FieldError("model.unk_token", "'" + *unk + "' is not in the vocabulary");
    }
    model->unk_id_ = it->second;
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (j.contains(key) && !j[key].is_null()) {
      auto v = GetString(j, key, path);
      if (!v.ok()) return v.status();
      (key[0] == 'c' ? model->continuing_subword_prefix_ : model->end_of_word_suffix_) = *v;
    }
  }
  auto fuse = GetBool(j, "fuse_unk", path, false);
  auto fallback = GetBool(j, "byte_fallback", path, false);
  auto ignore = GetBool(j, "ignore_merges", path, false);
  for (const auto* s : {&fuse, &fallback, &ignore}) {
    if (!s->ok()) return s->status();
  }
  model->fuse_unk_ = *fuse;
  model->byte_fallback_ = *fallback;
  model->ignore_merges_ = *ignore;
  model->byte_ids_.assign(256, -1);
  for (int b = 0; b < 256; ++b) {
    auto it = model->vocab_.find(absl::StrFormat("<0x%02X>", b));
    if (it != model->vocab_.end()) model->byte_ids_[b] = it->second;
  }

  if (!j.contains("merges") || !j["merges"].is_array()) {
    return FieldError("model.merges", "must be an array");
  }
  const Json& merges = j["merges"];
  for (size_t i = 0; i < merges.size(); ++i) {
    std::string a, b;
    const Json& m = merges[i];
    if (m.is_string()) {  // "a b"
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos) {
        return FieldError(Index("model.merges", i), "must be two tokens separated by a space");
      }
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    } else {
      return FieldError(Index("model.merges", i), "must be \"a b\" or [\"a\", \"b\"]");
    }
    auto ia = model->vocab_.find(a), ib = model->vocab_.find(b);
    // The right part of a merge carries the continuing-subword prefix; the merged
    // token does not repeat it.
    const std::string& prefix = model->continuing_subword_prefix_;
    const bool strip = !prefix.empty() && b.compare(0, prefix.size(), prefix) == 0;
    auto ic = model->vocab_.find(a + (strip ? b.substr(prefix.size()) : b));
    if (ia == model->vocab_.end() || ib == model->vocab_.end() || ic == model->vocab_.end()) {
      return FieldError(Index("model.merges", i),
                        "names a token missing from the vocabulary ('" + a + "' + '" + b + "')");
    }
    // First occurrence wins: its rank is the lowest.
    model->merges_.emplace(PairKey(ia->second, ib->second),
                           Merge{static_cast<int32_t>(i), ic->second});
  }
  return model;
}

std::optional<int32_t> BpeModel::TokenToId(absl::string_view token) const {
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

void BpeModel::EncodeWord(absl::string_view word, std::vector<int32_t>* ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = vocab_.find(std::string(word));
    if (it != vocab_.end()) {
      ids->push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(std::string(word));
    if (it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> out;
  Tokenize(word, &out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), out);
  }
  ids->insert(ids->end(), out.begin(), out.end());
}

void BpeModel::Tokenize(absl::string_view word, std::vector<int32_t>* ids) const {
  // 1. Characters -> initial symbols (with unknown / byte-fallback handling).
  std::vector<int32_t> sym;
  std::optional<int32_t> pending_unk;
  std::string s;
  for (size_t i = 0; i < word.size();) {
    size_t len = Utf8CharLen(word, i);
    if (len == 0) len = 1;  // cannot happen for valid input; keeps progress otherwise
    s.assign(word.data() + i, len);
    if (i > 0) s.insert(0, continuing_subword_prefix_);
    if (i + len == word.size()) s += end_of_word_suffix_;
    i += len;
    auto it = vocab_.find(s);
    if (it != vocab_.end()) {
      if (pending_unk) sym.push_back(*pending_unk);
      pending_unk.reset();
      sym.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (char c : s) all = all && byte_ids_[static_cast<uint8_t>(c)] >= 0;
      if (all) {
        for (char c : s) sym.push_back(byte_ids_[static_cast<uint8_t>(c)]);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk && !fuse_unk_) sym.push_back(*pending_unk);
      pending_unk = unk_id_;
    }
  }
  if (pending_unk) sym.push_back(*pending_unk);

  // 2. Merge the lowest-ranked adjacent pair until none is left. Symbols form a linked
  // list; stale queue entries are detected by re-checking the pair.
  const int n = static_cast<int>(sym.size());
  std::vector<int> next(n), prev(n);
  for (int k = 0; k < n; ++k) {
    next[k] = k + 1 < n ? k + 1 : -1;
    prev[k] = k - 1;
  }
  struct Cand {
    int32_t rank;
    int pos;
    int32_t left, right;  // the pair's ids when queued
    bool operator>(const Cand& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> queue;
  auto push = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    auto it = merges_.find(PairKey(sym[pos], sym[next[pos]]));
    if (it != merges_.end()) queue.push({it->second.rank, pos, sym[pos], sym[next[pos]]});
  };
  for (int k = 0; k + 1 < n; ++k) push(k);
  std::vector<bool> dead(n, false);
  while (!queue.empty()) {
    const Cand c = queue.top();
    queue.pop();
    if (dead[c.pos] || next[c.pos] < 0 || sym[c.pos] != c.left || sym[next[c.pos]] != c.right) {
      continue;
    }
    const int right = next[c.pos];
    sym[c.pos] = merges_.at(PairKey(c.left, c.right)).new_id;
    dead[right] = true;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  for (int k = 0; k >= 0 && k < n; k = next[k]) ids->push_back(sym[k]);
}

}  // namespace moe::engine::tok
