# Which Gloo headers c10d's ProcessGroupGloo.hpp compiles against.
#
# Gloo's structs cross the boundary between wanlab and libtorch (the device list of
# ProcessGroupGloo::Options, the store and context objects), so the headers must be the very Gloo
# the libtorch was built with; headers of another Gloo compile fine and then crash in collectives.
#   - Debian's libtorch links the system's libgloo0, whose headers are libgloo-dev: both must be the
#     same package version (dpkg says so).
#   - A PyTorch wheel or a libtorch archive compiles in the Gloo commit it pins as third_party/gloo
#     and ships no headers: WANLAB_GLOO_DIR names a folder with that commit's headers, made by
#     native/tools/fetch-gloo.sh, whose stamp (wanlab-gloo.txt: "gloo <commit>", "pytorch <commit>")
#     must name the PyTorch commit of this libtorch (its version.py git_version, or build-hash).
# Anything that cannot be matched is refused, naming both sides. -DWANLAB_GLOO_UNMATCHED=ON builds
# anyway with the headers found (a loud warning; for machines that cannot fetch the pinned commit).
#
# wanlab_gloo_headers(<out-var> <torch-prefix>): sets <out-var> to the include folder, or fails.
# The same function runs in script mode for the tests: cmake -DTORCH_PREFIX=... [-DWANLAB_GLOO_DIR=...]
# [-DWANLAB_GLOO_INCLUDE=...] [-DWANLAB_GLOO_UNMATCHED=ON] -P native/cmake/gloo.cmake

# The PyTorch commit a libtorch was built from: version.py's git_version (a wheel's torch folder)
# or build-hash (a libtorch archive); "" when it says none (Debian's says 'Unknown').
function(wanlab_torch_commit out prefix)
  set(commit "")
  foreach(f ${prefix}/version.py ${prefix}/build-hash)
    if(NOT commit AND EXISTS ${f})
      file(READ ${f} text)
      if(text MATCHES "git_version *= *'([0-9a-f]+)'")
        set(commit ${CMAKE_MATCH_1})
      elseif(text MATCHES "^([0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]+)")
        set(commit ${CMAKE_MATCH_1})
      endif()
    endif()
  endforeach()
  set(${out} "${commit}" PARENT_SCOPE)
endfunction()

# Refuses (or, with WANLAB_GLOO_UNMATCHED, warns about) headers that cannot be matched.
function(wanlab_gloo_unmatched why)
  if(WANLAB_GLOO_UNMATCHED)
    message(WARNING "wanlab: ${why}\nwanlab: building anyway (WANLAB_GLOO_UNMATCHED=ON): Gloo collectives may crash")
  else()
    message(FATAL_ERROR "wanlab: ${why}\n(-DWANLAB_GLOO_UNMATCHED=ON builds anyway, at the risk of crashes in Gloo collectives)")
  endif()
endfunction()

function(wanlab_gloo_headers out prefix)
  if(NOT WANLAB_GLOO_DIR AND DEFINED ENV{WANLAB_GLOO_DIR})
    set(WANLAB_GLOO_DIR $ENV{WANLAB_GLOO_DIR})
  endif()
  if(NOT WANLAB_GLOO_INCLUDE AND DEFINED ENV{WANLAB_GLOO_INCLUDE})
    set(WANLAB_GLOO_INCLUDE $ENV{WANLAB_GLOO_INCLUDE})
  endif()
  wanlab_torch_commit(torch_commit ${prefix})
  set(fetch "native/tools/fetch-gloo.sh DIR fetches it (see docs/cuda.md)")

  if(WANLAB_GLOO_DIR)
    set(stamp ${WANLAB_GLOO_DIR}/wanlab-gloo.txt)
    if(NOT EXISTS ${WANLAB_GLOO_DIR}/gloo/config.h)
      message(FATAL_ERROR "wanlab: WANLAB_GLOO_DIR=${WANLAB_GLOO_DIR} has no gloo/config.h; ${fetch}")
    endif()
    if(NOT EXISTS ${stamp})
      wanlab_gloo_unmatched("cannot match the Gloo headers in ${WANLAB_GLOO_DIR} to the libtorch at ${prefix}: the folder has no wanlab-gloo.txt saying which Gloo commit it holds; ${fetch}")
    else()
      file(STRINGS ${stamp} lines)
      set(gloo_commit "")
      set(for_torch "")
      foreach(l ${lines})
        if(l MATCHES "^gloo ([0-9a-f]+)$")
          set(gloo_commit ${CMAKE_MATCH_1})
        elseif(l MATCHES "^pytorch ([0-9a-f]+)$")
          set(for_torch ${CMAKE_MATCH_1})
        endif()
      endforeach()
      if(NOT gloo_commit OR NOT for_torch)
        message(FATAL_ERROR "wanlab: ${stamp} must hold the lines 'gloo <commit>' and 'pytorch <commit>'")
      endif()
      if(NOT torch_commit)
        wanlab_gloo_unmatched("cannot match Gloo ${gloo_commit} (${WANLAB_GLOO_DIR}, fetched for PyTorch ${for_torch}) to the libtorch at ${prefix}: it does not say which PyTorch commit it is (no version.py git_version or build-hash)")
      elseif(NOT torch_commit STREQUAL for_torch)
        wanlab_gloo_unmatched("the Gloo headers in ${WANLAB_GLOO_DIR} are Gloo ${gloo_commit}, pinned by PyTorch ${for_torch}, but the libtorch at ${prefix} is PyTorch ${torch_commit}; ${fetch}")
      else()
        message(STATUS "wanlab: Gloo ${gloo_commit} headers from ${WANLAB_GLOO_DIR}, the commit PyTorch ${torch_commit} pins")
      endif()
    endif()
    set(${out} ${WANLAB_GLOO_DIR} PARENT_SCOPE)
    return()
  endif()

  find_path(found gloo/config.h HINTS ${WANLAB_GLOO_INCLUDE} PATHS /usr/include /usr/local/include NO_CACHE)
  if(torch_commit)  # a wheel or archive: its own Gloo is compiled in, no headers can match it
    wanlab_gloo_unmatched("the libtorch at ${prefix} (PyTorch ${torch_commit}) compiles in its own Gloo and ships no headers; WANLAB_GLOO_DIR must name the headers of the Gloo commit it pins as third_party/gloo: ${fetch}")
    if(NOT found)
      message(FATAL_ERROR "wanlab: Gloo headers (gloo/config.h) not found either: set WANLAB_GLOO_DIR")
    endif()
    set(${out} ${found} PARENT_SCOPE)
    return()
  endif()
  if(NOT found)
    message(FATAL_ERROR "wanlab: Gloo headers (gloo/config.h) not found: install libgloo-dev (Debian's libtorch), or set WANLAB_GLOO_DIR")
  endif()
  # Debian: the shared libgloo0 that libtorch links and the libgloo-dev headers must be one version.
  find_program(DPKG_QUERY dpkg-query)
  if(DPKG_QUERY AND found MATCHES "^/usr/include")
    execute_process(COMMAND ${DPKG_QUERY} -W -f=\${Version} libgloo-dev OUTPUT_VARIABLE dev_version ERROR_QUIET)
    execute_process(COMMAND ${DPKG_QUERY} -W -f=\${Version} libgloo0 OUTPUT_VARIABLE lib_version ERROR_QUIET)
    if(dev_version AND lib_version AND NOT dev_version STREQUAL lib_version)
      wanlab_gloo_unmatched("the Gloo headers (libgloo-dev ${dev_version}) and the libgloo0 that Debian's libtorch links (${lib_version}) are different versions: install matching packages")
    elseif(dev_version)
      message(STATUS "wanlab: Gloo headers from libgloo-dev ${dev_version}, the libgloo0 libtorch links")
    endif()
  endif()
  set(${out} ${found} PARENT_SCOPE)
endfunction()

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  wanlab_gloo_headers(include ${TORCH_PREFIX})
  message("gloo include: ${include}")
endif()
