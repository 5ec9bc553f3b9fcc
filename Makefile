# Thin wrapper around CMake/CTest. The build itself is in CMakeLists.txt.
#
#   make deps              install missing Debian packages (root) or say how
#   make build             configure build/ once, then build
#   make run               build, then run the main job ($(RUN_CMD))
#   make test              build, then ctest (unit + integration), in build/
#                          and then in build-mpi/ (the MPI flavour,
#                          -DEMBER_MPI=ON: the whole suite plus the tests
#                          of label mpi under mpirun) when MPI is installed;
#                          as root it first installs $(TEST_DEPS_PKGS) so
#                          the tests exercise the optional renderers
#   make build-mpi         configure and build only the MPI flavour
#   make install-mpi PREFIX=/opt/ember-mpi   the MPI flavour, same names,
#                          its own prefix (README "Two flavours")
#   make test SANITIZE=1   the serial suite in build-san/ with ASan + UBSan
#                          (the MPI flavour is not sanitized)
#   make install PREFIX=/opt/ember
#   make bench             bench/run.sh, if there is one
#   make fuzz SECONDS=N    build the libFuzzer harnesses (clang, build-fuzz/)
#                          and run each for N seconds; fails on any finding
#   make clean

# The main job: PageRank of Zachary's karate club run once straight, once
# stopped after iteration 15 (--stop-at) and resumed, the two results
# compared byte for byte (scripts/run-demo.sh). Keep it one line: the
# README and CI scripts call `make run`.
RUN_CMD = bash scripts/run-demo.sh $(BUILD_DIR)/bin

DEPS_PKGS = cmake gcc make pkg-config libhdf5-dev libcmocka-dev libzstd-dev libxxhash-dev hdf5-tools \
            python3-h5py help2man man-db openmpi-bin libopenmpi-dev libhdf5-openmpi-dev
# Optional at run time (ember-inspect --plot, ember-maps --lineage-svg), so
# not build deps; `make test` installs them as root, so CI tests the
# pictures really drawn. Without them the tests check the "apt-get install"
# refusal instead.
TEST_DEPS_PKGS = gnuplot-nox graphviz
# Only `make fuzz` needs these (clang, libFuzzer and the sanitizer
# runtimes, clang's OpenMP), so `make deps` does not install them.
FUZZ_DEPS_PKGS = clang libclang-rt-14-dev libomp-14-dev

# Fuzzing: seconds per harness, and where the fuzz build lives.
SECONDS ?= 60
FUZZ_DIR = build-fuzz

# cmake --build runs make again; its "Entering directory" lines are noise.
MAKEFLAGS += --no-print-directory

PREFIX ?= /usr/local
SANITIZE ?= 0
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_JOBS ?= 2

ifeq ($(SANITIZE),1)
BUILD_DIR = build-san
CMAKE_FLAGS = -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEMBER_SANITIZE=ON
# Any sanitizer report fails the test: ASan and LSan exit non-zero on their
# first report, UBSan is built with -fno-sanitize-recover and halts too.
# The LSan suppressions file is .ci/lsan.supp (see the comment in it).
SAN_ENV = ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:detect_leaks=1 \
          UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
          LSAN_OPTIONS=suppressions=$(CURDIR)/.ci/lsan.supp:print_suppressions=0
else
BUILD_DIR = build
CMAKE_FLAGS = -DCMAKE_BUILD_TYPE=Release
SAN_ENV =
endif

# The MPI flavour (build-mpi/). It needs mpirun and the parallel HDF5
# (pkg-config module hdf5-openmpi); `make deps` installs both.
MPI_DIR = build-mpi
MPI_CMAKE_FLAGS = -DCMAKE_BUILD_TYPE=Release -DEMBER_MPI=ON
HAVE_MPI = $(shell command -v mpirun > /dev/null 2>&1 && pkg-config --exists hdf5-openmpi 2>/dev/null && echo 1)

.PHONY: all deps fuzz-deps test-deps configure build run test install bench fuzz clean \
        build-mpi test-mpi install-mpi

all: build

# Installs the missing packages of $(1) (as root), or says how.
define install_pkgs
	@missing=""; \
	for p in $(1); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" \
	    || missing="$$missing $$p"; \
	done; \
	missing="$${missing# }"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" -eq 0 ]; then \
	  echo "make deps: installing $$missing"; \
	  apt-get update && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else \
	  echo "sudo apt-get install -y $$missing"; \
	  echo "make deps: missing Debian packages; run the command above as root" >&2; \
	  exit 1; \
	fi
endef

deps:
	$(call install_pkgs,$(DEPS_PKGS))

fuzz-deps: deps
	$(call install_pkgs,$(FUZZ_DEPS_PKGS))

# Not root: a note, and the tests take the "not installed" path.
test-deps:
	@if [ "$$(id -u)" -eq 0 ]; then \
	  $(MAKE) deps DEPS_PKGS="$(TEST_DEPS_PKGS)"; \
	else \
	  for p in $(TEST_DEPS_PKGS); do \
	    dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" \
	      || echo "make test: $$p is not installed; its tests check the refusal (sudo apt-get install $$p)"; \
	  done; \
	fi

# Configure once. The test is on the generated build files, not on
# CMakeCache.txt, which a failed configure also leaves behind. Later changes
# to CMakeLists.txt are picked up by cmake --build itself.
configure: deps
	@if [ ! -f $(BUILD_DIR)/Makefile ] && [ ! -f $(BUILD_DIR)/build.ninja ]; then \
	  echo "cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS)"; \
	  cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS); \
	fi

build: configure
	cmake --build $(BUILD_DIR) -j$(JOBS)

run: build
	$(RUN_CMD)

test: build test-deps
	$(SAN_ENV) ctest --test-dir $(BUILD_DIR) --output-on-failure -j$(CTEST_JOBS)
ifneq ($(SANITIZE),1)
	@$(MAKE) test-mpi
endif

build-mpi: deps
	@if [ "$(HAVE_MPI)" != 1 ]; then \
	  echo "make build-mpi: needs mpirun and HDF5's hdf5-openmpi (make deps as root)" >&2; \
	  exit 1; \
	fi
	@if [ ! -f $(MPI_DIR)/Makefile ] && [ ! -f $(MPI_DIR)/build.ninja ]; then \
	  echo "cmake -S . -B $(MPI_DIR) $(MPI_CMAKE_FLAGS)"; \
	  cmake -S . -B $(MPI_DIR) $(MPI_CMAKE_FLAGS); \
	fi
	cmake --build $(MPI_DIR) -j$(JOBS)

# The MPI flavour's suite, when MPI is there; said, not silently skipped,
# when it is not.
test-mpi:
	@if [ "$(HAVE_MPI)" != 1 ]; then \
	  echo "make test: MPI flavour NOT tested: no mpirun or hdf5-openmpi (make deps as root installs them)"; \
	else \
	  $(MAKE) build-mpi && \
	  ctest --test-dir $(MPI_DIR) --output-on-failure -j$(CTEST_JOBS); \
	fi

# The prefix is configured, not only given to cmake --install: the man
# pages name the installed docs' directory.
install: build
	cmake -S . -B $(BUILD_DIR) -DCMAKE_INSTALL_PREFIX=$(PREFIX) > /dev/null
	cmake --build $(BUILD_DIR) -j$(JOBS)
	cmake --install $(BUILD_DIR)

install-mpi: build-mpi
	cmake -S . -B $(MPI_DIR) -DCMAKE_INSTALL_PREFIX=$(PREFIX) > /dev/null
	cmake --build $(MPI_DIR) -j$(JOBS)
	cmake --install $(MPI_DIR)

bench: build
	@if [ -f bench/run.sh ]; then \
	  EMBER_BIN=$(CURDIR)/$(BUILD_DIR)/bin EMBER_SRC=$(CURDIR) EMBER_BUILD=$(CURDIR)/$(BUILD_DIR) \
	    bash bench/run.sh; \
	else \
	  echo "make bench: no bench/run.sh yet"; \
	fi

# The harnesses of tests/fuzz, one after the other, each for $(SECONDS)
# seconds on one worker (tests/fuzz/run.sh; docs/fuzzing.md).
fuzz: fuzz-deps
	@if [ ! -f $(FUZZ_DIR)/Makefile ] && [ ! -f $(FUZZ_DIR)/build.ninja ]; then \
	  echo "cmake -S . -B $(FUZZ_DIR) -DEMBER_FUZZ=ON ..."; \
	  CC=clang cmake -S . -B $(FUZZ_DIR) -DCMAKE_C_COMPILER=clang \
	    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEMBER_FUZZ=ON -DBUILD_TESTING=OFF; \
	fi
	cmake --build $(FUZZ_DIR) -j$(JOBS)
	bash tests/fuzz/run.sh $(FUZZ_DIR) $(SECONDS)

clean:
	rm -rf build build-san build-fuzz build-mpi
