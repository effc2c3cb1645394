#!/usr/bin/env bash
# Run real Apache Flink session clusters on this machine, without a Flink
# download site: Flink's runtime jars come from the PyPI package
# `apache-flink-libraries` (the only registry reachable here).
#
#   scripts/flink.sh fetch VERSION
#       Ensure Java 17, download + unpack Flink VERSION into the cache and print
#       FLINK_HOME (last stdout line). Cached: never downloads twice.
#   scripts/flink.sh start VERSION WORKDIR REST_PORT RPC_PORT [SLOTS]
#       Write WORKDIR/conf/config.yaml, start one JobManager + one TaskManager
#       in the background (logs in WORKDIR/log, pids in WORKDIR/{jm,tm}.pid) and
#       wait until the REST API reports a TaskManager with free slots.
#   scripts/flink.sh stop WORKDIR
#       Stop both processes (TERM, then KILL). Idempotent.
#   scripts/flink.sh status WORKDIR
#       Exit 0 if both processes of WORKDIR are alive.
#
# Default versions (newest of each line on PyPI when this was written; checked
# with `pip index versions apache-flink-libraries`): 2.3.0 and 1.20.5.
#
# Environment overrides:
#   WEIR_CACHE                 cache root (default $HOME/.cache/weir)
#   WEIR_FLINK_VERSION         default VERSION when the argument is "" or "default"
#   WEIR_FLINK_JM_MEMORY       jobmanager.memory.process.size   (default 1024m)
#   WEIR_FLINK_TM_MEMORY       taskmanager.memory.process.size  (default 2048m)
#   WEIR_FLINK_SLOTS           taskmanager.numberOfTaskSlots    (default 16)
#   WEIR_FLINK_START_TIMEOUT   seconds to wait for readiness    (default 90)
#   WEIR_FLINK_START_ATTEMPTS  starts tried before giving up     (default 2)
#   WEIR_FLINK_JM_LOG_TIMEOUT  seconds a starting JobManager may go without writing its
#                              log before it counts as hung      (default 45)
#   WEIR_FLINK_SCHEDULER       jobmanager.scheduler (e.g. "adaptive"; default: Flink's)
#   WEIR_FLINK_EXTRA_CONF      extra YAML lines appended to config.yaml
#   JAVA_HOME                  use $JAVA_HOME/bin/java instead of `java` on PATH
#   PIP                        pip command (default: python3 -m pip)
set -euo pipefail

readonly DEFAULT_FLINK_VERSION_2="2.3.0"
readonly DEFAULT_FLINK_VERSION_1="1.20.5"

log() { printf '[flink.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cache_root() { printf '%s\n' "${WEIR_CACHE:-$HOME/.cache/weir}"; }

resolve_version() {
  local v="${1:-}"
  if [[ -z "$v" || "$v" == "default" ]]; then
    v="${WEIR_FLINK_VERSION:-$DEFAULT_FLINK_VERSION_2}"
  fi
  # Guard against path tricks: the version becomes a directory name.
  [[ "$v" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "bad Flink version '$v' (want e.g. $DEFAULT_FLINK_VERSION_2 or $DEFAULT_FLINK_VERSION_1)"
  printf '%s\n' "$v"
}

# apt-get only as a fallback: the machines we target are Debian and we run as
# root there; elsewhere the tool must already be installed.
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "need $* but apt-get is not available; install it manually"
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then sudo=(sudo); fi
  log "installing $* with apt-get"
  # Serialize: parallel test processes could otherwise race on the dpkg lock.
  (
    flock 9
    "${sudo[@]}" apt-get update >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y "$@" >&2
  ) 9>"/tmp/weir-apt.lock"
}

java_bin() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    printf '%s\n' "$JAVA_HOME/bin/java"
  else
    command -v java
  fi
}

ensure_java() {
  # javac is needed by build-java.sh, so a JRE alone is not enough.
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" && -x "$JAVA_HOME/bin/javac" ]]; then
    return 0
  fi
  if ! command -v java >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
    apt_install openjdk-17-jdk-headless
  fi
  command -v javac >/dev/null 2>&1 || die "javac still missing after installing openjdk-17-jdk-headless"
}

ensure_curl() {
  command -v curl >/dev/null 2>&1 || apt_install curl
}

ensure_python() {
  command -v python3 >/dev/null 2>&1 || apt_install python3 python3-pip
}

ensure_pip() {
  ensure_python
  # Only the default pip command can be checked/installed; a custom $PIP is trusted.
  if [[ -z "${PIP:-}" ]] && ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
  fi
}

# ---------------------------------------------------------------- fetch

# Unpack lib/ opt/ bin/ from the downloaded distribution. 2.x ships a wheel
# (pyflink/{lib,opt,bin}), 1.x an sdist (apache_flink_libraries-V/deps/{lib,opt,bin});
# python3 handles both archive types without needing unzip.
extract_dist() {
  local archive="$1" dest="$2"
  python3 - "$archive" "$dest" <<'PY'
import os, re, shutil, sys, tarfile, zipfile
archive, dest = sys.argv[1], sys.argv[2]
# Map an archive member path to lib/..., opt/... or bin/... (or None).
pat = re.compile(r'^(?:pyflink|[^/]+/deps)/(lib|opt|bin)/(.+)$')
def target(name):
    m = pat.match(name)
    if not m or m.group(2).endswith('/'):
        return None
    rel = os.path.normpath(os.path.join(m.group(1), m.group(2)))
    if rel.startswith('..') or os.path.isabs(rel):
        return None
    return os.path.join(dest, rel)
count = 0
if archive.endswith('.whl') or archive.endswith('.zip'):
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            out = target(info.filename)
            if out is None or info.is_dir():
                continue
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(info) as src, open(out, 'wb') as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            count += 1
else:
    with tarfile.open(archive) as t:
        for m in t:
            out = target(m.name)
            if out is None or not m.isfile():
                continue
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with t.extractfile(m) as src, open(out, 'wb') as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            count += 1
if count == 0:
    sys.exit('no lib/opt/bin entries found in ' + archive)
print(f'extracted {count} files', file=sys.stderr)
PY
}

cmd_fetch() {
  local version home parent marker
  version="$(resolve_version "${1:-}")"
  ensure_java
  parent="$(cache_root)/flink"
  home="$parent/$version"
  marker="$home/.weir-complete"
  if [[ -f "$marker" ]]; then
    printf '%s\n' "$home"
    return 0
  fi
  mkdir -p "$parent"
  # Tests may fetch the same version concurrently: one downloads, the others
  # wait on the lock and then see the marker.
  exec 8>"$parent/$version.lock"
  flock 8
  if [[ ! -f "$marker" ]]; then
    ensure_pip
    local tmp pip_cmd archive
    tmp="$(mktemp -d "$parent/.download-$version.XXXXXX")"
    # shellcheck disable=SC2064  # expand $tmp now, the variable is local
    trap "rm -rf '$tmp'" EXIT
    read -r -a pip_cmd <<<"${PIP:-python3 -m pip}"
    log "downloading apache-flink-libraries==$version from PyPI (~330 MB)"
    # --no-deps: we only want the archive; --no-cache-dir: our cache is enough,
    # no second copy in ~/.cache/pip. (No --no-build-isolation: 1.x is an
    # sdist and pip needs setuptools+wheel in its isolated env for its metadata.)
    "${pip_cmd[@]}" download --no-deps --no-cache-dir --disable-pip-version-check \
      --progress-bar off -d "$tmp/dl" "apache-flink-libraries==$version" >&2
    archive="$(find "$tmp/dl" -maxdepth 1 -type f \( -name '*.whl' -o -name '*.tar.gz' -o -name '*.zip' \) | head -n1)"
    [[ -n "$archive" ]] || die "pip download produced no archive for $version"
    log "extracting $(basename "$archive")"
    extract_dist "$archive" "$tmp/home"
    compgen -G "$tmp/home/lib/flink-dist*.jar" >/dev/null || die "no lib/flink-dist*.jar in $archive"
    [[ -f "$tmp/home/bin/bash-java-utils.jar" ]] || die "no bin/bash-java-utils.jar in $archive"
    rm -rf "$home"
    mv "$tmp/home" "$home"
    printf '%s\n' "$version" >"$marker"
    rm -rf "$tmp"
    trap - EXIT
  fi
  flock -u 8
  exec 8>&-
  printf '%s\n' "$home"
}

# ---------------------------------------------------------------- start

# Java 17 refuses Flink's reflective access without these; the list is the
# `env.java.opts.all` default of the config.yaml Flink ships (absent from the
# PyPI distribution). Without it every job submission fails with
# InaccessibleObjectException.
JVM_OPENS=(
  -XX:+IgnoreUnrecognizedVMOptions
  --add-exports=java.base/sun.net.util=ALL-UNNAMED
  --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
  --add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED
  --add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
  --add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED
  --add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED
  --add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED
  --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED
  --add-opens=java.base/java.lang=ALL-UNNAMED
  --add-opens=java.base/java.net=ALL-UNNAMED
  --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens=java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens=java.base/java.text=ALL-UNNAMED
  --add-opens=java.base/java.time=ALL-UNNAMED
  --add-opens=java.base/java.util=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED
)

write_config() {
  local version="$1" workdir="$2" rest_port="$3" rpc_port="$4" slots="$5"
  mkdir -p "$workdir/conf" "$workdir/log" "$workdir/tmp" "$workdir/uploads" \
    "$workdir/checkpoints" "$workdir/savepoints" "$workdir/blobs" "$workdir/plugins"
  cat >"$workdir/conf/config.yaml" <<EOF
# Generated by scripts/flink.sh for Flink $version. Everything binds to
# 127.0.0.1; only REST and JobManager RPC get fixed ports, every other port is
# 0 (ephemeral) so several clusters can run side by side.
jobmanager.rpc.address: 127.0.0.1
jobmanager.rpc.port: $rpc_port
jobmanager.bind-host: 127.0.0.1
jobmanager.memory.process.size: ${WEIR_FLINK_JM_MEMORY:-1024m}
taskmanager.host: 127.0.0.1
taskmanager.bind-host: 127.0.0.1
taskmanager.rpc.port: "0"
taskmanager.data.port: 0
taskmanager.memory.process.size: ${WEIR_FLINK_TM_MEMORY:-2048m}
taskmanager.numberOfTaskSlots: $slots
parallelism.default: 1
blob.server.port: "0"
metrics.internal.query-service.port: "0"
rest.address: 127.0.0.1
rest.bind-address: 127.0.0.1
rest.port: $rest_port
high-availability.type: NONE
# Keep uploaded jars, blobs and temp files inside WORKDIR (not /tmp) so that
# clusters do not share or leak state and 'stop' + rm -rf WORKDIR cleans up.
web.upload.dir: $workdir/uploads
blob.storage.directory: $workdir/blobs
io.tmp.dirs: $workdir/tmp
# New key names (1.20 and 2.x both know them; state.checkpoints.dir and
# state.savepoints.dir are deprecated aliases). With a directory set and no
# explicit storage, checkpoints go to the file system.
execution.checkpointing.dir: file://$workdir/checkpoints
execution.checkpointing.savepoint-dir: file://$workdir/savepoints
# Finished/canceled/failed jobs stay queryable (GET /jobs/{id}, /checkpoints)
# for a day instead of the default hour.
jobstore.expiration-time: 86400
EOF
  if [[ -n "${WEIR_FLINK_SCHEDULER:-}" ]]; then
    printf 'jobmanager.scheduler: %s\n' "$WEIR_FLINK_SCHEDULER" >>"$workdir/conf/config.yaml"
  fi
  if [[ -n "${WEIR_FLINK_EXTRA_CONF:-}" ]]; then
    printf '%s\n' "$WEIR_FLINK_EXTRA_CONF" >>"$workdir/conf/config.yaml"
  fi
  # The PyPI distribution ships no log4j config; without one Flink logs only
  # errors to stdout and the REST log endpoints are empty.
  cat >"$workdir/conf/log4j.properties" <<'EOF'
monitorInterval = 0
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = MainAppender
logger.pekko.name = org.apache.pekko
logger.pekko.level = INFO
logger.akka.name = akka
logger.akka.level = INFO
logger.netty.name = org.jboss.netty.channel.DefaultChannelPipeline
logger.netty.level = OFF
logger.zookeeper.name = org.apache.zookeeper
logger.zookeeper.level = WARN
appender.main.name = MainAppender
appender.main.type = File
appender.main.append = true
appender.main.fileName = ${sys:log.file}
appender.main.layout.type = PatternLayout
appender.main.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
EOF
}

# BashJavaUtils derives the JVM memory flags (line 1) and the `-D k=v` dynamic
# properties (line 2) from config.yaml, exactly like Flink's own shell scripts.
# The TaskManager refuses to start without the dynamic properties.
bash_java_utils() {
  local home="$1" conf="$2" what="$3" java out
  java="$(java_bin)"
  out="$("$java" -Xmx128m -cp "$home/bin/bash-java-utils.jar:$home/lib/*" \
    org.apache.flink.runtime.util.bash.BashJavaUtils "$what" --configDir "$conf" 2>&1)" ||
    die "BashJavaUtils $what failed: $out"
  printf '%s\n' "$out" | sed -n 's/^BASH_JAVA_UTILS_EXEC_RESULT://p' | tail -n 2
}

# True if the pid in FILE is alive and is a process of this WORKDIR (guards
# against pid reuse after a reboot or a crash).
pid_alive() {
  local file="$1" workdir="$2" pid
  [[ -f "$file" ]] || return 1
  pid="$(cat "$file" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--configDir $workdir/conf" || return 1
}

# GET /overview; prints "taskmanagers slots-available" or fails.
rest_overview() {
  local port="$1" body
  body="$(curl --noproxy '*' -fsS --max-time 3 "http://127.0.0.1:$port/overview" 2>/dev/null)" || return 1
  python3 -c 'import json,sys; o=json.loads(sys.argv[1]); print(o.get("taskmanagers",0), o.get("slots-available",0))' "$body"
}

launch() {
  # setsid + </dev/null + file redirects: the JVMs must not keep the caller's
  # stdin/stdout/stderr pipes open (a test harness reading our output would
  # otherwise hang until the cluster stops) and must survive our exit.
  local dir="$1" out="$2" pidfile="$3"
  shift 3
  # cd: Flink resolves relative defaults (e.g. the "plugins" dir) against the
  # working directory; keep that inside WORKDIR. exec keeps $! == the JVM pid.
  (cd "$dir" && exec setsid "$@" </dev/null >"$out" 2>&1) &
  printf '%s\n' "$!" >"$pidfile"
}

show_logs() {
  local workdir="$1" f
  for f in "$workdir"/log/*; do
    [[ -f "$f" ]] || continue
    log "----- tail of $f"
    tail -n 40 "$f" >&2 || true
  done
}

cmd_start() {
  [[ $# -ge 4 ]] || die "usage: flink.sh start VERSION WORKDIR REST_PORT RPC_PORT [SLOTS]"
  local version workdir rest_port rpc_port slots home conf java
  version="$(resolve_version "$1")"
  mkdir -p "$2"
  workdir="$(cd "$2" && pwd -P)"
  rest_port="$3"
  rpc_port="$4"
  slots="${5:-${WEIR_FLINK_SLOTS:-16}}"
  [[ "$rest_port" =~ ^[0-9]+$ && "$rpc_port" =~ ^[0-9]+$ && "$slots" =~ ^[0-9]+$ ]] || die "ports and slots must be numbers"
  ensure_curl
  ensure_python
  home="$(cmd_fetch "$version" | tail -n 1)"
  conf="$workdir/conf"
  java="$(java_bin)"

  if pid_alive "$workdir/jm.pid" "$workdir" && pid_alive "$workdir/tm.pid" "$workdir" &&
    rest_overview "$rest_port" >/dev/null; then
    log "cluster in $workdir already running (rest port $rest_port)"
    printf 'http://127.0.0.1:%s\n' "$rest_port"
    return 0
  fi
  # Half-dead leftovers from an earlier run would hold the ports.
  cmd_stop "$workdir" >/dev/null
  if curl --noproxy '*' -sS --max-time 2 -o /dev/null "http://127.0.0.1:$rest_port/" 2>/dev/null; then
    die "something else already listens on 127.0.0.1:$rest_port"
  fi

  write_config "$version" "$workdir" "$rest_port" "$rpc_port" "$slots"
  # A JobManager once hung at startup without writing a line (under a heavy parallel compile;
  # its rerun started in 15 s): a failed start is tried again, loudly, before giving up.
  local attempts="${WEIR_FLINK_START_ATTEMPTS:-2}" attempt
  for ((attempt = 1; attempt <= attempts; attempt++)); do
    if start_once "$version" "$workdir" "$rest_port" "$slots" "$home" "$conf" "$java"; then
      return 0
    fi
    if ((attempt < attempts)); then
      log "starting Flink $version in $workdir failed (attempt $attempt of $attempts); starting it again"
    fi
  done
  die "Flink $version in $workdir did not start in $attempts attempts (logs above)"
}

# One start of the JobManager and TaskManager; waits for readiness and prints the REST URL.
# On failure: shows the logs, stops what it started and returns 1.
start_once() {
  local version="$1" workdir="$2" rest_port="$3" slots="$4" home="$5" conf="$6" java="$7"
  # The JobManager's log may hold an earlier run's lines (its file is appended to).
  local jm_log="$workdir/log/jobmanager.log" jm_log_size
  jm_log_size="$(stat -c %s "$jm_log" 2>/dev/null || echo 0)"
  local start_ts=$SECONDS
  local jm_params tm_params jm_jvm jm_dyn tm_jvm tm_dyn
  jm_params="$(bash_java_utils "$home" "$conf" GET_JM_RESOURCE_PARAMS)"
  tm_params="$(bash_java_utils "$home" "$conf" GET_TM_RESOURCE_PARAMS)"
  read -r -a jm_jvm <<<"$(sed -n 1p <<<"$jm_params")"
  read -r -a jm_dyn <<<"$(sed -n 2p <<<"$jm_params")"
  read -r -a tm_jvm <<<"$(sed -n 1p <<<"$tm_params")"
  read -r -a tm_dyn <<<"$(sed -n 2p <<<"$tm_params")"
  ((${#tm_dyn[@]} > 0)) || die "BashJavaUtils gave no TaskManager dynamic properties"

  local common=("${JVM_OPENS[@]}" "-Dlog4j.configurationFile=file:$conf/log4j.properties"
    "-Dlog4j2.formatMsgNoLookups=true")
  log "starting Flink $version JobManager (rest 127.0.0.1:$rest_port, rpc $rpc_port) in $workdir"
  launch "$workdir" "$workdir/log/jobmanager.out" "$workdir/jm.pid" \
    "$java" "${jm_jvm[@]}" "${common[@]}" "-Dlog.file=$workdir/log/jobmanager.log" \
    -cp "$home/lib/*" org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint \
    --configDir "$conf" "${jm_dyn[@]}"
  log "starting TaskManager ($slots slots)"
  launch "$workdir" "$workdir/log/taskmanager.out" "$workdir/tm.pid" \
    "$java" "${tm_jvm[@]}" "${common[@]}" "-Dlog.file=$workdir/log/taskmanager.log" \
    -cp "$home/lib/*" org.apache.flink.runtime.taskexecutor.TaskManagerRunner \
    --configDir "$conf" "${tm_dyn[@]}"

  local timeout="${WEIR_FLINK_START_TIMEOUT:-90}" ov tms free
  while :; do
    if ov="$(rest_overview "$rest_port")"; then
      read -r tms free <<<"$ov"
      if ((tms >= 1 && free > 0)); then
        log "Flink $version ready after $((SECONDS - start_ts)) s: http://127.0.0.1:$rest_port ($tms TM, $free free slots)"
        printf 'http://127.0.0.1:%s\n' "$rest_port"
        return 0
      fi
    fi
    local failure=""
    if ! pid_alive "$workdir/jm.pid" "$workdir" || ! pid_alive "$workdir/tm.pid" "$workdir"; then
      failure="a Flink process in $workdir exited during startup"
    elif (("$(stat -c %s "$jm_log" 2>/dev/null || echo 0)" == jm_log_size)) &&
      ((SECONDS - start_ts >= ${WEIR_FLINK_JM_LOG_TIMEOUT:-45})); then
      failure="the JobManager in $workdir wrote no log in ${WEIR_FLINK_JM_LOG_TIMEOUT:-45}s (hung at startup)"
    elif ((SECONDS - start_ts >= timeout)); then
      failure="Flink $version in $workdir not ready after ${timeout}s"
    fi
    if [[ -n "$failure" ]]; then
      show_logs "$workdir"
      cmd_stop "$workdir" >/dev/null
      log "ERROR: $failure (logs above)"
      return 1
    fi
    sleep 1
  done
}

# ---------------------------------------------------------------- stop

cmd_stop() {
  [[ $# -ge 1 ]] || die "usage: flink.sh stop WORKDIR"
  local workdir="$1" f pid pids=()
  [[ -d "$workdir" ]] || return 0
  workdir="$(cd "$workdir" && pwd -P)"
  # TaskManager first so the JobManager does not log a lost TM and restart jobs.
  for f in "$workdir/tm.pid" "$workdir/jm.pid"; do
    if pid_alive "$f" "$workdir"; then
      pid="$(cat "$f")"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  local deadline=$((SECONDS + ${WEIR_FLINK_STOP_TIMEOUT:-15}))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "pid $pid ignored SIGTERM, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  done
  rm -f "$workdir/tm.pid" "$workdir/jm.pid"
  ((${#pids[@]} == 0)) || log "stopped Flink in $workdir"
}

cmd_status() {
  [[ $# -ge 1 ]] || die "usage: flink.sh status WORKDIR"
  local workdir
  workdir="$(cd "$1" 2>/dev/null && pwd -P)" || exit 1
  pid_alive "$workdir/jm.pid" "$workdir" && pid_alive "$workdir/tm.pid" "$workdir"
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    fetch) cmd_fetch "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    *) usage ;;
  esac
}

main "$@"
