# EmberExtras.cmake: what makes an installed ember a real tool (issue 10):
#   - docs/*.md and README.md under share/doc/ember (--help refers to them);
#   - a man page per program, made by help2man from the program's own
#     --help and --version (plus docs/man/<program>.h2m for its NAME line
#     and docs/man/common.h2m.in for ENVIRONMENT, FILES and SEE ALSO), so
#     the pages cannot drift from the flags; and ember(7) from
#     docs/man/ember.7.in;
#   - bash completion of every program's flags, generated from --help by
#     scripts/gen-completion.sh, under share/bash-completion/completions.
# Included by CMakeLists.txt once EMBER_PROGRAMS is known. Without
# help2man (Debian: help2man) the programs get no man pages, with a note.

set(_ember_gen_dir ${CMAKE_BINARY_DIR}/share)
file(MAKE_DIRECTORY ${_ember_gen_dir}/man ${_ember_gen_dir}/completions)

# ---- docs
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}
        FILES_MATCHING PATTERN "*.md" PATTERN "*.sbatch" PATTERN "man" EXCLUDE)

# ---- man pages
set(EMBER_MAN_DOCDIR ${CMAKE_INSTALL_FULL_DOCDIR})
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/docs/man/ember.7.in
               ${_ember_gen_dir}/man/ember.7 @ONLY)
install(FILES ${_ember_gen_dir}/man/ember.7 DESTINATION ${CMAKE_INSTALL_MANDIR}/man7)

find_program(EMBER_HELP2MAN help2man)
find_program(EMBER_BASH bash)
set(_ember_extra_outputs "")
if(EMBER_PROGRAMS AND NOT CMAKE_CROSSCOMPILING)
  configure_file(${CMAKE_CURRENT_SOURCE_DIR}/docs/man/common.h2m.in
                 ${_ember_gen_dir}/man/common.h2m @ONLY)
  if(NOT EMBER_HELP2MAN)
    message(STATUS "ember: help2man not found, so no man pages for the programs "
                   "(Debian: apt-get install help2man)")
  endif()
  # The programs run at build time; a sanitized build must not fail on a
  # leak report at exit.
  set(_ember_env ${CMAKE_COMMAND} -E env LC_ALL=C ASAN_OPTIONS=detect_leaks=0)
  foreach(_p IN LISTS EMBER_PROGRAMS)
    if(EMBER_HELP2MAN)
      set(_page ${_ember_gen_dir}/man/${_p}.1)
      set(_h2m "")
      if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/docs/man/${_p}.h2m)
        set(_h2m ${CMAKE_CURRENT_SOURCE_DIR}/docs/man/${_p}.h2m)
      endif()
      add_custom_command(OUTPUT ${_page}
        COMMAND ${_ember_env} ${EMBER_HELP2MAN} --no-info --section=1
                --manual=ember\ manual --source=ember\ ${PROJECT_VERSION}
                --include=${_ember_gen_dir}/man/common.h2m
                --opt-include=${CMAKE_CURRENT_SOURCE_DIR}/docs/man/${_p}.h2m
                --output=${_page} $<TARGET_FILE:${_p}>
        DEPENDS ${_p} ${_ember_gen_dir}/man/common.h2m ${_h2m}
        COMMENT "help2man: ${_p}.1"
        VERBATIM)
      list(APPEND _ember_extra_outputs ${_page})
      install(FILES ${_page} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
    endif()
    if(EMBER_BASH)
      set(_comp ${_ember_gen_dir}/completions/${_p})
      add_custom_command(OUTPUT ${_comp}
        COMMAND ${_ember_env} ${EMBER_BASH}
                ${CMAKE_CURRENT_SOURCE_DIR}/scripts/gen-completion.sh
                $<TARGET_FILE:${_p}> ${_comp}
        DEPENDS ${_p} ${CMAKE_CURRENT_SOURCE_DIR}/scripts/gen-completion.sh
        COMMENT "bash completion: ${_p}"
        VERBATIM)
      list(APPEND _ember_extra_outputs ${_comp})
      install(FILES ${_comp}
              DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
    endif()
  endforeach()
  add_custom_target(ember_man_completions ALL DEPENDS ${_ember_extra_outputs})
endif()
