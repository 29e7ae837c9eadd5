//go:build tools

// Package knativeserving pins Knative Serving's admission webhook, run as a pod on the one-node cluster so the
// default manifests (infra/) are admitted by Serving's own validation and defaulting. Its own module, so the
// Eventing module's go.sum (the cache key of its already built binaries) does not change.
package knativeserving

import (
	_ "knative.dev/serving/cmd/webhook"
)
