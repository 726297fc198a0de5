# Script mode: the installed `softdiff` tool works with neither the source nor the build tree
# at hand, and finds its evaluation classifier under the install prefix.
#
#   cmake -DBUILD_DIR=<build> -DWORK_DIR=<dir> [-DSOURCE_DIR=<src>] [-DBINDIR=bin] -P installed_tool.cmake
#       installs from an existing build tree (CI: the main build, so nothing is compiled twice);
#   cmake -DSOURCE_DIR=<src> -DWORK_DIR=<dir> -DGENERATOR=Ninja -P installed_tool.cmake
#       configures a build tree of its own, builds the tool target only, installs it and then
#       deletes that build tree (minutes: the whole tool is compiled).
#
# Either way the prefix is then moved elsewhere before the tool runs, so no path of the
# installation is one the tool could have compiled in; the tool must find the classifier
# through its own executable. The source tree's copy, the tool's fallback, still exists, so
# every run checks which file the tool used. Runs happen in a directory of their own.
cmake_minimum_required(VERSION 3.21)
if(NOT BINDIR)
  set(BINDIR bin)
endif()
set(data_dir /usr/share/datasets/fashion-mnist)
if(DEFINED ENV{SOFTDIFF_FASHION_MNIST_DIR})
  set(data_dir $ENV{SOFTDIFF_FASHION_MNIST_DIR})
endif()
if(NOT EXISTS ${data_dir})
  # The classifier takes 28 x 28 Fashion-MNIST images; install dataset-fashion-mnist.
  message(STATUS "installed_tool: SKIPPED, no Fashion-MNIST at ${data_dir}")
  return()
endif()

function(run dir)
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY ${dir}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}) in ${dir}: ${ARGN}\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
  set(err "${err}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR}/elsewhere)
set(stage ${WORK_DIR}/stage)
if(DEFINED BUILD_DIR)
  run(${WORK_DIR} ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${stage})
else()
  set(build ${WORK_DIR}/build)
  run(${WORK_DIR} ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${build} -G ${GENERATOR} -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_INSTALL_PREFIX=${stage} -DCMAKE_INSTALL_BINDIR=${BINDIR}
      -DSOFTDIFF_BUILD_TESTS=OFF -DSOFTDIFF_BUILD_BENCH=OFF -DSOFTDIFF_BUILD_EXAMPLES=ON)
  run(${WORK_DIR} ${CMAKE_COMMAND} --build ${build} --target softdiff_cli)
  run(${WORK_DIR} ${CMAKE_COMMAND} --install ${build})
  file(REMOVE_RECURSE ${build})
endif()

set(prefix ${WORK_DIR}/moved/prefix)
file(MAKE_DIRECTORY ${WORK_DIR}/moved)
file(RENAME ${stage} ${prefix})
file(REAL_PATH ${prefix} prefix)  # the tool sees its own path with links resolved
set(tool ${prefix}/${BINDIR}/softdiff)
file(GLOB_RECURSE classifier ${prefix}/*/softdiff/fashion_mnist_classifier.safetensors)
if(NOT classifier)
  message(FATAL_ERROR "the install put no softdiff/fashion_mnist_classifier.safetensors under ${prefix}")
endif()

set(here ${WORK_DIR}/elsewhere)
run(${here} ${tool} eval --help)
string(FIND "${out}" "(default: ${classifier})" at)
if(at EQUAL -1)
  message(FATAL_ERROR "`softdiff eval --help` does not offer ${classifier} as the default classifier:\n${out}")
endif()

# A tiny checkpoint for 28 x 28 images, then a real evaluation with the default classifier.
run(${here} ${tool} train --out run --steps 2 --base-channels 8 --limit 64 --batch 8 --data ${data_dir}
    --sample-count 2 --sample-steps 2)
run(${here} ${tool} eval --ckpt run/checkpoint.safetensors --out ev --sampler naive --steps 2 --count 8
    --reference 16 --grid-rows 2 --test-data ${data_dir})
# Which classifier it used: the report names it (summary.json, and the log on stderr).
file(READ ${here}/ev/summary.json summary)
string(FIND "${summary}\n${err}" "${classifier}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the installed tool did not evaluate with the installed ${classifier}:\n${err}")
endif()
if(SOURCE_DIR)
  string(FIND "${summary}\n${err}" "${SOURCE_DIR}/models" at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "the installed tool used the source tree's classifier:\n${err}")
  endif()
endif()
message(STATUS "installed_tool: ${tool} evaluated with ${classifier}, run from ${here}")
