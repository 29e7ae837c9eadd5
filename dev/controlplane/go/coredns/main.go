// Command coredns is CoreDNS with only the plugins the test cluster's DNS needs: the cluster.local zone from the
// kubernetes plugin, health and readiness, errors, log and cache. It has no forward plugin, so no query can
// leave the machine.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// The order is CoreDNS's own (core/dnsserver/zdirectives.go), restricted to the plugins linked in.
	dnsserver.Directives = []string{"ready", "health", "errors", "log", "cache", "kubernetes"}
}

func main() { coremain.Run() }
