# Task runner. Every target is a thin wrapper over cargo or a script.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/codis-rs/target

.PHONY: help fmt lint test test-it bench bench-proxy cluster fuzz
help:            ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'
fmt:             ## format the code
	cargo fmt --all
lint:            ## clippy with warnings as errors
	cargo clippy --workspace --all-targets -- -D warnings
test:            ## everything CI runs
	bash scripts/test.sh
test-it:         ## integration tests only (real redis-server needed)
	cargo test -p dataplane --test it
bench:           ## redis-benchmark: redis-server vs codis-server, side by side
	bash scripts/bench-server.sh
bench-proxy:     ## redis-benchmark: redis-server vs twemproxy vs codis-proxy (needs nutcracker)
	bash scripts/bench-proxy.sh
cluster:         ## build and start the local cluster
	bash scripts/cluster.sh
fuzz:            ## fuzz the RESP parsers (needs cargo-fuzz; stable via RUSTC_BOOTSTRAP)
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run request_parser -- -max_total_time=60
	cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run reply_scan -- -max_total_time=60
