// A trie of every token's bytes (Tokenizer::TokenBytes), laid out flat in preorder for
// constrained decoding: walking it from a recogniser state visits each distinct token
// prefix once, and a subtree whose prefix is rejected is skipped in one jump
// (Node::next). The ids of a subtree are contiguous in ids(), so a walk may accept a whole
// subtree at once (Node::plain_below: every byte below is a plain string character).
//
// Built once per tokenizer (token_trie_cache.h); immutable afterwards.
// Thread safety: immutable after construction; any number of threads may read it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/types/span.h"

namespace moe::engine::sampling {

// A byte a JSON string may hold unescaped that never changes the string's state: printable
// ASCII other than '"' and '\\'.
inline bool IsPlainStringByte(uint8_t b) { return b >= 0x20 && b < 0x80 && b != '"' && b != '\\'; }

class TokenTrie {
 public:
  struct Node {
    uint32_t next = 0;         // index of the first node after this node's subtree
    uint32_t ids_begin = 0;    // ids()[ids_begin, ids_end): tokens whose bytes end here
    uint32_t ids_end = 0;
    uint32_t subtree_end = 0;  // ids()[ids_begin, subtree_end): every token in the subtree
    uint16_t depth = 0;        // bytes from the root (the root is 0)
    uint8_t byte = 0;          // the edge from the parent
    bool plain_below = true;   // every byte strictly below this node is IsPlainStringByte
  };

  // token_bytes[id] = the bytes of token id; empty ones (special tokens, holes) are left
  // out of the trie and can never be allowed by a walk. Tokens longer than 65535 bytes
  // are left out too.
  explicit TokenTrie(std::vector<std::string> token_bytes);

  // nodes()[0] is the root; the rest in preorder, children in byte order.
  absl::Span<const Node> nodes() const { return nodes_; }
  absl::Span<const int32_t> ids() const { return ids_; }
  int32_t vocab_size() const { return static_cast<int32_t>(bytes_.size()); }
  // "" for ids outside [0, vocab_size()).
  const std::string& bytes(int32_t id) const;
  int max_depth() const { return max_depth_; }

 private:
  std::vector<std::string> bytes_;
  std::vector<Node> nodes_;
  std::vector<int32_t> ids_;
  int max_depth_ = 0;
};

}  // namespace moe::engine::sampling
