//go:build tools

// Package prometheus pins the promtool that checks and unit-tests infra/monitoring's alerting rules.
package prometheus

import _ "github.com/prometheus/prometheus/cmd/promtool"
