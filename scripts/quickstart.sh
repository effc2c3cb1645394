#!/usr/bin/env bash
# weir end to end on this machine: fetch Flink (PyPI, cached in ~/.cache/weir), start a local
# session cluster on 127.0.0.1:8081, build weir and the Java jars, then validate, plan and apply
# the jobs in examples/, print `weir status`, and start `weir serve` (the daemon and its web
# console) following a Git copy of examples/. The cluster and the daemon keep running afterwards;
# the last lines say how to stop them.
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
# The daemon with its console, following a Git copy of examples/ (the jobs run already: it finds
# them by their job ids and has nothing to change).
console_port=${WEIR_QUICKSTART_CONSOLE_PORT:-8090}
jobs_repo="$work/jobs-repo"
say "weir serve: following $jobs_repo, console on http://127.0.0.1:$console_port"
if [ -f "$work/serve.pid" ] && kill -0 "$(cat "$work/serve.pid")" 2>/dev/null; then
  kill "$(cat "$work/serve.pid")" && sleep 1
fi
rm -rf "$jobs_repo" && cp -r examples "$jobs_repo"
git -C "$jobs_repo" init -q -b main
git -C "$jobs_repo" add -A
git -C "$jobs_repo" -c user.name=weir -c user.email=weir@localhost commit -q -m "examples"
cat >"$work/serve.yaml" <<YAML
repo: {url: $jobs_repo, branch: main}
listen: 127.0.0.1:$console_port
stateDir: $work/serve
pollIntervalSeconds: 10
YAML
rm -f "$work/serve.addr"
nohup "$weir" serve --config "$work/serve.yaml" --address-file "$work/serve.addr" \
  >"$work/serve.log" 2>&1 &
echo $! >"$work/serve.pid"
for _ in $(seq 1 100); do
  [ -s "$work/serve.addr" ] && break
  kill -0 "$(cat "$work/serve.pid")" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$work/serve.addr" ] || { cat "$work/serve.log" >&2; echo "weir serve did not start" >&2; exit 1; }

cat <<TXT

The weir console: http://$(cat "$work/serve.addr")/  (weir serve, log in $work/serve.log;
  stop it with: kill \$(cat $work/serve.pid))
Flink's web UI: http://127.0.0.1:$port
Try: edit examples/jobs/orders-counter.yaml (e.g. args or parallelism), then
  WEIR_STATE=$WEIR_STATE $weir plan --repo examples
  WEIR_STATE=$WEIR_STATE $weir apply --repo examples --auto-approve
Stop the cluster: scripts/flink.sh stop $work/flink
TXT
