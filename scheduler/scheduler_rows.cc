// The per-row half of a step (Scheduler::RunStep): a row's token (device-sampled, or
// sampled here from its logits), the sequence's next expert footprint, and the token's
// effect on the sequence (text through the stop-string matcher, finish reasons).
// SampleRow and EmitRow touch only their own row's sequence and run on the sampling pool
// (SchedulerOptions::num_sampling_threads); UpdateFootprint runs on the engine thread.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/scheduler.h"

namespace moe::scheduler {
namespace {

bool Contains(const std::vector<int32_t>& v, int32_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

}  // namespace

void Scheduler::SampleRow(RowWork* w, int vocab_size) {
  if (w->device_token >= 0) {
    w->sampled = engine::SampledToken{};
    w->sampled.token = w->device_token;
    return;
  }
  const auto logits = absl::MakeConstSpan(w->logits, static_cast<size_t>(vocab_size));
  // A row the device declined was drawn for already: sample it with that draw.
  w->sampled = w->drew ? w->seq->sampler->SampleWithUniform(logits, w->draw)
                       : w->seq->sampler->Sample(logits);
}

void Scheduler::UpdateFootprint(Sequence* seq, int32_t token, const engine::ForwardResult& out,
                                size_t chunk) {
  engine::ExpertFootprint fp;
  if (runner_->TokenFootprint(token, &fp) && !fp.bits.empty()) {
    seq->expert_footprint = std::move(fp.bits);
  } else if (chunk < out.footprints.size() && !out.footprints[chunk].bits.empty()) {
    seq->expert_footprint = out.footprints[chunk].bits;
  } else {
    seq->expert_footprint.clear();
  }
}

void Scheduler::EmitRow(RowWork* w) const {
  Sequence* seq = w->seq;
  const GenerateRequest& req = seq->request;
  const int32_t t = w->sampled.token;
  seq->tokens.push_back(t);
  if (!seq->has_first_token) {
    seq->has_first_token = true;
    seq->first_token_time = absl::Now();
  }

  const bool is_eos = !req.ignore_eos && Contains(eos_ids_, t);
  const bool is_stop_token = Contains(req.stop_token_ids, t);
  std::string text;
  bool stop_string = false;
  std::string matched;
  if (!is_eos && !is_stop_token && seq->decoder != nullptr) {
    StopStringMatcher::Result r = seq->stop_matcher->Feed(seq->decoder->Add(t));
    text = std::move(r.emit);
    stop_string = r.stopped;
    matched = std::move(r.matched);
  }
  const bool length = seq->num_generated() >= req.max_tokens ||
                      static_cast<int>(seq->tokens.size()) >= max_model_len_;
  const bool done = is_eos || is_stop_token || stop_string || length;
  if (done && !stop_string && seq->decoder != nullptr) {
    // Release held-back text; it may still complete a stop string.
    StopStringMatcher::Result r = seq->stop_matcher->Feed(seq->decoder->Flush());
    text += r.emit;
    if (r.stopped) {
      stop_string = true;
      matched = std::move(r.matched);
    } else {
      text += seq->stop_matcher->Flush();
    }
  }
  w->logprobs.clear();
  if (req.sampling.logprobs > 0) w->logprobs.push_back(w->sampled);
  w->text = std::move(text);

  w->done = done;
  if (!done) return;
  if (stop_string) {
    w->reason = FinishReason::kStop;
    w->stop_reason = std::move(matched);
  } else if (is_eos || is_stop_token) {
    w->reason = FinishReason::kStop;
    w->stop_reason = absl::StrCat(t);
  } else {
    w->reason = FinishReason::kLength;
  }
}

}  // namespace moe::scheduler
