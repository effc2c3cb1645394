#!/usr/bin/env bash
# Runs every test of weir on a fresh machine: installs what is missing (Java 17, Flink 2.x and
# 1.20.x from PyPI, cached in ~/.cache/weir), builds the Java test jobs and SQL runner, starts one
# real Flink session cluster per version for the whole run, then runs format, lint and all tests.
# The Flink-backed tests fail (never skip) when the clusters are not there.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

log() { printf '\n[test.sh] %s\n' "$*" >&2; }

flink2=${WEIR_TEST_FLINK2_VERSION:-2.3.0}
flink1=${WEIR_TEST_FLINK1_VERSION:-1.20.5}
cache=${WEIR_CACHE:-$HOME/.cache/weir}
export WEIR_CACHE=$cache

command -v cargo >/dev/null || { echo "cargo is required (rustup toolchain)" >&2; exit 1; }
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# git2's HTTPS support links the system OpenSSL.
if ! pkg-config --exists openssl 2>/dev/null; then
  log "installing libssl-dev and pkg-config"
  apt-get update -q && apt-get install -y -q libssl-dev pkg-config
fi

# An HTTPS fetch test names a CA certificate by its subject hash with the openssl command.
if ! command -v openssl >/dev/null; then
  log "installing openssl"
  apt-get update -q && apt-get install -y -q openssl
fi

# The SSH fetch tests (tests/integration/remote.rs) run a real OpenSSH server; they fail, not
# skip, without it.
if [ ! -x /usr/sbin/sshd ]; then
  log "installing openssh-server"
  apt-get update -q && apt-get install -y -q openssh-server
fi

# The email tests (tests/integration/channels.rs) run a real SMTP server, aiosmtpd.
if ! python3 -c 'import aiosmtpd' 2>/dev/null; then
  log "installing aiosmtpd"
  python3 -m pip install -q aiosmtpd
fi
# The console's browser test (tests/integration/console.rs) drives Debian's Chromium with
# playwright-core from npm (no browser download); it fails, not skips, without them.
if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium"
  apt-get update -q && apt-get install -y -q chromium
fi
if ! command -v npm >/dev/null; then
  log "installing nodejs and npm"
  apt-get update -q && apt-get install -y -q nodejs npm
fi
log "installing playwright-core (tests/browser, npm ci)"
(cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)

log "fetching Flink $flink2 and $flink1 (cached in $cache) and building the Java jobs"
scripts/build-java.sh "$flink2" "$root/target/java/$flink2"
scripts/build-java.sh "$flink1" "$root/target/java/$flink1"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

work=$(mktemp -d /tmp/weir-test.XXXXXX)
cleanup() {
  scripts/postgres.sh stop "$work/postgres" >/dev/null 2>&1 || true
  scripts/flink.sh stop "$work/flink2" >/dev/null 2>&1 || true
  scripts/flink.sh stop "$work/flink1" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Start both clusters while Rust compiles: they need ~20 s each.
p2=$(free_port); r2=$(free_port); p1=$(free_port); r1=$(free_port)
log "starting Flink $flink2 on 127.0.0.1:$p2 and Flink $flink1 on 127.0.0.1:$p1"
scripts/flink.sh start "$flink2" "$work/flink2" "$p2" "$r2" 24 >"$work/flink2-start.log" 2>&1 &
start2=$!
scripts/flink.sh start "$flink1" "$work/flink1" "$p1" "$r1" 24 >"$work/flink1-start.log" 2>&1 &
start1=$!

# PostgreSQL from Debian's packages (installed when missing) for the PostgreSQL store and the
# several-daemons tests; they fail, not skip, without it.
pg=$(free_port)
log "starting PostgreSQL on 127.0.0.1:$pg"
pg_url=$(scripts/postgres.sh start "$work/postgres" "$pg")
export WEIR_TEST_PG_URL=$pg_url

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings
log "layer rules, file and function sizes (scripts/layers.py)"
python3 scripts/layers.py
log "building tests"
cargo nextest run --locked --no-run

wait "$start2" || { cat "$work/flink2-start.log" >&2; echo "Flink $flink2 failed to start" >&2; exit 1; }
wait "$start1" || { cat "$work/flink1-start.log" >&2; echo "Flink $flink1 failed to start" >&2; exit 1; }

export WEIR_TEST_FLINK2_URL="http://127.0.0.1:$p2"
export WEIR_TEST_FLINK1_URL="http://127.0.0.1:$p1"
export WEIR_TEST_JARS2="$root/target/java/$flink2"
export WEIR_TEST_JARS1="$root/target/java/$flink1"
export WEIR_TEST_FLINK2_DIR="$work/flink2"
export WEIR_TEST_FLINK1_DIR="$work/flink1"

log "running all tests"
cargo nextest run --locked --no-fail-fast --test-threads "${WEIR_TEST_THREADS:-4}" "$@"
# The store's unit tests once more, on PostgreSQL (every backend-independent one runs on both).
log "running the store tests on PostgreSQL"
WEIR_TEST_STORE=postgres cargo nextest run --locked --no-fail-fast --lib -E 'test(/^store::/)'

