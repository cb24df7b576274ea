package app

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/bgplb/bgplb/daemon/announce"
	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/registry"
	"github.com/bgplb/bgplb/daemon/registry/api"
)

// maxTrackedNotReady bounds the pods registryView remembers as not registered.
const maxTrackedNotReady = 1024

// registryView adapts the registry to eligibility.EndpointRegistry and remembers the
// local endpoints' pods it last answered "not registered" for, for the BGPNodeState's
// datapath summary (which the leader's plan for this node reads).
type registryView struct {
	r *registry.Registry

	mu       sync.Mutex
	notReady map[string]string // "namespace/name" of pods last found unregistered → the plugin's error, if any
}

func newRegistryView(r *registry.Registry) *registryView {
	return &registryView{r: r, notReady: map[string]string{}}
}

func (v *registryView) Registered(namespace, name string, ip netip.Addr) bool {
	ok := v.registered(namespace, name, ip)
	if name == "" {
		return ok
	}
	pod := namespace + "/" + name
	var reason string
	if !ok {
		reason, _ = v.r.DatapathNotReady(namespace, name, ip)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if ok {
		delete(v.notReady, pod)
	} else if _, known := v.notReady[pod]; known || len(v.notReady) < maxTrackedNotReady {
		v.notReady[pod] = reason
	}
	return ok
}

// registered is the registry's answer: registered and datapath-ready.
func (v *registryView) registered(namespace, name string, ip netip.Addr) bool {
	return v.r.Registered(namespace, name, ip)
}

// DatapathNotReady implements datapathready.NotReadyReporter (the registry's reason).
func (v *registryView) DatapathNotReady(namespace, name string, ip netip.Addr) (string, bool) {
	return v.r.DatapathNotReady(namespace, name, ip)
}

// summary returns the datapath summary of the BGPNodeState.
func (v *registryView) summary() *v1alpha1.DatapathSummary {
	v.mu.Lock()
	defer v.mu.Unlock()
	pods := slices.Sorted(maps.Keys(v.notReady))
	s := &v1alpha1.DatapathSummary{Endpoints: int32(v.r.Len()), NotReady: int32(len(pods))}
	if len(pods) > v1alpha1.MaxNotReadyPods {
		pods = pods[:v1alpha1.MaxNotReadyPods]
	}
	s.NotReadyPods = pods
	for _, p := range pods {
		if r := v.notReady[p]; r != "" {
			s.Reason = truncate(r, 1024)
			break
		}
	}
	return s
}

// routesFunc answers GET /v1/routes from the announcer's applied prefixes: a prefix
// without a peer list goes to every established peer of the speaker.
func routesFunc(ann *announce.Announcer, speaker bgp.Speaker) registry.RoutesFunc {
	return func(ctx context.Context) ([]api.Route, error) {
		peers, err := speaker.Peers(ctx)
		if err != nil {
			return nil, fmt.Errorf("list bgp peers: %w", err)
		}
		var up []string
		for _, p := range peers {
			if p.State == bgp.StateEstablished {
				up = append(up, p.Name)
			}
		}
		slices.Sort(up)
		_, prefixes := ann.State()
		out := make([]api.Route, 0, len(prefixes))
		for _, p := range prefixes {
			to := up
			if p.Peers != nil {
				to = slices.DeleteFunc(slices.Clone(up), func(n string) bool { return !slices.Contains(p.Peers, n) })
			}
			out = append(out, api.Route{Prefix: p.Prefix.String(), Services: p.Services, Peers: to})
		}
		return out, nil
	}
}

// truncate cuts s to at most n bytes (on a rune boundary).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
