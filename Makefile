# One cargo profile (release) for run, test and bench, so RocksDB's C++ is compiled once.
CARGO ?= cargo
CARGO_FLAGS := --release --locked
BIN := target/release

.PHONY: all deps build run fleet test lint fmt bench bench-% clean-data fuzz soak

all: build

deps:
	@scripts/install-deps.sh

build: deps
	$(CARGO) build $(CARGO_FLAGS) --bins

## make run: build, create a demo PKI and database under ./data on first run, serve on 127.0.0.1:8080.
run: build
	$(BIN)/ocspd --demo --data-dir ./data --listen 127.0.0.1:8080 --admin-listen 127.0.0.1:8081

## make fleet: a local PostgreSQL (own unprivileged user, ./fleet/pg, 127.0.0.1) and three
## ocspd nodes sharing it (docs/fleet.md); prints how to query each.
fleet: build
	scripts/fleet.sh

## make test: every test (unit, property and integration against the real binaries).
test: build
	$(CARGO) test $(CARGO_FLAGS) --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## make bench: every benchmark; make bench-NAME: one.
BENCHES := revoke presign http hsm crl fleet
bench: $(addprefix bench-,$(BENCHES))

bench-build:
	@scripts/install-deps.sh bench
	$(CARGO) build $(CARGO_FLAGS) --bins

## bench revoke_3m: bulk revocation of 3,000,000 serials, until all are acknowledged durable.
bench-revoke: bench-build
	$(BIN)/ocsp-bench revoke

## bench get_hot, get_cold, rss_cold, purge_p99: the HTTP front and its caches (wrk, nginx,
## varnishd on 127.0.0.1; the 10,000,000-certificate database is kept in target/bench-data/).
bench-http: bench-build
	$(BIN)/ocsp-bench get-hot
	$(BIN)/ocsp-bench purge-p99
	$(BIN)/ocsp-bench get-cold

## bench presign_pkcs11_p256: a pre-signing pass through a SoftHSM2 token (one session per
## core) against the software signer, same run; bench promote_backup_1m: 1,000,000
## certificates, `ocspctl issuer promote`, until every stored response is signed by the backup.
bench-hsm: bench-build
	$(BIN)/ocsp-bench presign-pkcs11
	$(BIN)/ocsp-bench promote-backup

clean-data:
	rm -rf ./data

## bench presign_p256, presign_p384, presign_rsa2048: pre-signing 1,000,000 certificates end to end, against
## openssl speed (single core) times the cores, measured in the same run; and
## bench mass_revocation_3m (below).
bench-presign: bench-build
	$(BIN)/ocsp-bench presign
	$(BIN)/ocsp-bench mass-revocation

## bench mass_revocation_3m: 3,000,000 certificates pre-signed, all revoked in bulk; the time
## until 1,000 sampled certificates are all served revoked over HTTP.
bench-mass-revocation: bench-build
	$(BIN)/ocsp-bench mass-revocation

## bench crl_get_hot, crl_mass_revocation_3m: CRLs served against nginx, and 3,000,000
## revocations signed into 64 shards and served.
bench-crl: bench-build
	$(BIN)/ocsp-bench crl-get-hot
	$(BIN)/ocsp-bench crl-mass-revocation

## bench fleet_revoke_p99, fleet_mass_revocation_3m, fleet_get_hot, fleet_bootstrap_1m: a real
## PostgreSQL and three ocspd nodes on 127.0.0.1 (docs/fleet.md).
bench-fleet: bench-build
	$(BIN)/ocsp-bench fleet-revoke-p99
	$(BIN)/ocsp-bench fleet-get-hot
	$(BIN)/ocsp-bench fleet-bootstrap
	$(BIN)/ocsp-bench fleet-mass-revocation

## bench fleet_mass_revocation_3m alone (about 15 minutes, most of it setting up 3,000,000
## pre-signed certificates).
bench-fleet-mass-revocation: bench-build
	$(BIN)/ocsp-bench fleet-mass-revocation

## make fuzz: each cargo-fuzz target (fuzz/fuzz_targets) for FUZZ_RUNS executions or
## FUZZ_SECONDS, whichever comes first, from the seed corpus in fuzz/corpus (new inputs go to
## fuzz/target/corpus). Needs the nightly toolchain; installs cargo-fuzz when missing. A crash
## stops it with the input saved under fuzz/artifacts.
FUZZ_TARGETS := ocsp_request get_path import_line purge_config
FUZZ_RUNS ?= 10000000
FUZZ_SECONDS ?= 900
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/target/corpus/$$t; \
	  echo "fuzz $$t: up to $(FUZZ_RUNS) runs or $(FUZZ_SECONDS) s"; \
	  (cd fuzz && $(CARGO) +nightly fuzz run --sanitizer none $$t target/corpus/$$t corpus/$$t -- \
	     -runs=$(FUZZ_RUNS) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1) \
	     | tee fuzz/target/$$t.log | grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done|==|SUMMARY)' || exit 1; \
	  grep -q 'Done [0-9]* runs' fuzz/target/$$t.log || { echo "fuzz $$t: did not finish cleanly (see fuzz/target/$$t.log)"; exit 1; }; \
	done

## make soak: SOAK_SECONDS (600) at 80% of the measured maximum rate, revocations mixed in;
## prints soak_rate, soak_rss_growth (target < 5%), soak_errors and soak_stale (target 0).
SOAK_SECONDS ?= 600
soak: bench-build
	$(BIN)/ocsp-bench soak $(SOAK_SECONDS)

## bench presign_p384 alone.
bench-presign-p384: bench-build
	$(BIN)/ocsp-bench presign 1000000 p384
