#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager and kubectl from their Go modules into a
# cache keyed by the wrapper modules' go.mod/go.sum, so a second run on the same machine builds nothing.
# Prints the bin directory on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
k8s_version=v1.34.3
key=$(cat "$here"/go/*/go.mod "$here"/go/*/go.sum "$0" | sha256sum | cut -c1-16)
cache=${SERVICE_CA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/service-ca-functions}
bin="$cache/controlplane-$key/bin"
want=(etcd kube-apiserver kube-controller-manager kubectl)
missing=()
for b in "${want[@]}"; do [ -x "$bin/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then echo "$bin"; exit 0; fi

command -v go >/dev/null || { echo "go is required to build the control plane" >&2; exit 1; }
mkdir -p "$bin"
start=$(date +%s)
export CGO_ENABLED=0 GOFLAGS=-mod=mod
for b in "${missing[@]}"; do
  echo "building $b (first run only; cached in $bin)" >&2
  case "$b" in
    etcd)
      (cd "$here/go/etcd" && go build -trimpath -o "$bin/.etcd.tmp" go.etcd.io/etcd/server/v3) ;;
    *)
      ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"
      (cd "$here/go/kubernetes" && go build -trimpath -ldflags "$ldflags" -o "$bin/.$b.tmp" "k8s.io/kubernetes/cmd/$b") ;;
  esac
  mv "$bin/.$b.tmp" "$bin/$b"
done
echo "control plane built in $(( $(date +%s) - start ))s" >&2
echo "$bin"
