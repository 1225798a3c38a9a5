// Flash-style causal attention on the CPU (see flash_attention.h): the query tiles as work items over threads, each
// tile's queries gathered and scaled for the per-ISA tile kernel (flash_tile.h). Per query tile, the running row
// maximum m, the running sum l of exp(s − m) and the unnormalized output o are rescaled by exp(m_old − m_new) as each
// key tile arrives (the online softmax of Milakov & Gimelshein, as FlashAttention uses it); o / l is the output.
#include "core/backend/cpu/flash_attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/backend/cpu/cpu_isa.h"
#include "core/backend/cpu/flash_tile.h"
#include "core/backend/cpu/parallel.h"
#include "core/common/error.h"

namespace serq {
namespace {

// One work item: queries t0 .. t0 + kFlashQueryTile − 1 of one sequence, for the query heads of one key head.
struct QueryTile {
  int batch = 0, kv_head = 0, t0 = 0;
};

int vector_width(FlashKernel kernel) { return kernel == FlashKernel::avx512 ? 16 : 8; }
int key_tile(FlashKernel kernel) { return kernel == FlashKernel::avx512 ? kFlashKeyTileAvx512 : kFlashKeyTileAvx2; }

}  // namespace

const char* flash_kernel_name(FlashKernel kernel) { return kernel == FlashKernel::avx512 ? "avx512" : "avx2"; }

bool cpu_has(FlashKernel kernel) {
  return kernel == FlashKernel::avx512 ? __builtin_cpu_supports("avx512f")
                                       : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

FlashKernel flash_kernel() { return avx512_allowed() ? FlashKernel::avx512 : FlashKernel::avx2; }

void flash_attention(const float* q, const float* keys, const float* values, const AttentionShape& s, float* out,
                     FlashKernel kernel, int threads) {
  SERQ_CHECK(cpu_has(kernel), "attention: this CPU cannot run the {} kernel", flash_kernel_name(kernel));
  if (s.seq <= 0) return;
  const auto run_tile = kernel == FlashKernel::avx512 ? flash_tile_avx512 : flash_tile_avx2;
  const int group = s.n_heads / s.n_kv_heads, d = s.head_dim, width = s.n_heads * d, kv_width = s.n_kv_heads * d;
  const int padded_dim = (d + vector_width(kernel) - 1) / vector_width(kernel) * vector_width(kernel);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const int workers = cpu_workers(threads);

  // Keys and values packed once per sequence and key head, for the keys the last query sees: contiguous tiles that
  // stay in cache while a query tile reads them.
  const int tile = key_tile(kernel), key_count = s.pos0 + s.seq, key_tiles = (key_count + tile - 1) / tile;
  const std::size_t keys_per_head = static_cast<std::size_t>(key_tiles) * tile * padded_dim;
  const int heads = s.batch * s.n_kv_heads;
  std::vector<float> packed_keys(heads * keys_per_head, 0.0f), packed_values(packed_keys.size(), 0.0f);
  auto kv_offset = [&](int head) {  // head = batch · n_kv_heads + key head
    return static_cast<std::size_t>(head / s.n_kv_heads) * s.kv_rows * kv_width + (head % s.n_kv_heads) * d;
  };
  parallel_items(heads, workers, [&](int head, int) {
    const float* k = keys + kv_offset(head);
    float* tiles = packed_keys.data() + head * keys_per_head;
    for (int j = 0; j < key_count; ++j) {
      float* column = tiles + static_cast<std::size_t>(j / tile) * padded_dim * tile + j % tile;
      for (int k_index = 0; k_index < d; ++k_index) column[k_index * tile] = k[j * kv_width + k_index];
    }
    const float* v = values + kv_offset(head);
    float* rows = packed_values.data() + head * keys_per_head;
    for (int j = 0; j < key_count; ++j) {
      std::copy_n(v + j * kv_width, d, rows + static_cast<std::size_t>(j) * padded_dim);
    }
  });

  // The query tiles with the most keys (the last queries) first, so that the threads finish together.
  std::vector<QueryTile> tiles;
  for (int t0 = (s.seq - 1) / kFlashQueryTile * kFlashQueryTile; t0 >= 0; t0 -= kFlashQueryTile) {
    for (int b = 0; b < s.batch; ++b) {
      for (int kv_head = 0; kv_head < s.n_kv_heads; ++kv_head) tiles.push_back({b, kv_head, t0});
    }
  }
  std::vector<std::vector<float>> stacked(workers), scratch(workers);
  parallel_items(static_cast<int>(tiles.size()), workers, [&](int index, int worker) {
    const QueryTile& item = tiles[index];
    const int rows = std::min(kFlashQueryTile, s.seq - item.t0), head = item.batch * s.n_kv_heads + item.kv_head;
    std::vector<float>& q_tile = stacked[worker];
    q_tile.resize(static_cast<std::size_t>(group) * kFlashQueryTile * padded_dim, 0.0f);  // zero past d
    scratch[worker].resize(flash_scratch_floats(group * kFlashQueryTile, padded_dim, tile));
    const std::size_t first_row = static_cast<std::size_t>(item.batch) * s.seq + item.t0;
    for (int h = 0; h < group; ++h) {
      for (int r = 0; r < rows; ++r) {
        const float* from = q + (first_row + r) * width + (item.kv_head * group + h) * d;
        float* to = q_tile.data() + static_cast<std::size_t>(h * rows + r) * padded_dim;
        for (int k = 0; k < d; ++k) to[k] = from[k] * scale;
      }
    }
    run_tile({.q = q_tile.data(), .rows = rows, .group = group, .d = d, .padded_dim = padded_dim,
              .first_position = s.pos0 + item.t0, .key_tiles = packed_keys.data() + head * keys_per_head,
              .values = packed_values.data() + head * keys_per_head, .value_stride = padded_dim,
              .out = out + first_row * width + item.kv_head * group * d, .out_stride = width,
              .scratch = scratch[worker].data()});
  });
}

}  // namespace serq
