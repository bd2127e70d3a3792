package c2s

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/leadflow/leadflow/pkg/clients/httpx"
)

// withTokenCounter makes the caller count calls C2S (directly or through the
// gateway, which forwards the token) refused with 401/403, on the one
// counter the rules page on.
func withTokenCounter(o httpx.Options) httpx.Options {
	if o.Unauthorized == nil {
		o.Unauthorized = httpx.RegisterCounter(o.Registerer, prometheus.CounterOpts{
			Name: "leadflow_c2s_token_invalid_total",
			Help: "ALERT: C2S calls (direct or gateway) refused for the token (401/403).",
		})
	}
	return o
}
