// Argument checks shared by the op entry points (host only).
#pragma once

#include <c10/util/Exception.h>

#define SXAI_CHECK_ARG(cond, arg, ...) TORCH_CHECK_VALUE(cond, "spectral_xai: argument '", arg, "': ", __VA_ARGS__)
