# Script mode: fails if a header breaks the layering of docs/architecture.md ("Layers"):
#   backend/   execution-space primitives; includes nothing of the layers above it
#   op/        may include backend/, never sampler/, nn/, schedule/, loss/, train/
#   cmake -DSOURCE_DIR=<repository> -P layering.cmake
# and, with -DFIXTURE=<file> -DLAYER=<backend|op>, checks that one file as if it were in LAYER
# (the test that shows the check can fail).
set(_above_backend "op|sampler|nn|schedule|loss|train|metrics|data|soft_diffusion|cuda_ops")
set(_above_op "sampler|nn|schedule|loss|train|metrics|data|soft_diffusion|cuda_ops")

# Each violation is printed on one line (NOTICE: not wrapped, unlike errors), then the script fails.
set(_violations 0)
function(check_layer files forbidden layer)
  set(n ${_violations})
  foreach(f IN LISTS files)
    file(STRINGS "${f}" _lines REGEX "^#include [<\"]softdiff/")
    foreach(l IN LISTS _lines)
      if(l MATCHES "^#include [<\"]softdiff/(${forbidden})[/._]")
        message(NOTICE "${f}: ${layer}/ must not include a higher layer: ${l}")
        math(EXPR n "${n} + 1")
      endif()
    endforeach()
  endforeach()
  set(_violations ${n} PARENT_SCOPE)
endfunction()

if(DEFINED FIXTURE)
  if(LAYER STREQUAL "backend")
    check_layer("${FIXTURE}" "${_above_backend}" backend)
  else()
    check_layer("${FIXTURE}" "${_above_op}" op)
  endif()
  if(_violations GREATER 0)
    message(FATAL_ERROR "layering: ${_violations} include(s) against the layering")
  endif()
  return()
endif()
file(GLOB_RECURSE _backend "${SOURCE_DIR}/include/softdiff/backend/*.hpp" "${SOURCE_DIR}/include/softdiff/backend/*.cuh")
file(GLOB_RECURSE _op "${SOURCE_DIR}/include/softdiff/op/*.hpp")
if(NOT _backend OR NOT _op)
  message(FATAL_ERROR "layering.cmake: no headers found under ${SOURCE_DIR}/include/softdiff")
endif()
check_layer("${_backend}" "${_above_backend}" backend)
check_layer("${_op}" "${_above_op}" op)
if(_violations GREATER 0)
  message(FATAL_ERROR "layering: ${_violations} include(s) against the layering (docs/architecture.md, Layers)")
endif()
list(LENGTH _backend _nb)
list(LENGTH _op _no)
message(STATUS "layering: ${_nb} backend/ and ${_no} op/ headers include only their own layer and those below")
