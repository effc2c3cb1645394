#!/usr/bin/env bash
# End-to-end check of the local Flink setup against REAL session clusters:
#
#   scripts/flink-verify.sh [VERSION:REST_PORT:RPC_PORT ...]
#
# default: 2.3.0:18081:16123 1.20.5:18082:16124 (both clusters run side by side).
# For each version: build the jars, start a cluster, upload both jars, run the
# counter job (caller-chosen jobId, parallelism 2), stop it with a savepoint,
# resubmit from the savepoint and check the restore, cancel it and check the
# retained checkpoint, run a two-INSERT SQL script (must be ONE job) and a
# script with a SELECT (must be rejected by /jars/run). Exits non-zero on the
# first failed check. Clusters are stopped at the end unless WEIR_VERIFY_KEEP=1.
#
#   WEIR_VERIFY_DIR   work dirs and jars (default /tmp/weir-flink-check)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
base="${WEIR_VERIFY_DIR:-/tmp/weir-flink-check}"
specs=("$@")
if ((${#specs[@]} == 0)); then specs=(2.3.0:18081:16123 1.20.5:18082:16124); fi

log() { printf '[verify %s] %s\n' "${tag:-}" "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

# jget JSON PYEXPR: evaluate a Python expression on the parsed JSON `d`.
jget() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); r=eval(sys.argv[2]); print(json.dumps(r) if isinstance(r,(dict,list,bool)) or r is None else r)' "$1" "$2"; }
newid() { python3 -c 'import uuid; print(uuid.uuid4().hex)'; }

# post URL JSON -> sets $code and $body
post() {
  local out
  out="$(curl -sS -X POST -H 'Content-Type: application/json' -d "$2" -w '\n%{http_code}' "$1")"
  code="${out##*$'\n'}"
  body="${out%$'\n'*}"
}

wait_running() { # PORT JOBID: all tasks RUNNING
  local port="$1" id="$2" ov
  for _ in $(seq 1 60); do
    ov="$(curl -fsS "http://127.0.0.1:$port/jobs/overview")"
    if [[ "$(jget "$ov" "[j['state']=='RUNNING' and j['tasks']['running']==j['tasks']['total'] for j in d['jobs'] if j['jid']=='$id']")" == "[true]" ]]; then
      return 0
    fi
    sleep 1
  done
  fail "job $id not RUNNING: $(jget "$ov" "[j for j in d['jobs'] if j['jid']=='$id']")"
}

wait_checkpoint() { # PORT JOBID: at least one completed checkpoint
  local port="$1" id="$2" cp
  for _ in $(seq 1 30); do
    cp="$(curl -fsS "http://127.0.0.1:$port/jobs/$id/checkpoints")"
    [[ "$(jget "$cp" "d['counts']['completed']")" -gt 0 ]] && return 0
    sleep 1
  done
  fail "no completed checkpoint for $id"
}

verify_version() {
  local version="$1" port="$2" wd="$3" jars="$4"
  local api="http://127.0.0.1:$port" tjar sjar id1 id2 rid st sp cp sqlid b64
  tag="$version"
  tjar="$(jget "$(curl -fsS -F "jarfile=@$jars/weir-test-job.jar" "$api/jars/upload")" "d['filename'].split('/')[-1]")"
  sjar="$(jget "$(curl -fsS -F "jarfile=@$jars/weir-sql-runner.jar" "$api/jars/upload")" "d['filename'].split('/')[-1]")"
  log "uploaded $tjar $sjar"

  id1="$(newid)"
  post "$api/jars/$tjar/run" "{\"entryClass\":\"dev.weir.testjob.CounterJob\",\"programArgsList\":[\"--name\",\"verify-counter\",\"--topic\",\"ignored\"],\"parallelism\":2,\"jobId\":\"$id1\"}"
  [[ "$code" == 200 && "$(jget "$body" "d['jobid']")" == "$id1" ]] || fail "run counter: HTTP $code $body"
  wait_running "$port" "$id1"
  wait_checkpoint "$port" "$id1"
  log "counter job $id1 RUNNING with checkpoints"

  post "$api/jobs/$id1/stop" "{\"drain\":false,\"targetDirectory\":\"file://$wd/verify-savepoints\",\"formatType\":\"CANONICAL\"}"
  [[ "$code" == 202 ]] || fail "stop: HTTP $code $body"
  rid="$(jget "$body" "d['request-id']")"
  for _ in $(seq 1 60); do
    st="$(curl -fsS "$api/jobs/$id1/savepoints/$rid")"
    [[ "$(jget "$st" "d['status']['id']")" == COMPLETED ]] && break
    sleep 0.5
  done
  sp="$(jget "$st" "(d.get('operation') or {}).get('location')")"
  [[ "$sp" == file:* ]] || fail "stop-with-savepoint: $st"
  log "savepoint $sp"

  id2="$(newid)"
  post "$api/jars/$tjar/run" "{\"entryClass\":\"dev.weir.testjob.CounterJob\",\"programArgsList\":[\"--name\",\"verify-counter\"],\"parallelism\":2,\"jobId\":\"$id2\",\"savepointPath\":\"$sp\",\"allowNonRestoredState\":false}"
  [[ "$code" == 200 ]] || fail "resubmit: HTTP $code $body"
  wait_running "$port" "$id2"
  cp="$(curl -fsS "$api/jobs/$id2/checkpoints")"
  [[ "$(jget "$cp" "d['latest']['restored']['is_savepoint']")" == true &&
    "$(jget "$cp" "d['latest']['restored']['external_path']")" == "$sp" ]] || fail "restore not visible: $cp"
  log "resubmitted as $id2, restored from the savepoint"

  wait_checkpoint "$port" "$id2"
  curl -fsS -X PATCH "$api/jobs/$id2?mode=cancel" >/dev/null
  for _ in $(seq 1 30); do
    [[ "$(jget "$(curl -fsS "$api/jobs/$id2")" "d['state']")" == CANCELED ]] && break
    sleep 0.5
  done
  cp="$(curl -fsS "$api/jobs/$id2/checkpoints")"
  local retained
  retained="$(jget "$cp" "d['latest']['completed']['external_path']")"
  [[ -e "${retained#file:}/_metadata" ]] || fail "retained checkpoint missing after cancel: $retained"
  log "canceled; retained checkpoint $retained"

  # SQL: two INSERTs must become one job.
  sqlid="$(newid)"
  b64="$(base64 -w0 <<'SQL'
-- two sinks, one job; a ';' in a comment or 'string;' must not split
SET 'pipeline.name' = 'sql-test';
CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '5');
CREATE TABLE sink1 (id BIGINT) WITH ('connector' = 'blackhole');
CREATE TABLE sink2 (id BIGINT, s STRING) WITH ('connector' = 'blackhole');
INSERT INTO sink1 SELECT id FROM src;
INSERT INTO sink2 SELECT id, 'a;b' FROM src;
SQL
)"
  local before after
  before="$(jget "$(curl -fsS "$api/jobs/overview")" "len(d['jobs'])")"
  post "$api/jars/$sjar/run" "{\"entryClass\":\"dev.weir.sqlrunner.SqlRunner\",\"programArgsList\":[\"--sql-base64\",\"$b64\"],\"parallelism\":2,\"jobId\":\"$sqlid\"}"
  [[ "$code" == 200 ]] || fail "sql run: HTTP $code $body"
  wait_running "$port" "$sqlid"
  after="$(jget "$(curl -fsS "$api/jobs/overview")" "len(d['jobs'])")"
  ((after == before + 1)) || fail "SQL script made $((after - before)) jobs, want 1"
  [[ "$(jget "$(curl -fsS "$api/jobs/$sqlid")" "d['name']")" == sql-test ]] || fail "SET 'pipeline.name' not applied"
  curl -fsS -X PATCH "$api/jobs/$sqlid?mode=cancel" >/dev/null
  log "SQL script ran as one job $sqlid"

  b64="$(printf "CREATE TABLE src (id BIGINT) WITH ('connector' = 'datagen');\nSELECT 1;\n" | base64 -w0)"
  post "$api/jars/$sjar/run" "{\"entryClass\":\"dev.weir.sqlrunner.SqlRunner\",\"programArgsList\":[\"--sql-base64\",\"$b64\"],\"jobId\":\"$(newid)\"}"
  [[ "$code" == 400 ]] || fail "SELECT script: want HTTP 400, got $code"
  [[ "$(jget "$body" "'statement #2 (line 2): SELECT 1' in d['errors'][0]")" == true ]] || fail "SELECT error text: $body"
  log "SELECT script rejected with HTTP 400 naming statement #2"
  log "OK"
}

mkdir -p "$base"
pids=()
for spec in "${specs[@]}"; do
  IFS=: read -r version port rpc <<<"$spec"
  "$here/build-java.sh" "$version" "$base/jars-$version" >/dev/null
done
# Start all clusters in parallel: the point is that they coexist.
for spec in "${specs[@]}"; do
  IFS=: read -r version port rpc <<<"$spec"
  "$here/flink.sh" start "$version" "$base/verify-$version" "$port" "$rpc" >/dev/null &
  pids+=("$!")
done
rc=0
for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
cleanup() {
  if [[ "${WEIR_VERIFY_KEEP:-0}" != 1 ]]; then
    for spec in "${specs[@]}"; do
      IFS=: read -r version _ _ <<<"$spec"
      "$here/flink.sh" stop "$base/verify-$version"
    done
  fi
}
trap cleanup EXIT
((rc == 0)) || fail "a cluster did not start"
for spec in "${specs[@]}"; do
  IFS=: read -r version port rpc <<<"$spec"
  verify_version "$version" "$port" "$base/verify-$version" "$base/jars-$version"
done
tag="" log "all versions OK: ${specs[*]}"
