# A thin wrapper over CMake, in the shape Neovim uses. `make run` and `make test` are all a
# fresh Debian machine needs: both install what is missing first.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
HOST       ?= 127.0.0.1
PORT       ?= 8215

# Debian packages: build and run time, then test-only (the browser tests need chromium, and an
# emoji font so the skills' avatars render in their screenshots; `make lint` needs luacheck and
# clang-format; test-slurm a one-node cluster).
DEB_PACKAGES := build-essential cmake pkg-config liblua5.4-dev libuv1-dev libcjson-dev libdnnl2 \
  node-llhttp lua-socket lua-sec libssl-dev libopenblas-dev libpcre2-dev libutf8proc-dev
DEB_TEST_PACKAGES := clang libclang-rt-14-dev openssl curl chromium fonts-noto-color-emoji \
  lua-check clang-format slurm-wlm munge
# Benchmarks only: the anchors they compare against (nginx + Lua, PyTorch), the load tool, and
# the profilers that count where the time goes (valgrind's callgrind, perf).
DEB_BENCH_PACKAGES := wrk nginx libnginx-mod-http-lua lua-cjson python3-torch valgrind linux-perf

.PHONY: all deps deps-bench build test test-slurm asan fuzz run clean bench-http bench-tokenizer \
  bench-train bench-generate soak voice lint format

all: build

deps:
	@scripts/install-deps.sh $(DEB_PACKAGES) $(DEB_TEST_PACKAGES)
	@command -v npm >/dev/null || scripts/install-deps.sh nodejs npm
	@$(MAKE) --no-print-directory node_modules/.installed web/vendor/.stamp

# npm packages (tokenizer fixtures, dashboard libraries, browser driver), as locked; the stamp
# is ours because npm keeps its own files' times.
node_modules/.installed: package-lock.json package.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The dashboard's Chart.js and canvas-confetti, copied from node_modules (web/vendor is git-ignored).
web/vendor/.stamp: node_modules/.installed scripts/vendor-web.sh
	scripts/vendor-web.sh
	touch $@

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: deps build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE slurm

# The slurm executor on a one-node cluster the test starts and stops (tests/slurm/run.sh): over
# a minute, mostly waiting on Slurm (a node failure is noticed after SlurmdTimeout), so apart.
test-slurm: deps build
	cd $(BUILD) && ctest --output-on-failure -L slurm

# The C sources .clang-format lays out: `make format` rewrites them, `make lint` checks them.
C_SOURCES = $(wildcard engine/*.c engine/*.h cuda/*.cu cuda/*.cuh cuda/*.c cuda/*.h tests/c/*.c)

# Lua: luacheck with .luacheckrc (no globals but the host's, nothing unused, lines <= 140); C:
# clang-format's layout.
lint: deps
	luacheck --quiet lua scripts tests/lua
	clang-format --dry-run --Werror $(C_SOURCES)

format: deps
	clang-format -i $(C_SOURCES)

$(ASAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DFB_SANITIZE=ON

asan: deps $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 ctest --output-on-failure -j $(JOBS) -LE slurm

# Every libFuzzer target, FUZZ_SECONDS each, from its seed corpus (bounded; not part of CI).
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
fuzz: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DFB_FUZZ=ON -DFB_SANITIZE=ON
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@for f in $(FUZZ_BUILD)/fuzz_*; do \
	  name=$${f##*/fuzz_}; mkdir -p $(FUZZ_BUILD)/corpus-$$name; \
	  echo "== fuzz $$name for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_BUILD)/crash-$$name- \
	    $(FUZZ_BUILD)/corpus-$$name tests/fuzz/corpus/$$name || exit 1; \
	done

deps-bench: deps
	@scripts/install-deps.sh $(DEB_BENCH_PACKAGES)

# Benchmarks (not tests): each prints its own numbers beside its anchor's, in one run.
bench-http: deps-bench build
	tests/bench/http_instructions.sh $(BUILD)/fastbrain
	cmake --build $(BUILD) --target bench_http

# LoRA training: fastbrain's step and the same step in PyTorch (2 threads), shapes (a) and (b).
# OpenBLAS 0.3.21 does not know newer Xeons and falls back to slow kernels there: SkylakeX's, on
# an Intel CPU with AVX-512 only (elsewhere they are illegal instructions: an AMD EPYC here).
TORCH_CORETYPE := $(shell grep -q GenuineIntel /proc/cpuinfo && grep -q avx512f /proc/cpuinfo && \
  echo --coretype SkylakeX)
bench-train: deps-bench build
	cmake --build $(BUILD) --target bench_train
	$(BUILD)/bench_train a b
	/usr/bin/python3 tests/bench/torch_lora_step.py --shape all --blas openblas $(TORCH_CORETYPE)

# Generation: time to first token and decode tokens/s of fastbrain and of llama.cpp (npm's
# node-llama-cpp, prebuilt CPU binary) on the same model, prompt and thread count; floor 0.8x.
# BENCH_THREADS is llama.cpp's `threads` and fastbrain's BLAS threads (OpenBLAS and oneDNN read
# them at start-up). 1 by default: on a busy 2-core machine llama.cpp's spinning threads stall.
BENCH_THREADS ?= 1
bench-generate: deps build
	OPENBLAS_NUM_THREADS=$(BENCH_THREADS) OMP_NUM_THREADS=$(BENCH_THREADS) \
	  $(BUILD)/fastbrain run tests/bench/generate.lua --threads $(BENCH_THREADS) $(BENCH_ARGS)

# Long crash-safety loop of the job registry (registries SIGKILLed at random moments).
SOAK_ROUNDS ?= 500
soak: deps build
	FB_JOBS_ROUNDS=$(SOAK_ROUNDS) $(BUILD)/test_jobs random
	FB_CRASH_ROUNDS=$(SOAK_ROUNDS) $(BUILD)/fastbrain run tests/lua/test_api_crash.lua $(BUILD)/fastbrain

# LoRA with the default settings on each bundled skill, then its sample answers checked for the
# skill's voice (scripts/voice-check.lua; minutes, so not in `make test`).
voice: deps build
	$(BUILD)/fastbrain run scripts/voice-check.lua

bench-tokenizer: deps build
	cmake --build $(BUILD) --target bench_tokenizer
	$(BUILD)/bench_tokenizer

run: deps build
	$(BUILD)/fastbrain serve --host $(HOST) --port $(PORT)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
