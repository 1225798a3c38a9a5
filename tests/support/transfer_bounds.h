// What a whole-model evaluation may move between the host and a host-memory backend (cpu, reference), for the
// transfer tests: the weights as the backend holds them, once; the token ids; a few numbers per scored position.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <set>
#include <string>

#include "core/backend/backend.h"
#include "core/backend/cpu/cpu_quant_linear.h"
#include "core/model/model.h"
#include "core/model/resident_model.h"

namespace serq::test {

// The bytes a ResidentModel of `model` holds on the cpu backend: each linear as its kernels read it, the embedding
// table (once, where a tied lm_head reads it), the norms' γ and RoPE's frequencies.
inline std::int64_t resident_weight_bytes(const Model& model) {
  std::int64_t bytes = 0;
  for (const QuantLinear* layer : model.linears()) bytes += static_cast<std::int64_t>(CpuLinear(*layer).bytes());
  const ModelConfig& c = model.config;
  const std::int64_t embed = static_cast<std::int64_t>(c.vocab_size) * c.dim;
  bytes += (embed + (2LL * c.n_layers + 1) * c.dim + c.head_dim() / 2) * 4;
  return head_shares_embedding(model) ? bytes - embed * 4 : bytes;
}

// Checks a ledger against the three things an evaluation may move: `weights` bytes of weights (exactly), token ids
// and row indices at most 10% beside them, and at most 64 bytes per scored position back.
inline void check_evaluation_transfers(const Transfers& moved, std::int64_t weights, std::int64_t scored_positions) {
  const std::set<std::string> allowed_in = {"weights", "token ids", "row indices"};
  const std::set<std::string> allowed_out = {"nll rows", "kld rows"};
  for (const auto& [what, bytes] : moved.host_to_backend) {
    INFO("host→backend " << what << ": " << bytes << " bytes");
    CHECK(allowed_in.contains(what));
  }
  for (const auto& [what, bytes] : moved.backend_to_host) {
    INFO("backend→host " << what << ": " << bytes << " bytes");
    CHECK(allowed_out.contains(what));
  }
  INFO(moved.describe());
  CHECK(moved.host_to_backend.at("weights") == weights);
  CHECK(moved.host_to_backend_bytes() <= weights + weights / 10);
  CHECK(moved.backend_to_host_bytes() <= 64 * scored_positions);
  CHECK(moved.backend_to_host_bytes() > 0);
}

}  // namespace serq::test
