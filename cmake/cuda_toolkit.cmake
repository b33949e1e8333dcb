# Locate a working CUDA compiler and make torch's CMake config find what it needs.
#
# The system toolkit may be "lean" (nvcc and cudart, but no nvrtc/cublas/cusparse headers or
# libraries).  A CUDA build of torch ships those in its nvidia-* wheels (site-packages
# nvidia/cu<major>/{include,lib}); point torch's config at them.
function(spectral_xai_configure_cuda ok_var why_var)
  set(${ok_var} FALSE PARENT_SCOPE)
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER)
    # nvcc on PATH may be a wrapper script: ask it where it really lives.
    find_program(_nvcc nvcc)
    if(_nvcc)
      execute_process(COMMAND "${_nvcc}" --dryrun -x cu -c /dev/null -o /dev/null OUTPUT_VARIABLE _dry ERROR_VARIABLE _dry)
      string(REGEX MATCH "_HERE_=([^\n]*)" _m "${_dry}")
      if(CMAKE_MATCH_1 AND EXISTS "${CMAKE_MATCH_1}/nvcc")
        set(CMAKE_CUDA_COMPILER "${CMAKE_MATCH_1}/nvcc" CACHE FILEPATH "CUDA compiler" FORCE)
      endif()
    endif()
  endif()
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    set(${why_var} "no working CUDA compiler found" PARENT_SCOPE)
    return()
  endif()
  enable_language(CUDA)
  get_filename_component(_bin "${CMAKE_CUDA_COMPILER}" DIRECTORY)
  get_filename_component(_root "${_bin}" DIRECTORY)
  set(CUDA_TOOLKIT_ROOT_DIR "${_root}" CACHE PATH "" FORCE)
  set(CUDAToolkit_ROOT "${_root}" CACHE PATH "" FORCE)

  execute_process(
    COMMAND "${Python_EXECUTABLE}" -c
            "import os, re, nvidia; d=[os.path.join(p, q) for p in nvidia.__path__ for q in sorted(os.listdir(p)) if re.fullmatch(r'cu[0-9]+', q) and os.path.isdir(os.path.join(p, q, 'include'))]; print(d[-1] if d else '')"
    OUTPUT_VARIABLE _nv OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  set(_extra_inc "")
  if(_nv)
    list(APPEND _extra_inc "${_nv}/include")
    file(GLOB _nvrtc "${_nv}/lib/libnvrtc.so*")
    list(FILTER _nvrtc EXCLUDE REGEX "builtins|alt")
    if(_nvrtc AND NOT CUDA_nvrtc_LIBRARY)
      list(GET _nvrtc 0 _nvrtc0)
      set(CUDA_nvrtc_LIBRARY "${_nvrtc0}" CACHE FILEPATH "" FORCE)
    endif()
    list(APPEND CMAKE_LIBRARY_PATH "${_nv}/lib")
    set(CMAKE_LIBRARY_PATH "${CMAKE_LIBRARY_PATH}" PARENT_SCOPE)
    # torch's config includes these headers (cusparse.h, cublas_v2.h, ...) on the CUDA targets.
    set(CMAKE_CUDA_FLAGS "${CMAKE_CUDA_FLAGS} -I${_nv}/include" PARENT_SCOPE)
    set(CMAKE_CXX_FLAGS "${CMAKE_CXX_FLAGS} -I${_nv}/include" PARENT_SCOPE)
  endif()
  if(NOT CUDA_CUDA_LIBRARY)
    # The driver library exists only where a GPU driver is installed; the extension does not
    # call the driver API, so at build time any libcuda stub or placeholder path will do.
    find_library(_libcuda NAMES cuda PATHS "${_root}/lib64/stubs" "${_root}/targets/x86_64-linux/lib/stubs")
    if(_libcuda)
      set(CUDA_CUDA_LIBRARY "${_libcuda}" CACHE FILEPATH "" FORCE)
    endif()
  endif()
  set(SPECTRAL_XAI_CUDA_EXTRA_INCLUDES "${_extra_inc}" PARENT_SCOPE)
  set(${ok_var} TRUE PARENT_SCOPE)
endfunction()
