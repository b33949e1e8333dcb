// The pybind11 module spectral_xai._C.  Importing it loads the op registrations
// (TORCH_LIBRARY_FRAGMENT / TORCH_LIBRARY_IMPL in ops/), and it exposes build facts.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/version.h>

#include <string>
#include <vector>

#include "ops/common/philox.h"

#ifndef SXAI_CUDA_ARCHS
#define SXAI_CUDA_ARCHS ""
#endif

namespace py = pybind11;

namespace {

py::dict build_info() {
  py::dict info;
  info["torch_version"] = std::string(TORCH_VERSION);
#ifdef SXAI_WITH_CUDA
  info["cuda"] = true;
  info["cuda_version"] = std::string(SXAI_CUDA_VERSION);
#else
  info["cuda"] = false;
  info["cuda_version"] = py::none();
#endif
  std::vector<std::string> archs;
  std::string all = SXAI_CUDA_ARCHS, cur;
  for (char ch : all) {
    if (ch == ';' || ch == ',' || ch == ' ') {
      if (!cur.empty()) archs.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(ch);
    }
  }
  if (!cur.empty()) archs.push_back(cur);
  info["cuda_archs"] = archs;
#if defined(__VERSION__)
  info["compiler"] = std::string(__VERSION__);
#endif
  return info;
}

// Test hooks: the raw Philox block and the normals of one block, as the kernels compute them.
std::vector<uint32_t> philox4x32_10(std::vector<uint32_t> counter, std::vector<uint32_t> key) {
  using namespace spectral_xai::philox;
  if (counter.size() != 4 || key.size() != 2) throw py::value_error("counter needs 4 words and key 2 words");
  const U4 r = philox4x32_10(U4{counter[0], counter[1], counter[2], counter[3]}, key[0], key[1]);
  return {r.x, r.y, r.z, r.w};
}

std::vector<float> normal4(uint64_t seed, uint32_t image_id, uint32_t sigma_index, uint32_t sample_index,
                           uint32_t group) {
  float out[4];
  spectral_xai::philox::normal4(seed, image_id, sigma_index, sample_index, group, out);
  return {out[0], out[1], out[2], out[3]};
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "spectral_xai compiled ops (torch.ops.spectral_xai.*) and build facts";
  m.def("build_info", &build_info, "Torch version, CUDA on/off and the CUDA architectures compiled.");
  m.def("_philox4x32_10", &philox4x32_10, py::arg("counter"), py::arg("key"));
  m.def("_normal4", &normal4, py::arg("seed"), py::arg("image_id"), py::arg("sigma_index"),
        py::arg("sample_index"), py::arg("group"));
}
