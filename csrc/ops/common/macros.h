// Macros shared by the host (C++) and device (CUDA) code of the kernels.
#pragma once

// A function compiled for both host and device (inlined on both).
#if defined(__CUDACC__)
#define SXAI_HD __host__ __device__ __forceinline__
#else
#define SXAI_HD inline
#endif
