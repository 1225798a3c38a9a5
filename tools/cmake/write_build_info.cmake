# Writes build_info_values.h (git commit, dirty flag, compiler, build type); rewrites it only when it changes.
execute_process(COMMAND git -C ${SOURCE_DIR} rev-parse HEAD OUTPUT_VARIABLE commit
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR commit STREQUAL "")
  set(commit "unknown")
endif()
execute_process(COMMAND git -C ${SOURCE_DIR} status --porcelain --untracked-files=no
                OUTPUT_VARIABLE status OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT status STREQUAL "")
  set(commit "${commit}-dirty")
endif()
set(content "#pragma once\n#define SERQ_GIT_COMMIT \"${commit}\"\n#define SERQ_COMPILER \"${COMPILER}\"\n#define SERQ_BUILD_TYPE \"${BUILD_TYPE}\"\n")
if(EXISTS ${OUTPUT})
  file(READ ${OUTPUT} old)
endif()
if(NOT "${old}" STREQUAL "${content}")
  file(WRITE ${OUTPUT} "${content}")
endif()
