# Finds softdiff's dependencies and defines softdiff::blas and softdiff::fftw3. Included both by
# softdiff's own build and by the installed softdiffConfig.cmake, so that a consumer gets the
# same targets softdiff was built and tested with. It creates targets of its own and never
# changes a target that another package defined.
#
# Inside find_package(softdiff) every dependency is looked up with find_dependency: it passes on
# the consumer's QUIET and REQUIRED, and a missing dependency makes find_package(softdiff) report
# softdiff as not found, naming the dependency, instead of stopping the consumer's configure. The
# file then returns early and softdiffConfig.cmake stops too. In softdiff's own build a missing
# dependency is an error.
include(CMakeFindDependencyMacro)

macro(_softdiff_dependency)
  if(CMAKE_FIND_PACKAGE_NAME STREQUAL "softdiff")
    find_dependency(${ARGV})   # on failure: softdiff_FOUND = FALSE and return() from this file
  else()
    find_package(${ARGV} REQUIRED)
  endif()
endmacro()

_softdiff_dependency(xtl CONFIG)
_softdiff_dependency(xtensor CONFIG)
_softdiff_dependency(xtensor-blas CONFIG)
_softdiff_dependency(Eigen3 CONFIG)
_softdiff_dependency(OpenMP COMPONENTS CXX)
_softdiff_dependency(nlohmann_json CONFIG)
_softdiff_dependency(PNG)
_softdiff_dependency(ZLIB)
_softdiff_dependency(PkgConfig)

# BLAS: prefer the OpenMP build of OpenBLAS (Debian's libopenblas-openmp-dev).
# Debian's default pthread build spins its workers after each call and then
# competes with OpenMP for the cores; inside an OpenMP parallel region the
# OpenMP build runs single-threaded, as softdiff's kernels expect.
if(NOT TARGET softdiff::blas)
  find_library(SOFTDIFF_BLAS_LIBRARY NAMES openblas
    PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp NO_DEFAULT_PATH)
  if(NOT SOFTDIFF_BLAS_LIBRARY)
    _softdiff_dependency(BLAS)
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

# xtensor-blas is used for its CBLAS declarations only (backend/blas.hpp), so the softdiff
# target takes its include directories and not its link interface (CMakeLists.txt): that
# carries whatever BLAS FindBLAS picked (on Debian the pthread alternative), which would
# compete with softdiff::blas for the same symbols.

if(NOT TARGET softdiff::fftw3)
  if(CMAKE_FIND_PACKAGE_NAME STREQUAL "softdiff")
    pkg_check_modules(SOFTDIFF_FFTW3 QUIET IMPORTED_TARGET fftw3 fftw3f)
    if(NOT SOFTDIFF_FFTW3_FOUND)
      set(softdiff_FOUND FALSE)
      set(softdiff_NOT_FOUND_MESSAGE "softdiff needs FFTW3 in double and single precision "
                                     "(pkg-config modules fftw3 and fftw3f), which were not found")
      return()
    endif()
  else()
    pkg_check_modules(SOFTDIFF_FFTW3 REQUIRED IMPORTED_TARGET fftw3 fftw3f)
  endif()
  add_library(softdiff::fftw3 INTERFACE IMPORTED)
  set_target_properties(softdiff::fftw3 PROPERTIES INTERFACE_LINK_LIBRARIES PkgConfig::SOFTDIFF_FFTW3)
endif()
