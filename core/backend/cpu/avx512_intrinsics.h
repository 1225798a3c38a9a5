// <immintrin.h> for the files compiled with AVX-512 flags (flash_tile_avx512.cpp, int_gemm_avx512.cpp). GCC 12's
// AVX-512 intrinsics pass an undefined vector as an unused merge source, which -Wuninitialized and
// -Wmaybe-uninitialized report from inside the intrinsics header; the warnings are silenced in those files alone.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
