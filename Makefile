# sqlite-crr. `make` builds dist/crr.so; `make test` runs every test; `make demo` shows two
# replicas converging.
UNAME := $(shell uname)
EXT := $(if $(filter Darwin,$(UNAME)),dylib,so)
CARGO ?= cargo
SEED ?= 1
SEEDS ?= 200

.PHONY: all test demo sim sim-long bench instructions fuzz fuzz-build fuzz-merge clean

all: dist/crr.$(EXT)

dist/crr.$(EXT): Cargo.toml $(shell find src sql -type f)
	$(CARGO) build --profile dist --lib
	mkdir -p dist
	cp target/dist/libcrr.$(EXT) dist/crr.$(EXT)

# Unit and property tests, then integration tests against the built extension in a bundled
# SQLite (rusqlite), in the system sqlite3 shell, in a C app through bindings/c (tests/c),
# under valgrind's memcheck (tests/memcheck),
# and from Python (apsw) and Node.js (better-sqlite3) with the SQLite each of those carries
# (tests/lang/run.sh installs them); then clippy's lints on every target, where clippy is installed.
test: all
	CRR_SIM_SEEDS=$(SEEDS) $(CARGO) test --release --lib --tests
	$(CARGO) build --release --examples
	$(CARGO) bench --bench core --no-run
	bash tests/shell/run.sh
	bash tests/c/run.sh
	bash tests/memcheck/run.sh
	bash tests/lang/run.sh
	$(CARGO) run --release --quiet --example bench -- --quick > /dev/null
	@if $(CARGO) clippy --version >/dev/null 2>&1; then \
	  $(CARGO) clippy --release --all-targets --quiet -- -D warnings && echo "clippy: the library, tests, benches and examples are clean"; \
	else echo "clippy: not installed, the lints skipped (rustup component add clippy)"; fi

demo: all
	$(CARGO) run --release --quiet --example demo

# Replay one simulation seed: make sim SEED=n
sim: all
	CRR_SIM_SEED=$(SEED) $(CARGO) test --release --test simulation -- --nocapture

sim-long: all
	CRR_SIM_SEEDS=5000 $(CARGO) test --release --test simulation -- --nocapture

# Replay one seed of the random-rollback test verbosely: make rollbacks SEED=n; without SEED,
# 5,000 seeds (make test runs 150).
rollbacks: all
	$(if $(SEED),CRR_ROLLBACK_SEED=$(SEED),CRR_ROLLBACK_SEEDS=5000) $(CARGO) test --release --test rollbacks -- --nocapture

bench: all
	$(CARGO) run --release --quiet --example bench

# The instruction counts of README's performance section (needs valgrind), for builds side by
# side: make instructions BUILDS="before=/tmp/old.so now=dist/crr.so"
BUILDS ?= now=dist/crr.$(EXT)
instructions: all
	$(CARGO) build --release --examples
	bash bench/instructions.sh $(BUILDS)

# Coverage-guided fuzzing on the stable toolchain: LLVM's sanitizer-coverage passes are asked for
# directly (what cargo-fuzz does on nightly). --target keeps the flags off build scripts.
# make fuzz [FUZZ_SECONDS=60]: runs each target, new inputs go to fuzz/work/ (ignored by git),
# crashers to fuzz/artifacts/. make fuzz-merge: adds inputs with new coverage to fuzz/corpus/.
FUZZ_TARGETS := pk_decode row_clock_decode changes_insert
FUZZ_SECONDS ?= 60
HOST := $(shell rustc -vV | sed -n 's/^host: //p')
FUZZ_BIN := fuzz/target/$(HOST)/release
FUZZ_RUSTFLAGS := -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks

fuzz-build:
	cd fuzz && RUSTFLAGS="$(FUZZ_RUSTFLAGS)" $(CARGO) build --release --bins --target $(HOST)

fuzz: fuzz-build
	mkdir -p fuzz/artifacts
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/work/$$t fuzz/corpus/$$t; \
	  $(FUZZ_BIN)/$$t -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=fuzz/artifacts/$$t- \
	    fuzz/work/$$t fuzz/corpus/$$t || exit 1; \
	done

fuzz-merge: fuzz-build
	for t in $(FUZZ_TARGETS); do $(FUZZ_BIN)/$$t -merge=1 fuzz/corpus/$$t fuzz/work/$$t || exit 1; done

clean:
	rm -rf dist target fuzz/target
