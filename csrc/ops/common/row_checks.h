// Range checks of perturb's index tensors, shared by the CPU and CUDA kernels.
//
// The predicates are host/device functions: the CPU path runs them on the host before its
// kernel, the CUDA kernel runs them per row (an out-of-range row writes nothing and raises a
// flag that the host reads once per call).  perturb_check_indices (perturb.cpp) turns the
// first bad row into the same ValueError on both backends.
#pragma once

#include <cstdint>

#include "macros.h"  // SXAI_HD

namespace spectral_xai {

// Bits of a row's (or an image id's) error; 0 = valid.
enum RowError : uint32_t {
  kRowOk = 0u,
  kBadSlot = 1u,      // image slot b outside [0, B)
  kBadSigma = 2u,     // sigma index j outside [0, S)
  kBadSample = 4u,    // sample index i outside [0, 2^32)
  kBadImageId = 8u,   // image id outside [0, 2^32)
};

SXAI_HD uint32_t image_id_error(int64_t id) {
  return (id >= 0 && id <= int64_t(0xFFFFFFFF)) ? kRowOk : kBadImageId;
}

// Error bits of row (b, j, i) for B image slots and S sigmas (the slot's image id is checked
// only when the slot itself is valid, so that `ids` is never read out of bounds).
SXAI_HD uint32_t row_error(int64_t b, int64_t j, int64_t i, int64_t B, int64_t S, const int64_t* ids) {
  uint32_t err = kRowOk;
  if (!(b >= 0 && b < B)) err |= kBadSlot;
  if (!(j >= 0 && j < S)) err |= kBadSigma;
  if (!(i >= 0 && i <= int64_t(0xFFFFFFFF))) err |= kBadSample;
  if (err == kRowOk) err |= image_id_error(ids[b]);
  return err;
}

}  // namespace spectral_xai
