# Finds softdiff's dependencies; used both by the build and by the installed
# softdiffConfig.cmake, so a consumer gets exactly the same targets.
include(CMakeFindDependencyMacro)
find_package(xtl CONFIG REQUIRED)
find_package(xtensor CONFIG REQUIRED)
find_package(xtensor-blas CONFIG REQUIRED)
find_package(Eigen3 CONFIG REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(PNG REQUIRED)
find_package(ZLIB REQUIRED)
find_package(PkgConfig REQUIRED)

# BLAS: prefer the OpenMP build of OpenBLAS (Debian's libopenblas-openmp-dev).
# Debian's default pthread build spins its workers after each call and then
# competes with OpenMP for the cores; inside an OpenMP parallel region the
# OpenMP build runs single-threaded, as softdiff's kernels expect.
if(NOT TARGET softdiff::blas)
  find_library(SOFTDIFF_BLAS_LIBRARY NAMES openblas
    PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp NO_DEFAULT_PATH)
  if(NOT SOFTDIFF_BLAS_LIBRARY)
    find_package(BLAS REQUIRED)
    set(SOFTDIFF_BLAS_LIBRARY ${BLAS_LIBRARIES})
    message(STATUS "softdiff: OpenMP OpenBLAS not found; using ${SOFTDIFF_BLAS_LIBRARY}")
  endif()
  add_library(softdiff::blas INTERFACE IMPORTED)
  if(SOFTDIFF_BLAS_LIBRARY MATCHES "openblas-openmp")
    # Link by directory and name, and put the directory first in the run path, so the
    # loader picks this build rather than the system alternative of the same soname.
    get_filename_component(_softdiff_blas_dir "${SOFTDIFF_BLAS_LIBRARY}" DIRECTORY)
    set_target_properties(softdiff::blas PROPERTIES
      INTERFACE_LINK_DIRECTORIES "${_softdiff_blas_dir}"
      INTERFACE_LINK_LIBRARIES "openblas"
      INTERFACE_LINK_OPTIONS "LINKER:-rpath,${_softdiff_blas_dir}")
  else()
    set_target_properties(softdiff::blas PROPERTIES INTERFACE_LINK_LIBRARIES "${SOFTDIFF_BLAS_LIBRARY}")
  endif()
endif()

# xtensor-blas's own config links whatever FindBLAS returns (Debian: the pthread
# alternative); point it at the same BLAS as softdiff (OpenBLAS bundles LAPACK).
set_property(TARGET xtensor-blas PROPERTY INTERFACE_LINK_LIBRARIES softdiff::blas)

if(NOT TARGET softdiff::fftw3)
  pkg_check_modules(SOFTDIFF_FFTW3 REQUIRED IMPORTED_TARGET fftw3 fftw3f)
  add_library(softdiff::fftw3 INTERFACE IMPORTED)
  set_target_properties(softdiff::fftw3 PROPERTIES INTERFACE_LINK_LIBRARIES PkgConfig::SOFTDIFF_FFTW3)
endif()
