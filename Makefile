# nflow - build, test and install.
#   make              library (static + shared), examples and tests
#   make test         run the test suite (prints "N passed, N failed")
#   make test SAN=1   the same suite built with ASan + UBSan (in build-san/)
#   make test-python  the Python package's tests (python/)
#   make test-mpi     the MPI build (make MPI=1, build-mpi/) under mpirun
#   make install PREFIX=/usr/local   (make uninstall PREFIX=... removes it)
CC      ?= cc
PREFIX  ?= /usr/local
SAN     ?= 0
MPI     ?= 0
# make MPI=1: an MPI-enabled nflow (mpirun -np N nflow train ...) and
# libnflow_mpi.a (nflow_mpi.h) in build-mpi/, with mpicc; the library itself
# never needs MPI.
ifeq ($(MPI),1)
CC      := mpicc
BUILD   ?= build-mpi
CFLAGS  += -DNF_MPI
endif
# make CUDA=1: the CUDA device (src/cuda, nvcc and cuBLAS; --device cuda) in
# build-cuda/; the default build never needs CUDA.  Its tests run the GPU's
# checks when a GPU is present and skip them (saying why) when not.
CUDA    ?= 0
CUDA_HOME ?= /usr/local/cuda
NVCC    ?= $(CUDA_HOME)/bin/nvcc
NVFLAGS ?= -O3 -std=c++17 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
ifeq ($(CUDA),1)
BUILD   ?= build-cuda
CFLAGS  += -DNF_CUDA
LDLIBS  += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
endif
ifeq ($(SAN),1)
BUILD   ?= build-san
OPT     ?= -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else ifeq ($(SAN),thread)
BUILD   ?= build-tsan
OPT     ?= -O1 -g -fsanitize=thread -fno-omit-frame-pointer
else
BUILD   ?= build
OPT     ?= -O3 -g
endif
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-function
# -fno-math-errno lets sqrtf vectorise (nflow never reads errno after a math
# call) and -fno-trapping-math lets float comparisons in loops vectorise
# (nflow never reads floating-point exception flags; it checks values for
# NaN/inf explicitly).  Neither changes any arithmetic result; no -ffast-math.
# -ffp-contract=off keeps a*b+c two roundings under every compiler and in
# every NF_VEC clone (GCC's ISO-C default already; Clang would fuse).
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L $(OPT) $(WARN) -fno-math-errno -fno-trapping-math -ffp-contract=off -fPIC -Iinclude
LDLIBS  += -lopenblas -lm

LIB_SRC  := $(sort $(filter-out src/cli/% src/plot/% src/mpi/%,$(wildcard src/*/*.c)))
MPI_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard src/mpi/*.c))
CLI_SRC  := $(sort $(wildcard src/cli/*.c src/plot/*.c))
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
CAIRO_CFLAGS := $(shell pkg-config --cflags cairo 2>/dev/null)
CAIRO_LIBS   := $(shell pkg-config --libs cairo 2>/dev/null || echo -lcairo)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
ifeq ($(CUDA),1)
LIB_OBJ  += $(BUILD)/src/cuda/cuda.o
endif
TEST_SRC := $(sort $(wildcard tests/*.c))
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
EX_SRC   := $(sort $(wildcard examples/*.c))
EX_BIN   := $(EX_SRC:examples/%.c=$(BUILD)/examples/%)

.PHONY: all lib test examples install uninstall clean bench fuzz tsan valgrind python test-python test-mpi
.SECONDARY:
all: lib examples $(BUILD)/nflow $(BUILD)/tests/run

lib: $(BUILD)/libnflow.a $(BUILD)/libnflow.so

$(BUILD)/%.o: %.c $(wildcard include/*.h src/*/*.h tests/*.h) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC $<"; $(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/src/cuda/%.o: src/cuda/%.cu $(wildcard include/*.h src/*/*.h) Makefile
	@mkdir -p $(dir $@)
	@echo "  NVCC $<"; $(NVCC) $(NVFLAGS) -Xcompiler -fPIC -Iinclude -DNF_CUDA -c $< -o $@

$(BUILD)/libnflow.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Only the public API (nf_ and a letter) is exported: nflow.map.
$(BUILD)/libnflow.so: $(LIB_OBJ) nflow.map
	$(CC) $(CFLAGS) -shared -Wl,-soname,libnflow.so.0 -Wl,--version-script=nflow.map -o $@ $(LIB_OBJ) $(LDFLAGS) $(LDLIBS)

$(BUILD)/src/plot/%.o: CFLAGS += $(CAIRO_CFLAGS)

ifeq ($(MPI),1)
NFLOW_MPI_LIB := $(BUILD)/libnflow_mpi.a
all: $(NFLOW_MPI_LIB) $(BUILD)/examples/mpi_fit_comm
$(NFLOW_MPI_LIB): $(MPI_OBJ)
	@rm -f $@
	ar rcs $@ $^
# a program that trains inside its own communicators (nflow_mpi.h)
$(BUILD)/examples/mpi_fit_comm: examples/mpi/fit_comm.c $(NFLOW_MPI_LIB) $(BUILD)/libnflow.a include/nflow.h include/nflow_mpi.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(NFLOW_MPI_LIB) $(BUILD)/libnflow.a $(LDFLAGS) $(LDLIBS)
endif

$(BUILD)/nflow: $(CLI_OBJ) $(BUILD)/libnflow.a $(NFLOW_MPI_LIB)
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(NFLOW_MPI_LIB) $(BUILD)/libnflow.a $(LDFLAGS) $(CAIRO_LIBS) $(LDLIBS)

examples: $(EX_BIN)
$(BUILD)/examples/%: $(BUILD)/examples/%.o $(BUILD)/libnflow.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libnflow.a $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/run: $(TEST_OBJ) $(BUILD)/libnflow.a
	$(CC) $(CFLAGS) -o $@ $(TEST_OBJ) $(BUILD)/libnflow.a $(LDFLAGS) $(LDLIBS) -lpthread

test: all
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 ./$(BUILD)/tests/run $(BUILD)

$(BUILD)/bench/nflow_bench: bench/nflow_bench.c $(BUILD)/libnflow.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libnflow.a $(LDFLAGS) $(LDLIBS)

# libFuzzer targets for the readers (clang): make fuzz FUZZ_SECONDS=600
FUZZ_SECONDS ?= 30
FUZZ_TARGETS := csv npy model spec
FUZZ_FLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g -fno-math-errno -fno-trapping-math -ffp-contract=off -Iinclude \
              -fsanitize=address,undefined -fno-sanitize-recover=all
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_common.h tests/fuzz/fuzz_table.h $(LIB_SRC) $(wildcard src/*/*.h include/*.h)
	@mkdir -p build-fuzz
	clang $(FUZZ_FLAGS) -fsanitize=fuzzer -o $@ $< $(LIB_SRC) $(LDLIBS)

fuzz: $(FUZZ_TARGETS:%=build-fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
	    rm -rf build-fuzz/crashes/$$t; mkdir -p build-fuzz/corpus/$$t build-fuzz/crashes/$$t; \
	    echo "== fuzz_$$t for $(FUZZ_SECONDS) s"; \
	    build-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=60 -rss_limit_mb=4096 \
	        -artifact_prefix=build-fuzz/crashes/$$t/ -print_final_stats=1 \
	        build-fuzz/corpus/$$t tests/fuzz/corpus/$$t 2>&1 | grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|Test unit written' ; \
	    ls build-fuzz/crashes/$$t | grep -q -E '^(timeout|slow-unit)-' && echo "fuzz_$$t: slow inputs kept in build-fuzz/crashes/$$t (not failures)"; \
	    test -z "$$(ls build-fuzz/crashes/$$t | grep -E '^(crash|leak|oom)-')" || { echo "fuzz_$$t found a crash"; exit 1; }; \
	done

# nflow against PyTorch, side by side; writes docs/performance.md
bench:
	bench/run


# The Python package (python/, ctypes over libnflow.so; numpy and pytest from Debian:
# python3-numpy python3-pytest).  make python: a virtual environment .venv that sees
# Debian's packages, with nflow installed; make test-python: its tests and doctests.
PYTHON ?= /usr/bin/python3
python: lib
	$(PYTHON) -m venv --system-site-packages .venv
	cp $(BUILD)/libnflow.so python/nflow/libnflow.so
	.venv/bin/pip install -q --no-build-isolation --no-deps ./python
	rm -f python/nflow/libnflow.so
	@echo "python: .venv/bin/python -c 'import nflow' (the package carries libnflow.so)"

test-python: lib $(BUILD)/nflow
	NFLOW_LIB=$(CURDIR)/$(BUILD)/libnflow.so NFLOW_BUILD=$(BUILD) PYTHONPATH=$(CURDIR)/python \
	    $(PYTHON) -m pytest -q -p no:cacheprovider python/tests --doctest-modules python/nflow

# make install PREFIX=DIR: headers, libraries, nflow.pc (its Libs carry an rpath, so
# programs built with `pkg-config --libs nflow` run without LD_LIBRARY_PATH) and the
# nflow program (linked statically: it runs from anywhere).  A system prefix
# (/usr, /usr/local) refreshes the loader's cache (ldconfig) when run as root.
install: lib $(BUILD)/nflow
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/nflow.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libnflow.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libnflow.so $(DESTDIR)$(PREFIX)/lib/libnflow.so.0
	ln -sf libnflow.so.0 $(DESTDIR)$(PREFIX)/lib/libnflow.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBS@|$(LDLIBS)|' nflow.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/nflow.pc
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BUILD)/nflow $(DESTDIR)$(PREFIX)/bin/
	@if [ -z "$(DESTDIR)" ] && { [ "$(PREFIX)" = /usr/local ] || [ "$(PREFIX)" = /usr ]; } && [ "$$(id -u)" = 0 ]; then \
	    ldconfig; \
	else \
	    echo "note: programs linked with 'pkg-config --libs nflow' find $(PREFIX)/lib/libnflow.so.0 through their rpath"; \
	fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/nflow.h $(DESTDIR)$(PREFIX)/lib/libnflow.a $(DESTDIR)$(PREFIX)/lib/libnflow.so \
	      $(DESTDIR)$(PREFIX)/lib/libnflow.so.0 $(DESTDIR)$(PREFIX)/lib/pkgconfig/nflow.pc $(DESTDIR)$(PREFIX)/bin/nflow
	@if [ -z "$(DESTDIR)" ] && { [ "$(PREFIX)" = /usr/local ] || [ "$(PREFIX)" = /usr ]; } && [ "$$(id -u)" = 0 ]; then ldconfig; fi

clean:
	rm -rf build build-san build-tsan build-clang build-fuzz

# valgrind memcheck on the suites that fit CI's time (no leaks, no invalid reads).
VALGRIND_SUITES ?= core,dist,spec,io,model,fuzz_replay,device,team
valgrind: $(BUILD)/tests/run
	NF_TEST_ONLY=$(VALGRIND_SUITES) OPENBLAS_NUM_THREADS=1 valgrind -q --error-exitcode=9 --leak-check=full \
	    --errors-for-leak-kinds=definite ./$(BUILD)/tests/run

# The thread-safety tests under ThreadSanitizer (one BLAS thread per caller).
tsan:
	$(MAKE) SAN=thread $(if $(filter clang,$(CC)),,CC=clang) build-tsan/tests/run
	NF_TEST_ONLY=threads,comm,team OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS=halt_on_error=1 ./build-tsan/tests/run

# The MPI build's tests under mpirun (Open MPI: openmpi-bin libopenmpi-dev): tests/mpi/run.
test-mpi:
	$(MAKE) MPI=1 build-mpi/nflow build-mpi/examples/mpi_fit_comm
	tests/mpi/run build-mpi
