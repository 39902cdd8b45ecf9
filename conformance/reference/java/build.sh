#!/usr/bin/env bash
# Builds the Java reference lab service (grpc-java, Maven) into one runnable jar,
# .tools/conformance/java/sb-lab-java.jar, with the launcher .tools/conformance/java/sb-lab-java.
# Idempotent: skips Maven when the stamp (sources, contract, toolchain) is unchanged.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=.tools/conformance/java
src=conformance/reference/java
mkdir -p "${out}"

stamp=$(
  {
    find "${src}" -type f \( -name '*.java' -o -name '*.proto' -o -name 'pom.xml' -o -name 'build.sh' \) -print0 |
      sort -z | xargs -0 sha256sum
    sha256sum proto/sessionbridge/conformance/v1/*.proto proto/sessionbridge/v1/options.proto
    java -version 2>&1
    mvn -v 2>/dev/null | sed -n 1p
  } | sha256sum | cut -d' ' -f1
)
if [[ -f "${out}/sb-lab-java.jar" && -x "${out}/sb-lab-java" && "$(cat "${out}/stamp" 2>/dev/null)" == "${stamp}" ]]; then
  exit 0
fi

mvn -q -B -Dstyle.color=never -f "${src}/pom.xml" package -DskipTests
cp "${out}/build/sb-lab-java.jar" "${out}/sb-lab-java.jar.tmp"
mv "${out}/sb-lab-java.jar.tmp" "${out}/sb-lab-java.jar"
cat >"${out}/sb-lab-java" <<'LAUNCHER'
#!/bin/sh
# Starts the Java lab service; arguments (for example --break never-expire) pass through.
exec java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k -jar "$(dirname "$0")/sb-lab-java.jar" "$@"
LAUNCHER
chmod +x "${out}/sb-lab-java"
echo "${stamp}" >"${out}/stamp"
