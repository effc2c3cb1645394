#!/usr/bin/env bash
# Build the SQL runner jars embedded in the weir binary, reproducibly:
#
#   scripts/build-embedded-runner.sh [OUTDIR]     (default: assets/sql-runner)
#
# writes OUTDIR/weir-sql-runner-flink1.jar (compiled against Flink 1.20.5) and
# OUTDIR/weir-sql-runner-flink2.jar (against Flink 2.3.0) from java/sql-runner.
# weir picks one per cluster by its Flink major version when a repo has no
# `sqlRunner`. Same sources + same JDK major version = same bytes: javac output
# is deterministic, and the jar is written by Python's zipfile with sorted
# entries, a fixed timestamp, no compression and a fixed manifest (the `jar`
# tool would add the JDK build and the time). The integration test
# `embedded_runner_matches_sources` rebuilds and compares with the committed jars.
set -euo pipefail

log() { printf '[build-embedded-runner.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
root="$(cd "$here/.." && pwd -P)"
outdir="${1:-$root/assets/sql-runner}"
mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd -P)"
src="$root/java/sql-runner/src/main/java"

javac_bin=javac
if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/javac" ]]; then
  javac_bin="$JAVA_HOME/bin/javac"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for pair in "1 1.20.5" "2 2.3.0"; do
  set -- $pair
  major="$1" version="$2"
  flink_home="$("$here/flink.sh" fetch "$version" | tail -n 1)"
  classes="$tmp/classes-$major"
  mkdir -p "$classes"
  sources=()
  while IFS= read -r -d '' f; do sources+=("$f"); done < <(find "$src" -name '*.java' -print0 | sort -z)
  log "compiling the SQL runner against Flink $version"
  "$javac_bin" --release 17 -encoding UTF-8 -nowarn -Xlint:-options \
    -cp "$flink_home/lib/*" -d "$classes" "${sources[@]}" >&2 || die "javac failed"
  python3 - "$classes" "$outdir/weir-sql-runner-flink$major.jar" <<'PY'
import os, sys, zipfile
classes, out = sys.argv[1], sys.argv[2]
manifest = (b"Manifest-Version: 1.0\r\n"
            b"Main-Class: dev.weir.sqlrunner.SqlRunner\r\n"
            b"Created-By: weir scripts/build-embedded-runner.sh\r\n\r\n")
files = []
for d, _, names in os.walk(classes):
    for n in names:
        full = os.path.join(d, n)
        files.append((os.path.relpath(full, classes).replace(os.sep, "/"), full))
files.sort()
def entry(name):
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = (0o40755 if name.endswith("/") else 0o100644) << 16
    return info
tmp = out + ".tmp"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
    z.writestr(entry("META-INF/"), b"")
    z.writestr(entry("META-INF/MANIFEST.MF"), manifest)
    for name, full in files:
        with open(full, "rb") as f:
            z.writestr(entry(name), f.read())
os.replace(tmp, out)
PY
  log "wrote $outdir/weir-sql-runner-flink$major.jar"
done
printf '%s\n' "$outdir"
