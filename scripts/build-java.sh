#!/usr/bin/env bash
# Compile weir's two helper programs against a given Flink version:
#
#   scripts/build-java.sh VERSION OUTDIR
#
# writes OUTDIR/weir-sql-runner.jar (dev.weir.sqlrunner.SqlRunner, the program
# weir submits for SQL deployments), OUTDIR/weir-test-job.jar
# (dev.weir.testjob.CounterJob, a small stateful job for tests), and two jars
# that tests ship as job dependencies: OUTDIR/weir-test-udf.jar (a scalar
# function) and OUTDIR/weir-test-connector.jar (a table connector registered in
# META-INF/services). A module's src/main/resources is copied into its jar.
#
# No Maven/Gradle: the machines only reach package registries, and Flink's own
# jars (fetched by scripts/flink.sh from PyPI) are the whole classpath. The jars
# contain only our classes; Flink provides everything else at runtime.
# A jar is rebuilt only when a source file is newer than it (cheap to call from
# every test run). Prints OUTDIR (absolute) as its last stdout line.
set -euo pipefail

log() { printf '[build-java.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $# -eq 2 ]] || die "usage: build-java.sh VERSION OUTDIR"
version="$1"
mkdir -p "$2"
outdir="$(cd "$2" && pwd -P)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
java_root="$(cd "$here/../java" && pwd -P)"

flink_home="$("$here/flink.sh" fetch "$version" | tail -n 1)"
[[ -d "$flink_home/lib" ]] || die "flink.sh fetch $version gave no lib/ dir ($flink_home)"

javac_bin=javac
jar_bin=jar
if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/javac" ]]; then
  javac_bin="$JAVA_HOME/bin/javac"
  jar_bin="$JAVA_HOME/bin/jar"
fi

# build MODULE JARNAME [MAIN_CLASS]
build() {
  local module="$1" jar_name="$2" main_class="${3:-}"
  local src="$java_root/$module/src/main/java" jar="$outdir/$jar_name"
  local resources="$java_root/$module/src/main/resources"
  [[ -d "$src" ]] || die "missing sources: $src"
  # Up to date if the jar exists, no source (or this script) is newer, and it
  # was built against the same Flink version (recorded next to the jar).
  if [[ -f "$jar" && "$(cat "$jar.flink-version" 2>/dev/null || true)" == "$version" ]] &&
    [[ -z "$(find "$src" "${BASH_SOURCE[0]}" $([[ -d "$resources" ]] && echo "$resources") -newer "$jar" -print -quit)" ]]; then
    log "$jar_name is up to date"
    return 0
  fi
  local tmp
  tmp="$(mktemp -d "$outdir/.build-$module.XXXXXX")"
  local sources=()
  while IFS= read -r -d '' f; do sources+=("$f"); done < <(find "$src" -name '*.java' -print0 | sort -z)
  ((${#sources[@]} > 0)) || die "no .java files under $src"
  log "compiling $module against Flink $version"
  # --release 17: bytecode that runs on any Java 17+ TaskManager. -Xlint
  # without deprecation noise (some APIs are deprecated in one version only).
  if ! "$javac_bin" --release 17 -encoding UTF-8 -nowarn -Xlint:-options \
    -cp "$flink_home/lib/*" -d "$tmp/classes" "${sources[@]}" >&2; then
    rm -rf "$tmp"
    die "javac failed for $module"
  fi
  # Build under a temp name and rename: concurrent test processes never see a
  # half-written jar.
  if [[ -d "$resources" ]]; then
    cp -R "$resources/." "$tmp/classes/"
  fi
  local main=()
  [[ -n "$main_class" ]] && main=(--main-class "$main_class")
  "$jar_bin" --create --file "$tmp/$jar_name" "${main[@]}" -C "$tmp/classes" .
  mv -f "$tmp/$jar_name" "$jar"
  printf '%s\n' "$version" >"$jar.flink-version"
  rm -rf "$tmp"
  log "wrote $jar"
}

# Serialize builds into the same OUTDIR (parallel tests).
exec 9>"$outdir/.build.lock"
flock 9
build sql-runner weir-sql-runner.jar dev.weir.sqlrunner.SqlRunner
build test-job weir-test-job.jar dev.weir.testjob.CounterJob
build test-udf weir-test-udf.jar
build test-connector weir-test-connector.jar
printf '%s\n' "$outdir"
