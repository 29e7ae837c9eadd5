#!/usr/bin/env bash
# Builds the development cluster's programs from their upstream Go modules: etcd 3.5; kube-apiserver,
# kube-controller-manager, kubectl, kubelet, kube-proxy and kube-scheduler 1.34; Knative Eventing's controller,
# webhook and ApiServerSource/PingSource adapters; CoreDNS with the kubernetes plugin and no forwarding.
# With --node it also builds what only the one-node cluster needs (node components, Knative Eventing's controller
# and webhook, Knative Serving's webhook, CoreDNS); without it, only what the local system runs.
# Each module's binaries are cached under a key of its go.mod/go.sum, so a second run builds nothing.
# Prints the bin directory (holding links to every binary) on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PATH="/usr/local/go/bin:$PATH" CGO_ENABLED=0 GOFLAGS=-mod=mod
cache=${SERVICE_CA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/service-ca-functions}
k8s_version=v1.34.3
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"

# module-dir  binary  package  ldflags
targets=(
  "etcd etcd go.etcd.io/etcd/server/v3 -s -w"
  "kubernetes kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver $k8s_ldflags"
  "kubernetes kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager $k8s_ldflags"
  "kubernetes kubectl k8s.io/kubernetes/cmd/kubectl $k8s_ldflags"
  "knative apiserver_receive_adapter knative.dev/eventing/cmd/apiserver_receive_adapter -s -w"
  "knative mtping knative.dev/eventing/cmd/mtping -s -w"
)
node_targets=(
  "kubernetes kubelet k8s.io/kubernetes/cmd/kubelet $k8s_ldflags"
  "kubernetes kube-proxy k8s.io/kubernetes/cmd/kube-proxy $k8s_ldflags"
  "kubernetes kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler $k8s_ldflags"
  "knative controller knative.dev/eventing/cmd/controller -s -w"
  "knative webhook knative.dev/eventing/cmd/webhook -s -w"
  "knative-serving serving-webhook knative.dev/serving/cmd/webhook -s -w"
  "coredns coredns servicecafunctions.local/controlplane/coredns -s -w"
)
[ "${1:-}" = --node ] && targets+=("${node_targets[@]}")

# One build at a time per cache: two at once (a test run beside a warm-up) raced on the same temporary file.
mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock -n 9 || { echo "another build is using $cache; waiting for it" >&2; flock 9; }
start=$(date +%s)
built=0
links="$cache/bin-$(cat "$here"/go/*/go.sum "$0" | sha256sum | cut -c1-12)"
mkdir -p "$links"
for t in "${targets[@]}"; do
  read -r mod bin pkg ldflags <<<"$t"
  key=$(cat "$here/go/$mod/go.mod" "$here/go/$mod/go.sum" | sha256sum | cut -c1-16)
  out="$cache/$mod-$key"
  if [ ! -x "$out/$bin" ]; then
    command -v go >/dev/null || { echo "go is required to build $bin" >&2; exit 1; }
    echo "building $bin from $pkg (first run only; cached in $out)" >&2
    mkdir -p "$out"
    (cd "$here/go/$mod" && go build -trimpath -ldflags "$ldflags" -o "$out/.$bin.tmp" "$pkg")
    mv "$out/.$bin.tmp" "$out/$bin"
    built=1
  fi
  ln -sfn "$out/$bin" "$links/$bin"
done
[ "$built" = 0 ] || echo "built in $(( $(date +%s) - start ))s" >&2
echo "$links"
