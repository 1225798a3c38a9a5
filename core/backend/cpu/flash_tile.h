// One query tile of the flash-style attention (flash_attention.h), as the per-ISA kernels see it: plain pointers to
// the tile's queries and its sequence's keys and values, and a worker's scratch. Each ISA's kernel lives in its own
// file (flash_tile_avx2.cpp, flash_tile_avx512.cpp), compiled with that ISA's flags; flash_attention.cpp picks one at
// run time.
#pragma once

namespace serq {

// Keys per key tile of each kernel: as many as its registers hold for a block of score rows (AVX2: 2 rows × 4 vectors
// of 8; AVX-512: 4 rows × 4 vectors of 16).
inline constexpr int kFlashKeyTileAvx2 = 32;
inline constexpr int kFlashKeyTileAvx512 = 64;

struct FlashTile {
  // The stacked query rows: row h · rows + r is query r of the tile for the h-th head of the group, scaled by 1/√d,
  // with row stride padded_dim (a multiple of the kernel's vector width; columns d .. padded_dim − 1 are zero).
  const float* q = nullptr;
  int rows = 0, group = 0, d = 0, padded_dim = 0;
  int first_position = 0;  // query r sits at this position + r and sees keys 0 .. first_position + r
  // The keys, packed once per call: key tile j (keys key_tile·j ..) at key_tiles + j · padded_dim · key_tile, as
  // padded_dim × key_tile (transposed), zero past the last key and past d; key_tile is the kernel's.
  const float* key_tiles = nullptr;
  // Key j's value at values + j · value_stride; padded_dim floats readable, zero past d.
  const float* values = nullptr;
  int value_stride = 0;
  // Output: row h · rows + r goes to out + r · out_stride + h · d (d floats).
  float* out = nullptr;
  int out_stride = 0;
  float* scratch = nullptr;  // flash_scratch_floats(group · rows, padded_dim) floats
};

inline int flash_scratch_floats(int stacked_rows, int padded_dim, int key_tile) {
  return stacked_rows * (key_tile + padded_dim + 3);
}

void flash_tile_avx2(const FlashTile& tile);
void flash_tile_avx512(const FlashTile& tile);

}  // namespace serq
