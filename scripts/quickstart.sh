#!/usr/bin/env bash
# weir end to end on this machine: fetch Flink (PyPI, cached in ~/.cache/weir), start a local
# session cluster on 127.0.0.1:8081, build weir and the Java jars, then validate, plan and apply
# the jobs in examples/ and print `weir status`. The cluster keeps running afterwards; stop it
# with `scripts/flink.sh stop /tmp/weir-quickstart/flink`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
version=${WEIR_FLINK_VERSION:-2.3.0}
port=${WEIR_QUICKSTART_PORT:-8081}
work=${WEIR_QUICKSTART_DIR:-/tmp/weir-quickstart}

say() { printf '\n==> %s\n' "$*"; }

say "building the Java jobs and the SQL runner against Flink $version"
scripts/build-java.sh "$version" "$root/examples/artifacts"

if scripts/flink.sh status "$work/flink" >/dev/null 2>&1; then
  say "Flink is already running ($work/flink)"
else
  say "starting a Flink $version session cluster on http://127.0.0.1:$port"
  scripts/flink.sh start "$version" "$work/flink" "$port" "$((port + 1000))"
fi

say "building weir"
cargo build --quiet
weir="$root/target/debug/weir"
export WEIR_STATE="$work/state.db"
mkdir -p /tmp/weir/savepoints

say "weir validate"
"$weir" validate --repo examples
say "weir plan"
"$weir" plan --repo examples
say "weir apply"
"$weir" apply --repo examples --auto-approve
say "weir status"
"$weir" status --repo examples
cat <<TXT

Flink's web UI: http://127.0.0.1:$port
Try: edit examples/jobs/orders-counter.yaml (e.g. args or parallelism), then
  WEIR_STATE=$WEIR_STATE $weir plan --repo examples
  WEIR_STATE=$WEIR_STATE $weir apply --repo examples --auto-approve
Stop the cluster: scripts/flink.sh stop $work/flink
TXT
