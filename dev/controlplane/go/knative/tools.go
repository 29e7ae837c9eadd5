//go:build tools

// Package knative pins Knative Eventing's own programs: the source adapters (run out of cluster by the local
// system) and the controller and webhook (run as pods, with the adapters, on the one-node cluster).
package knative

import (
	_ "knative.dev/eventing/cmd/apiserver_receive_adapter"
	_ "knative.dev/eventing/cmd/controller"
	_ "knative.dev/eventing/cmd/mtping"
	_ "knative.dev/eventing/cmd/webhook"
)
