# Script mode: fails if a file of the repository cites a document that is not in it.
#   cmake -DSOURCE_DIR=<repository> -P self_contained.cmake          (the tracked files)
#   cmake -DSOURCE_DIR=<dir> -DFILES="a;b" -P self_contained.cmake    (those files only)
# softdiff was first written from design notes and a network specification kept beside the
# repository; a clone cannot read them, so what the code needs from them lives in
# docs/equations.md and docs/refunet.md, and nothing may point back at the originals.
#
# The patterns are assembled from pieces so that this file does not match itself, and so that
# a plain grep of the repository for them comes back empty.
set(_notes "DESIG")
string(JOIN "|" _pattern
  "[.][.]/shared"              # the directory beside the checkout that held them
  "shared/spe[c]"
  "${_notes}N[.]md"            # the design notes
  "spec/refune[t][.]md")       # the network specification

if(NOT DEFINED FILES)
  # Tracked files when this is a git checkout; otherwise (a source archive) every file
  # outside build trees.
  find_program(_git git)
  set(_listed FALSE)
  if(_git AND EXISTS "${SOURCE_DIR}/.git")
    execute_process(COMMAND ${_git} -C "${SOURCE_DIR}" ls-files
                    RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_QUIET)
    if(_rc EQUAL 0)
      string(REPLACE "\n" ";" FILES "${_out}")
      set(_listed TRUE)
    endif()
  endif()
  if(NOT _listed)
    file(GLOB_RECURSE FILES RELATIVE "${SOURCE_DIR}" "${SOURCE_DIR}/*")
    list(FILTER FILES EXCLUDE REGEX "^(build[^/]*|\\.git)/")
  endif()
endif()

set(_checked 0)
set(_found "")
foreach(f IN LISTS FILES)
  set(path "${SOURCE_DIR}/${f}")
  # Images, weights and arrays cannot cite anything; reading them would only cost time.
  if(f STREQUAL "" OR NOT EXISTS "${path}" OR IS_DIRECTORY "${path}"
     OR f MATCHES "[.](png|safetensors|npy|gz)$")
    continue()
  endif()
  math(EXPR _checked "${_checked} + 1")
  file(STRINGS "${path}" _hits REGEX "${_pattern}")
  foreach(line IN LISTS _hits)
    string(STRIP "${line}" line)
    string(APPEND _found "  ${f}: ${line}\n")
  endforeach()
endforeach()

if(_checked EQUAL 0)
  message(FATAL_ERROR "self_contained: no files to check under ${SOURCE_DIR}")
endif()
if(NOT _found STREQUAL "")
  message(FATAL_ERROR "self_contained: these lines cite documents outside the repository; "
                      "cite docs/equations.md or docs/refunet.md instead:\n${_found}")
endif()
message(STATUS "self_contained: ${_checked} files cite nothing outside the repository")
