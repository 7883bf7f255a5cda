# Installs an already-built weft into a fresh prefix, then configures, builds and runs the
# consumer project here against that prefix. Run by CTest (see tests/CMakeLists.txt) as
#   cmake -DWEFT_BUILD_DIR=... -DWORK_DIR=... -DGENERATOR=... -DCXX_COMPILER=...
#         [-DBUILD_TYPE=...] [-DSANITIZE_FLAGS=...] -P check.cmake
cmake_minimum_required(VERSION 3.25)

foreach(var WEFT_BUILD_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT BUILD_TYPE)
  set(BUILD_TYPE Release)
endif()
set(source_dir ${CMAKE_CURRENT_LIST_DIR})
set(prefix ${WORK_DIR}/prefix)
set(binary_dir ${WORK_DIR}/build)

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE result OUTPUT_VARIABLE output
                  ERROR_VARIABLE output)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "consumer: ${what} failed (${result}):\n${output}")
  endif()
  message(STATUS "consumer: ${what}: ok")
  set(step_output "${output}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})

run_step("install weft into ${prefix}" ${CMAKE_COMMAND} --install ${WEFT_BUILD_DIR} --prefix ${prefix})

set(configure_args -S ${source_dir} -B ${binary_dir} -G ${GENERATOR}
    -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=${BUILD_TYPE}
    -DCMAKE_PREFIX_PATH=${prefix}
    # Only the fresh prefix may provide weft: no user or system package registry.
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
if(SANITIZE_FLAGS)
  # weft was built with sanitizers (a space-separated list of flags): so is its user.
  list(APPEND configure_args "-DCMAKE_CXX_FLAGS=${SANITIZE_FLAGS}"
       "-DCMAKE_EXE_LINKER_FLAGS=${SANITIZE_FLAGS}")
endif()
run_step("configure" ${CMAKE_COMMAND} ${configure_args})

# The package must have come from the prefix, not from the build tree or the system.
file(STRINGS ${binary_dir}/CMakeCache.txt weft_dir REGEX "^weft_DIR:")
string(REGEX REPLACE "^weft_DIR:[A-Z]+=" "" weft_dir "${weft_dir}")
file(REAL_PATH ${prefix} real_prefix)
file(REAL_PATH "${weft_dir}" real_weft_dir)
cmake_path(IS_PREFIX real_prefix "${real_weft_dir}" NORMALIZE from_prefix)
if(NOT from_prefix)
  message(FATAL_ERROR "consumer: weft was found at ${weft_dir}, not under ${prefix}")
endif()

run_step("build" ${CMAKE_COMMAND} --build ${binary_dir})
run_step("run" ${binary_dir}/app)
message(STATUS "${step_output}")
