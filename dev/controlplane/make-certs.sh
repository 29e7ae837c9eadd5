#!/usr/bin/env bash
# Writes the control plane's PKI into $1: a cluster CA (serving + client auth), the API server's serving
# certificate, client certificates for the admin and the controller manager, the front proxy CA and client
# (for aggregated APIs), and the ServiceAccount token signing key. EC P-256 keys: fast to make, accepted everywhere.
# Given a node name and address ($2, $3) it also writes what a one-node cluster needs: the address among the API
# server's SANs, client certificates for the scheduler, kube-proxy, the kubelet (O=system:nodes) and the API server
# calling kubelets, and the kubelet's serving certificate, all from the same CA.
set -euo pipefail
dir=$1
node=${2:-}
node_ip=${3:-}
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
ca() {
  key "$1"
  openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 30 -out "$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
leaf() { # name ca subject extensions
  key "$1"
  openssl req -new -key "$1.key" -subj "$3" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 30 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
ca ca "service-ca-functions test cluster CA"
ca front-proxy-ca "service-ca-functions test front proxy CA"
client='keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
leaf apiserver ca "/CN=kube-apiserver" \
  "$(printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1%s' "${node_ip:+,IP:$node_ip}")"
leaf admin ca "/O=system:masters/CN=admin" "$(printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth')"
leaf controller-manager ca "/CN=system:kube-controller-manager" \
  "$(printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth')"
leaf front-proxy-client front-proxy-ca "/CN=front-proxy-client" \
  "$(printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth')"
if [ -n "$node" ]; then
  leaf scheduler ca "/CN=system:kube-scheduler" "$client"
  leaf kube-proxy ca "/CN=system:kube-proxy" "$client"
  leaf kubelet-client ca "/O=system:nodes/CN=system:node:$node" "$client"
  leaf apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
  leaf kubelet-serving ca "/O=system:nodes/CN=system:node:$node" \
    "$(printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:%s,DNS:%s' "$node_ip" "$node")"
fi
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
openssl pkey -in sa.key -pubout -out sa.pub
