#include "engine/sampling/token_trie.h"

#include <algorithm>
#include <numeric>

namespace moe::engine::sampling {

TokenTrie::TokenTrie(std::vector<std::string> token_bytes) : bytes_(std::move(token_bytes)) {
  std::vector<int32_t> order;
  order.reserve(bytes_.size());
  for (size_t id = 0; id < bytes_.size(); ++id) {
    if (!bytes_[id].empty() && bytes_[id].size() <= 65535) {
      order.push_back(static_cast<int32_t>(id));
    }
  }
  // Byte order (as unsigned), then id: a prefix comes before its extensions, so a node's
  // own ids are appended before its children's and every subtree's ids are contiguous.
  std::sort(order.begin(), order.end(), [this](int32_t a, int32_t b) {
    const int c = bytes_[a].compare(bytes_[b]);  // std::string compares as unsigned char
    return c != 0 ? c < 0 : a < b;
  });
  ids_.reserve(order.size());
  nodes_.emplace_back();  // root
  std::vector<uint32_t> path = {0};  // path[d] = node at depth d on the current branch
  const std::string* prev = nullptr;

  // Closes path entries deeper than `depth`, finishing their ranges and the parent's
  // plain_below.
  auto close_to = [&](size_t depth) {
    while (path.size() > depth + 1) {
      Node& n = nodes_[path.back()];
      n.next = static_cast<uint32_t>(nodes_.size());
      n.subtree_end = static_cast<uint32_t>(ids_.size());
      const bool plain = n.plain_below && IsPlainStringByte(n.byte);
      path.pop_back();
      Node& parent = nodes_[path.back()];
      parent.plain_below = parent.plain_below && plain;
    }
  };

  for (int32_t id : order) {
    const std::string& s = bytes_[id];
    size_t common = 0;
    if (prev != nullptr) {
      const size_t limit = std::min(prev->size(), s.size());
      while (common < limit && (*prev)[common] == s[common]) ++common;
    }
    close_to(common);
    for (size_t d = common; d < s.size(); ++d) {
      Node n;
      n.depth = static_cast<uint16_t>(d + 1);
      n.byte = static_cast<uint8_t>(s[d]);
      n.ids_begin = n.ids_end = static_cast<uint32_t>(ids_.size());
      path.push_back(static_cast<uint32_t>(nodes_.size()));
      nodes_.push_back(n);
    }
    // Sorted order appends a node's own ids before any of its children exist.
    Node& leaf = nodes_[path.back()];
    ids_.push_back(id);
    leaf.ids_end = static_cast<uint32_t>(ids_.size());
    max_depth_ = std::max(max_depth_, static_cast<int>(s.size()));
    prev = &s;
  }
  close_to(0);
  nodes_[0].next = static_cast<uint32_t>(nodes_.size());
  nodes_[0].subtree_end = static_cast<uint32_t>(ids_.size());
}

const std::string& TokenTrie::bytes(int32_t id) const {
  static const std::string* const kEmpty = new std::string();
  return id >= 0 && id < vocab_size() ? bytes_[id] : *kEmpty;
}

}  // namespace moe::engine::sampling
