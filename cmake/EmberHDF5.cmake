# EmberHDF5.cmake: find the HDF5 C library and expose it as the imported
# target ember::hdf5.
#
# Why this is not a plain find_package(HDF5): Debian can have the serial and
# the OpenMPI flavours of libhdf5-dev installed side by side. Both register
# /usr/lib/<triplet>/pkgconfig/hdf5.pc and /usr/bin/h5cc through
# update-alternatives, and the MPI flavour wins by priority, so "hdf5" alone
# silently gives a parallel library that needs MPI at run time. We therefore
# ask for the flavour by name:
#   EMBER_HDF5_PARALLEL=OFF (default): pkg-config module hdf5-serial when it
#     exists (Debian, Ubuntu), else FindHDF5 with HDF5_PREFER_PARALLEL=FALSE.
#   EMBER_HDF5_PARALLEL=ON: pkg-config hdf5-openmpi / hdf5-mpich, else FindHDF5
#     with HDF5_PREFER_PARALLEL=TRUE; MPI::MPI_C is linked too.
# Whatever was found, H5pubconf.h is read and configure fails if
# H5_HAVE_PARALLEL does not match the option.
#
# Sets: EMBER_HDF5_PC_MODULE (pkg-config module name, empty if none),
#       EMBER_HDF5_LINK_FLAGS (for ember.pc when no module), EMBER_HDF5_VERSION.

find_package(PkgConfig REQUIRED)

add_library(ember::hdf5 INTERFACE IMPORTED GLOBAL)
set(EMBER_HDF5_PC_MODULE "")
set(EMBER_HDF5_LINK_FLAGS "")

if(EMBER_HDF5_PARALLEL)
  set(_ember_hdf5_modules hdf5-openmpi hdf5-mpich)
else()
  set(_ember_hdf5_modules hdf5-serial)
endif()

foreach(_mod IN LISTS _ember_hdf5_modules)
  pkg_check_modules(EMBER_PC_HDF5 QUIET IMPORTED_TARGET GLOBAL ${_mod})
  if(EMBER_PC_HDF5_FOUND)
    set(EMBER_HDF5_PC_MODULE ${_mod})
    break()
  endif()
endforeach()

if(EMBER_HDF5_PC_MODULE)
  target_link_libraries(ember::hdf5 INTERFACE PkgConfig::EMBER_PC_HDF5)
  set(_ember_hdf5_incdirs ${EMBER_PC_HDF5_INCLUDE_DIRS})
  set(EMBER_HDF5_VERSION ${EMBER_PC_HDF5_VERSION})
  set(_ember_hdf5_how "pkg-config module ${EMBER_HDF5_PC_MODULE}")
else()
  if(EMBER_HDF5_PARALLEL)
    set(HDF5_PREFER_PARALLEL TRUE)
  else()
    set(HDF5_PREFER_PARALLEL FALSE)
  endif()
  find_package(HDF5 REQUIRED COMPONENTS C)
  if(TARGET hdf5::hdf5)
    target_link_libraries(ember::hdf5 INTERFACE hdf5::hdf5)
  else()
    target_include_directories(ember::hdf5 INTERFACE ${HDF5_C_INCLUDE_DIRS} ${HDF5_INCLUDE_DIRS})
    target_link_libraries(ember::hdf5 INTERFACE ${HDF5_C_LIBRARIES})
    target_compile_definitions(ember::hdf5 INTERFACE ${HDF5_C_DEFINITIONS} ${HDF5_DEFINITIONS})
  endif()
  set(_ember_hdf5_incdirs ${HDF5_C_INCLUDE_DIRS} ${HDF5_INCLUDE_DIRS})
  set(EMBER_HDF5_VERSION ${HDF5_VERSION})
  foreach(_lib IN LISTS HDF5_C_LIBRARIES)
    string(APPEND EMBER_HDF5_LINK_FLAGS " ${_lib}")
  endforeach()
  set(_ember_hdf5_how "FindHDF5")
endif()

# The header that says which flavour we really got.
# Searched again on every configure (the cache entry is dropped first) so a
# changed HDF5 installation is noticed.
unset(EMBER_H5PUBCONF CACHE)
find_file(EMBER_H5PUBCONF H5pubconf.h
  PATHS ${_ember_hdf5_incdirs} NO_DEFAULT_PATH)
if(NOT EMBER_H5PUBCONF)
  # pkg-config leaves out -I/usr/include, and some installs have it there.
  find_file(EMBER_H5PUBCONF H5pubconf.h)
endif()
mark_as_advanced(EMBER_H5PUBCONF)
if(NOT EMBER_H5PUBCONF)
  message(FATAL_ERROR
    "ember: found HDF5 through ${_ember_hdf5_how} but not its H5pubconf.h "
    "(looked in: ${_ember_hdf5_incdirs}); cannot tell serial from parallel.")
endif()
file(STRINGS "${EMBER_H5PUBCONF}" _ember_h5par
  REGEX "^[ \t]*#[ \t]*define[ \t]+H5_HAVE_PARALLEL[ \t]+1")

if(_ember_h5par AND NOT EMBER_HDF5_PARALLEL)
  message(FATAL_ERROR
    "ember: the HDF5 found through ${_ember_hdf5_how} is a PARALLEL (MPI) build "
    "(${EMBER_H5PUBCONF} defines H5_HAVE_PARALLEL) but EMBER_HDF5_PARALLEL is OFF.\n"
    "Install the serial library (Debian: apt-get install libhdf5-dev, which "
    "provides the pkg-config module hdf5-serial), point CMAKE_PREFIX_PATH or "
    "HDF5_ROOT at a serial HDF5, or configure with -DEMBER_HDF5_PARALLEL=ON.")
elseif(NOT _ember_h5par AND EMBER_HDF5_PARALLEL)
  message(FATAL_ERROR
    "ember: EMBER_HDF5_PARALLEL is ON but the HDF5 found through "
    "${_ember_hdf5_how} is a SERIAL build (${EMBER_H5PUBCONF} has no "
    "H5_HAVE_PARALLEL). Install a parallel HDF5 (Debian: libhdf5-openmpi-dev) "
    "or configure with -DEMBER_HDF5_PARALLEL=OFF.")
endif()

if(EMBER_HDF5_PARALLEL)
  find_package(MPI REQUIRED COMPONENTS C)
  target_link_libraries(ember::hdf5 INTERFACE MPI::MPI_C)
endif()

if(_ember_h5par)
  set(_ember_flavour parallel)
else()
  set(_ember_flavour serial)
endif()
message(STATUS "ember: HDF5 ${EMBER_HDF5_VERSION} (${_ember_flavour}) via ${_ember_hdf5_how}; ${EMBER_H5PUBCONF}")
