# Script mode: install softdiff to a prefix and build a consumer with find_package,
# then build the same consumer with add_subdirectory; run both. Also: an optional
# find_package(softdiff) with a dependency missing reports "not found" instead of failing
# (find_dependency), and a parent project that adds softdiff as a subdirectory installs
# none of softdiff's files (SOFTDIFF_INSTALL is off there).
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
  set(out "${out}" PARENT_SCOPE)
endfunction()
set(prefix ${WORK_DIR}/prefix)
run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/lib -G ${GENERATOR} -DCMAKE_INSTALL_PREFIX=${prefix}
    -DSOFTDIFF_BUILD_TESTS=OFF -DSOFTDIFF_BUILD_EXAMPLES=OFF -DSOFTDIFF_BUILD_BENCH=OFF)
run(${CMAKE_COMMAND} --install ${WORK_DIR}/lib)
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package/consumer -B ${WORK_DIR}/installed -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DSOFTDIFF_CONSUME=installed)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/installed)
run(${WORK_DIR}/installed/consumer)

run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package/consumer -B ${WORK_DIR}/probe -G ${GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DSOFTDIFF_CONSUME=probe -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON)
string(FIND "${out}" "probe: softdiff not found: softdiff could not be found because dependency nlohmann_json" at)
if(at EQUAL -1)
  message(FATAL_ERROR "find_package(softdiff) did not report the missing nlohmann_json:\n${out}")
endif()

run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package/consumer -B ${WORK_DIR}/subdir -G ${GENERATOR}
    -DSOFTDIFF_CONSUME=subdirectory -DSOFTDIFF_SOURCE_DIR=${SOURCE_DIR})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/subdir)
run(${WORK_DIR}/subdir/consumer)
run(${CMAKE_COMMAND} --install ${WORK_DIR}/subdir --prefix ${WORK_DIR}/subdir_prefix)
if(EXISTS ${WORK_DIR}/subdir_prefix/include/softdiff OR EXISTS ${WORK_DIR}/subdir_prefix/share/cmake/softdiff)
  message(FATAL_ERROR "installing a project that adds softdiff as a subdirectory installed softdiff's files")
endif()
