# sqlite-crr. `make` builds dist/crr.so; `make test` runs every test; `make demo` shows two
# replicas converging.
UNAME := $(shell uname)
EXT := $(if $(filter Darwin,$(UNAME)),dylib,so)
CARGO ?= cargo
SEED ?= 1
SEEDS ?= 200

.PHONY: all test demo sim sim-long bench clean

all: dist/crr.$(EXT)

dist/crr.$(EXT): Cargo.toml $(shell find src sql -type f)
	$(CARGO) build --release --lib
	mkdir -p dist
	cp target/release/libcrr.$(EXT) dist/crr.$(EXT)

# Unit and property tests, then integration tests against the built extension in a bundled
# SQLite (rusqlite) and in the system sqlite3 shell.
test: all
	CRR_SIM_SEEDS=$(SEEDS) $(CARGO) test --release --lib --tests
	$(CARGO) build --release --examples
	bash tests/shell/run.sh
	$(CARGO) run --release --quiet --example bench -- --quick > /dev/null

demo: all
	$(CARGO) run --release --quiet --example demo

# Replay one simulation seed: make sim SEED=n
sim: all
	CRR_SIM_SEED=$(SEED) $(CARGO) test --release --test simulation -- --nocapture

sim-long: all
	CRR_SIM_SEEDS=5000 $(CARGO) test --release --test simulation -- --nocapture

bench: all
	$(CARGO) run --release --quiet --example bench

clean:
	rm -rf dist target
