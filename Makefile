# fineo-batch: build, test, demo and benchmark entry points.
SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/fineo-batch/target
BIN_DEBUG := $(CARGO_TARGET_DIR)/debug/fineo-batch
BIN_RELEASE := $(CARGO_TARGET_DIR)/release/fineo-batch
BIN_DIST := $(CARGO_TARGET_DIR)/dist/fineo-batch
DEMO_DIR ?= $(CURDIR)/demo

.PHONY: build dist test check demo bench pyenv clean-demo

build:
	cargo build --release

## The binary that ships (Cargo.toml's dist profile: release optimized across crates).
dist:
	cargo build --profile dist

## Python readers (deltalake, pyarrow, duckdb, fastavro) used by the tests, in .venv/
pyenv:
	scripts/pyenv.sh

## The whole suite: unit tests and the one integration-test binary, beside a real S3 server
## (moto on 127.0.0.1, started and stopped by PID by scripts/with-moto.sh).
test: pyenv
	FINEO_PYTHON=$(CURDIR)/.venv/bin/python scripts/with-moto.sh cargo test --all-targets -- --test-threads=2

## Formatting and lints, warnings are errors.
check:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings

## Generate a sample archive and compact it into a local lake, printing the summary.
demo: build
	rm -rf $(DEMO_DIR)
	$(BIN_RELEASE) generate --out $(DEMO_DIR)/sample --records 200000 --format mixed --seed 7
	$(BIN_RELEASE) compact --staged $(DEMO_DIR)/sample/staged --lake $(DEMO_DIR)/lake --catalog $(DEMO_DIR)/sample/catalog

## Throughput and memory against DuckDB on the same data (not a test).
bench: dist pyenv
	bench/run.sh $(BIN_DIST)

clean-demo:
	rm -rf $(DEMO_DIR)
