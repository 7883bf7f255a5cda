# The library's folders form a ladder (docs/architecture.md): each includes its own headers and
# those of the folders below it, never one above, and runtime/ includes no LLVM header. Fails
# naming every include that breaks that. Run by ctest (include_ladder):
#   cmake -DSOURCE_DIR=<the source tree> -P tests/ladder.cmake
set(ladder runtime ops autodiff compiler models)  # bottom to top

set(broken "")
foreach(folder IN LISTS ladder)
  list(FIND ladder ${folder} level)
  file(GLOB sources ${SOURCE_DIR}/${folder}/*.h ${SOURCE_DIR}/${folder}/*.cpp)
  foreach(source IN LISTS sources)
    file(RELATIVE_PATH name ${SOURCE_DIR} ${source})
    file(STRINGS ${source} includes REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
    foreach(line IN LISTS includes)
      set(included -1)
      if(line MATCHES "[<\"]weft/([a-z_]+)/")
        list(FIND ladder ${CMAKE_MATCH_1} included)
      elseif(line MATCHES "[<\"]weft/weft\\.h")  # everything: it lives in models/
        list(FIND ladder models included)
      endif()
      if(included GREATER level)
        list(APPEND broken "${name}: ${line} (${folder}/ is below it)")
      endif()
      if(folder STREQUAL "runtime" AND line MATCHES "[<\"]llvm(-c)?/")
        list(APPEND broken "${name}: ${line} (runtime/ sees no LLVM)")
      endif()
    endforeach()
  endforeach()
endforeach()

list(JOIN ladder " < " order)
if(broken)
  list(JOIN broken "\n  " text)
  message(FATAL_ERROR "includes against the ladder ${order}:\n  ${text}")
endif()
message(STATUS "includes follow the ladder ${order}")
