package features

import (
	"k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/component-base/featuregate"
	logsapi "k8s.io/component-base/logs/api/v1"
)

// Feature gates of bgplbd.
const (
	// AnnouncementEvents makes each node write Events when it starts or stops announcing
	// a Service's VIPs (reasons VIPAnnounced, VIPWithdrawn, on the Service) and when one
	// of its BGP sessions comes up or goes down (BGPSessionUp, BGPSessionDown, on the
	// Node). Beta, on by default; the event correlator's spam filter rate-limits them.
	AnnouncementEvents featuregate.Feature = "AnnouncementEvents"
)

// Gate is the daemon's feature gate: bgplb's gates and component-base's logging gates.
var Gate featuregate.MutableFeatureGate = New()

// New returns a feature gate with every gate of bgplbd registered at its default.
func New() featuregate.MutableFeatureGate {
	g := featuregate.NewFeatureGate()
	runtime.Must(g.Add(map[featuregate.Feature]featuregate.FeatureSpec{
		AnnouncementEvents: {Default: true, PreRelease: featuregate.Beta},
	}))
	runtime.Must(logsapi.AddFeatureGates(g))
	return g
}
