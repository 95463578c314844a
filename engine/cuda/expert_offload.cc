#include "engine/cuda/expert_offload.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "engine/cuda/cuda_util.h"

namespace moe::engine::cuda {

// Two copy streams; per slot the event of its last fill and of its last reader.
class ExpertOffload::CudaCopyEngine : public CopyEngine {
 public:
  CudaCopyEngine(const ExpertOffload* owner, cudaStream_t compute) : owner_(owner), compute_(compute) {}
  ~CudaCopyEngine() override {
    for (cudaEvent_t e : fill_) cudaEventDestroy(e);
    for (cudaEvent_t e : reader_) cudaEventDestroy(e);
    if (demand_) cudaStreamDestroy(demand_);
    if (prefetch_) cudaStreamDestroy(prefetch_);
  }
  absl::Status Init(int32_t num_slots) {
    int lo = 0, hi = 0;
    CU(cudaDeviceGetStreamPriorityRange(&lo, &hi));  // hi is the numerically lowest
    CU(cudaStreamCreateWithPriority(&demand_, cudaStreamNonBlocking, hi));
    CU(cudaStreamCreateWithPriority(&prefetch_, cudaStreamNonBlocking, lo));
    fill_.assign(num_slots, nullptr);
    reader_.assign(num_slots, nullptr);
    has_reader_.assign(num_slots, false);
    has_fill_.assign(num_slots, false);
    for (int32_t s = 0; s < num_slots; ++s) {
      CU(cudaEventCreateWithFlags(&fill_[s], cudaEventDisableTiming));
      CU(cudaEventCreateWithFlags(&reader_[s], cudaEventDisableTiming));
    }
    return absl::OkStatus();
  }
  absl::Status IssueFill(int32_t slot, ExpertKey key, bool demand) override {
    cudaStream_t s = demand ? demand_ : prefetch_;
    if (has_reader_[slot]) CU(cudaStreamWaitEvent(s, reader_[slot], 0));
    const uint64_t b = owner_->bytes_per_expert_;
    const char* src = static_cast<const char*>(owner_->host_layers_[key.layer]) + b * key.expert;
    char* dst = static_cast<char*>(owner_->slots_) + b * slot;
    CU(cudaMemcpyAsync(dst, src, b, cudaMemcpyHostToDevice, s));
    CU(cudaEventRecord(fill_[slot], s));
    has_fill_[slot] = true;
    return absl::OkStatus();
  }
  bool FillDone(int32_t slot) override {
    return !has_fill_[slot] || cudaEventQuery(fill_[slot]) == cudaSuccess;
  }
  absl::Status ComputeWaitFill(int32_t slot) override {
    if (has_fill_[slot]) CU(cudaStreamWaitEvent(compute_, fill_[slot], 0));
    return absl::OkStatus();
  }
  absl::Status RecordReader(int32_t slot) override {
    CU(cudaEventRecord(reader_[slot], compute_));
    has_reader_[slot] = true;
    return absl::OkStatus();
  }
  absl::Status Drain() {
    CU(cudaStreamSynchronize(demand_));
    CU(cudaStreamSynchronize(prefetch_));
    return absl::OkStatus();
  }

 private:
  const ExpertOffload* owner_;
  cudaStream_t compute_;
  cudaStream_t demand_ = nullptr, prefetch_ = nullptr;
  std::vector<cudaEvent_t> fill_, reader_;
  std::vector<bool> has_fill_, has_reader_;
};

ExpertOffload::ExpertOffload(const ExpertOffloadConfig& config, cudaStream_t compute)
    : config_(config), compute_(compute) {
  // Stall per step, seconds: 0.1 ms .. 10 s.
  stall_bounds_ = {1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 10};
  stall_counts_.assign(stall_bounds_.size(), 0);
}

ExpertOffload::~ExpertOffload() {
  if (copies_) (void)copies_->Drain();
  prefetcher_.reset();
  copies_.reset();
  for (cudaEvent_t e : stall_events_) cudaEventDestroy(e);
  if (slots_) cudaFree(slots_);
  for (void* p : host_layers_) {
    if (p) cudaFreeHost(p);
  }
}

absl::StatusOr<std::unique_ptr<ExpertOffload>> ExpertOffload::Create(const ExpertOffloadConfig& config,
                                                                    const DecoderWeights& w,
                                                                    const ConvertToStorage& convert,
                                                                    cudaStream_t compute) {
  const ExpertGrid g = config.grid;
  if (config.num_slots < 1) {
    return absl::InvalidArgumentError(absl::StrCat("expert offload: ", config.num_slots, " expert cache slots (need at least 1)"));
  }
  std::unique_ptr<ExpertOffload> o(new ExpertOffload(config, compute));
  o->bytes_per_expert_ = ExpertBytes(config.hidden, config.inter, config.elem_size);
  const uint64_t B = o->bytes_per_expert_;
  const uint64_t IH = static_cast<uint64_t>(config.hidden) * config.inter * config.elem_size;
  o->host_layers_.assign(g.num_layers, nullptr);
  for (int32_t l : config.moe_layers) {
    const LayerWeights& L = w.layers[l];
    if (static_cast<int32_t>(L.experts.size()) != g.num_experts) {
      return absl::InvalidArgumentError(absl::StrCat("expert offload: layer ", l, " has ", L.experts.size(), " experts, expected ", g.num_experts));
    }
    const uint64_t bytes = B * g.num_experts;
    void* p = nullptr;
    cudaError_t e = cudaHostAlloc(&p, bytes, cudaHostAllocDefault);
    if (e != cudaSuccess) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "expert offload: pinned host memory for layer ", l, " (", bytes, " bytes; ", o->pool_bytes_,
          " already pinned for earlier layers, ", B * g.num_experts * config.moe_layers.size(),
          " needed in all): ", cudaGetErrorString(e)));
    }
    o->host_layers_[l] = p;
    o->pool_bytes_ += bytes;
    // Convert the layer's experts in parallel (each worker a stride of experts).
    const int workers = std::max(1, std::min<int>(g.num_experts, static_cast<int>(std::thread::hardware_concurrency())));
    std::vector<std::thread> pool;
    for (int t = 0; t < workers; ++t) {
      pool.emplace_back([&, t] {
        for (int32_t x = t; x < g.num_experts; x += workers) {
          char* dst = static_cast<char*>(p) + B * x;
          const FfnWeights& f = L.experts[x];
          convert(f.gate, dst);
          convert(f.up, dst + IH);
          convert(f.down, dst + 2 * IH);
        }
      });
    }
    for (auto& th : pool) th.join();
  }
  cudaError_t e = cudaMalloc(&o->slots_, B * config.num_slots);
  if (e != cudaSuccess) {
    return absl::ResourceExhaustedError(absl::StrCat("expert offload: ", config.num_slots, " expert cache slots of ", B,
                                                     " bytes on the GPU: ", cudaGetErrorString(e)));
  }
  o->copies_ = std::make_unique<CudaCopyEngine>(o.get(), compute);
  RET(o->copies_->Init(config.num_slots));
  ExpertPrefetcherOptions po;
  po.grid = g;
  po.num_slots = config.num_slots;
  po.bytes_per_expert = B;
  po.policy = config.policy;
  po.moe_layers = config.moe_layers;
  // A decoupled router's whole-step routing is exact: evictions and prefetch admissions
  // respect it (issue 6: without it, far prefetches evicted what nearer layers needed).
  po.step_foresight = config.prefetch == "router";
  po.step_rule = StepPrefetchRule::kForesight;
  auto pf = ExpertPrefetcher::Create(po, o->copies_.get());
  if (!pf.ok()) return pf.status();
  o->prefetcher_ = *std::move(pf);
  {
    std::lock_guard<std::mutex> lock(o->mu_);
    o->snapshot_ = o->prefetcher_->stats();
    o->snapshot_.prefetch = config.prefetch;
  }
  return o;
}

void ExpertOffload::BeginStep() {
  prefetcher_->BeginStep(step_counter_++);
  stall_used_ = 0;
}

absl::Status ExpertOffload::Acquire(int32_t layer, absl::Span<const int32_t> experts,
                                    std::vector<const void*>* gate_up, std::vector<const void*>* down) {
  if (stall_used_ + 2 > stall_events_.size()) {
    for (int i = 0; i < 2; ++i) {
      cudaEvent_t ev = nullptr;
      CU(cudaEventCreate(&ev));
      stall_events_.push_back(ev);
    }
  }
  CU(cudaEventRecord(stall_events_[stall_used_], compute_));
  std::vector<int32_t> slot_of;
  absl::Status st = prefetcher_->AcquireLayer(layer, experts, &slot_of);
  if (absl::IsFailedPrecondition(st)) {
    // In-flight prefetches may hold the slots this layer needs: let them land, retry.
    RET(copies_->Drain());
    st = prefetcher_->AcquireLayer(layer, experts, &slot_of);
  }
  RET(st);
  CU(cudaEventRecord(stall_events_[stall_used_ + 1], compute_));
  stall_used_ += 2;
  const uint64_t B = bytes_per_expert_;
  const uint64_t IH2 = 2ull * config_.hidden * config_.inter * config_.elem_size;
  gate_up->assign(config_.grid.num_experts, nullptr);
  down->assign(config_.grid.num_experts, nullptr);
  for (int32_t x = 0; x < config_.grid.num_experts; ++x) {
    if (slot_of[x] < 0) continue;
    const char* base = static_cast<const char*>(slots_) + B * slot_of[x];
    (*gate_up)[x] = base;
    (*down)[x] = base + IH2;
  }
  return absl::OkStatus();
}

void ExpertOffload::ResidentKeys(std::vector<uint64_t>* bits) const {
  const ExpertCache& cache = prefetcher_->cache();
  const int32_t e = config_.grid.num_experts;
  for (size_t m = 0; m < config_.moe_layers.size(); ++m) {
    for (int32_t x = 0; x < e; ++x) {
      if (cache.Lookup({config_.moe_layers[m], x}) < 0) continue;
      const size_t key = m * static_cast<size_t>(e) + static_cast<size_t>(x);
      if (key / 64 < bits->size()) (*bits)[key / 64] |= uint64_t{1} << (key % 64);
    }
  }
}

absl::Status ExpertOffload::Release() { return prefetcher_->ReleaseLayer(); }

absl::Status ExpertOffload::Predict(int32_t layer, absl::Span<const int32_t> experts, bool exact) {
  return prefetcher_->Predict(layer, experts, exact);
}

absl::Status ExpertOffload::AddKnownUses(int32_t layer, absl::Span<const int32_t> experts) {
  return prefetcher_->AddKnownUses(layer, experts);
}

absl::Status ExpertOffload::SetStepRouting(const std::vector<std::vector<int32_t>>& per_moe_layer) {
  return prefetcher_->SetStepRouting(per_moe_layer);
}

absl::Status ExpertOffload::PrefetchStepAhead(int moe_index) { return prefetcher_->PrefetchStepAhead(moe_index); }

absl::Status ExpertOffload::EndStep() {
  prefetcher_->EndStep();
  double stall = 0;
  for (size_t i = 0; i + 1 < stall_used_; i += 2) {
    float ms = 0;
    CU(cudaEventElapsedTime(&ms, stall_events_[i], stall_events_[i + 1]));
    stall += ms * 1e-3;
  }
  for (size_t b = 0; b < stall_bounds_.size(); ++b) {
    if (stall <= stall_bounds_[b]) {
      ++stall_counts_[b];
      break;
    }
  }
  stall_sum_ += stall;
  ++stall_n_;
  last_step_stall_s_ = stall;
  OffloadStats s = prefetcher_->stats();
  s.prefetch = config_.prefetch;
  s.stall_bucket_bounds = stall_bounds_;
  s.stall_bucket_counts.resize(stall_bounds_.size());
  int64_t cum = 0;
  for (size_t b = 0; b < stall_bounds_.size(); ++b) {
    cum += stall_counts_[b];
    s.stall_bucket_counts[b] = cum;
  }
  s.stall_seconds_sum = stall_sum_;
  s.stall_count = stall_n_;
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_ = std::move(s);
  return absl::OkStatus();
}

std::optional<OffloadStats> ExpertOffload::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_;
}

}  // namespace moe::engine::cuda
