// Causal grouped-query attention on the CPU, flash-style: tiles of queries against tiles of keys with an online
// softmax, so no (T × T) score matrix is ever formed. The query heads that share a key head are stacked into one tile
// and read each key and value tile once. Tiles are independent work items spread over threads; each item's sums run
// in one fixed order, so the output does not depend on the thread count. The tile kernel exists per ISA (AVX2 + FMA,
// AVX-512F; flash_tile.h), chosen at run time.
#pragma once

#include "core/backend/backend.h"

namespace serq {

// Queries per tile and head: with the group's heads stacked, each packed key and value tile serves group · 128 rows.
inline constexpr int kFlashQueryTile = 128;

enum class FlashKernel { avx2, avx512 };
const char* flash_kernel_name(FlashKernel kernel);  // "avx2", "avx512"
bool cpu_has(FlashKernel kernel);
FlashKernel flash_kernel();  // the widest this CPU has, within SERQ_CPU_ISA (cpu_isa.h)

// out ((batch · seq) × n_heads·head_dim) = softmax(q kᵀ / √head_dim, causal) v, as Backend::attention: query t of a
// sequence sits at position pos0 + t and sees keys 0 .. pos0 + t of its sequence's kv_rows. `threads` ≤ 0 = OpenBLAS's
// thread count.
void flash_attention(const float* q, const float* keys, const float* values, const AttentionShape& shape, float* out,
                     FlashKernel kernel, int threads);

}  // namespace serq
