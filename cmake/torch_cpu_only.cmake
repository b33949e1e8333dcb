# CPU-only build against a CUDA build of torch.
#
# torch's CMake config (find_package(Torch)) of a CUDA build insists on finding the CUDA
# toolkit even when no CUDA source is compiled, so SPECTRAL_XAI_CUDA=OFF (or AUTO without a
# working nvcc) could not configure.  The CPU kernels need only torch's headers and its
# CPU libraries: describe those directly.  Sets TORCH_LIBRARIES and TORCH_INSTALL_PREFIX.
function(spectral_xai_torch_cpu_only torch_cmake_prefix)
  get_filename_component(_root "${torch_cmake_prefix}/../.." ABSOLUTE)  # .../site-packages/torch
  set(_libs "")
  foreach(_name torch torch_cpu c10)
    find_library(_sxai_lib_${_name} ${_name} PATHS "${_root}/lib" NO_DEFAULT_PATH REQUIRED)
    list(APPEND _libs "${_sxai_lib_${_name}}")
  endforeach()
  add_library(spectral_xai_torch_cpu INTERFACE IMPORTED)
  set_target_properties(spectral_xai_torch_cpu PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${_root}/include;${_root}/include/torch/csrc/api/include"
    INTERFACE_LINK_LIBRARIES "${_libs}")
  set(TORCH_LIBRARIES spectral_xai_torch_cpu PARENT_SCOPE)
  set(TORCH_INSTALL_PREFIX "${_root}" PARENT_SCOPE)
endfunction()
