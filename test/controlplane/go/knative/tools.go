//go:build tools

// Package knative pins Knative Eventing's own source adapters, run out of cluster as the local event sources.
package knative

import (
	_ "knative.dev/eventing/cmd/apiserver_receive_adapter"
	_ "knative.dev/eventing/cmd/mtping"
)
