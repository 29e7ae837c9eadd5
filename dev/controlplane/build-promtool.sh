#!/usr/bin/env bash
# Builds promtool from the Prometheus Go module pinned in go/prometheus, for checking and unit-testing the
# alerting rules in infra/monitoring/. Cached under a key of that module's go.mod/go.sum, as
# build-binaries.sh caches the control plane, so a second run builds nothing. Prints promtool's path last.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PATH="/usr/local/go/bin:$PATH" CGO_ENABLED=0 GOFLAGS=-mod=mod
cache=${SERVICE_CA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/service-ca-functions}
# One build at a time per cache: two at once (a test run beside a warm-up) raced on the same temporary file.
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock -n 9 || { echo "another build is using $cache; waiting for it" >&2; flock 9; }
mod="$here/go/prometheus"
version=$(grep -o "github.com/prometheus/prometheus v[^ ]*" "$mod/go.mod" | cut -d" " -f2)
out="$cache/prometheus-$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -c1-16)"
if [ ! -x "$out/promtool" ]; then
  command -v go >/dev/null || { echo "go is required to build promtool" >&2; exit 1; }
  echo "building promtool from github.com/prometheus/prometheus $version (first run only; cached in $out)" >&2
  start=$(date +%s)
  mkdir -p "$out"
  (cd "$mod" && go build -trimpath -ldflags "-s -w -X github.com/prometheus/common/version.Version=$version" \
    -o "$out/.promtool.tmp" github.com/prometheus/prometheus/cmd/promtool)
  mv "$out/.promtool.tmp" "$out/promtool"
  echo "built in $(( $(date +%s) - start ))s" >&2
fi
echo "$out/promtool"
