package eligibility

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

// PluginDuration observes every plugin call, like the scheduler's
// plugin_execution_duration_seconds. Labels: plugin, extension_point, status (Code).
var PluginDuration = metrics.NewHistogramVec(
	&metrics.HistogramOpts{
		Name:           "bgplb_eligibility_plugin_duration_seconds",
		Help:           "Duration of one eligibility plugin call, by plugin, extension point and status code.",
		Buckets:        metrics.ExponentialBuckets(0.000001, 2, 20),
		StabilityLevel: metrics.ALPHA,
	},
	[]string{"plugin", "extension_point", "status"},
)

var registerOnce sync.Once

// RegisterMetrics registers the package's metrics with the component-base legacy
// registry (served on /metrics). Safe to call more than once.
func RegisterMetrics() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(PluginDuration)
	})
}
