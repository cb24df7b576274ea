package app

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/datapath"
	"github.com/bgplb/bgplb/daemon/features"
	"github.com/bgplb/bgplb/daemon/metrics"
)

// Event reasons of this node's announcements and sessions (stable, camelCase like the
// condition reasons).
const (
	EventVIPAnnounced   = "VIPAnnounced"
	EventVIPWithdrawn   = "VIPWithdrawn"
	EventBGPSessionUp   = "BGPSessionUp"
	EventBGPSessionDown = "BGPSessionDown"
)

// announcedState is the part of the announcer observe reads around each sync.
type announcedState interface {
	AnnouncedPrefixes(key string) []netip.Prefix
	ServiceReason(key string) string
}

// observer turns this node's announce/withdraw transitions and session state changes
// into counters (always) and Events (feature gate AnnouncementEvents): VIPAnnounced and
// VIPWithdrawn on the Service, BGPSessionUp and BGPSessionDown on the Node. Events go
// through the daemon's broadcaster, whose correlator aggregates repeats and whose spam
// filter rate-limits each object (client-go's default: a burst of 25, then one per 5
// minutes), so a flapping session cannot flood the API server.
type observer struct {
	node     string
	nodeUID  types.UID
	ann      announcedState
	services func(namespace, name string) (*corev1.Service, bool)

	mu       sync.Mutex
	recorder record.EventRecorder // nil until the broadcaster runs: no events, counters only
	sessions map[string]bool      // neighbour address -> Established, as last seen
}

func newObserver(node *corev1.Node, ann announcedState, services func(namespace, name string) (*corev1.Service, bool)) *observer {
	return &observer{node: node.Name, nodeUID: node.UID, ann: ann, services: services, sessions: map[string]bool{}}
}

func (o *observer) setRecorder(r record.EventRecorder) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.recorder = r
}

func (o *observer) eventRecorder() record.EventRecorder {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !features.Gate.Enabled(features.AnnouncementEvents) {
		return nil
	}
	return o.recorder
}

// sync wraps one sync of Service key: it records whether the node announced the Service
// before and after and reports a transition.
func (o *observer) sync(key string, fn func() error) error {
	before := o.ann.AnnouncedPrefixes(key)
	err := fn()
	after := o.ann.AnnouncedPrefixes(key)
	switch {
	case len(before) == 0 && len(after) > 0:
		metrics.ServiceAnnouncements.WithLabelValues("announce").Inc()
		o.serviceEvent(key, corev1.EventTypeNormal, EventVIPAnnounced, fmt.Sprintf("node %s announces %s", o.node, joinPrefixes(after)))
	case len(before) > 0 && len(after) == 0:
		metrics.ServiceAnnouncements.WithLabelValues("withdraw").Inc()
		reason := o.ann.ServiceReason(key)
		if reason == "" {
			reason = "deleted or out of scope"
		}
		o.serviceEvent(key, corev1.EventTypeNormal, EventVIPWithdrawn, fmt.Sprintf("node %s withdrew %s (%s)", o.node, joinPrefixes(before), reason))
	}
	return err
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	slices.Sort(s)
	return strings.Join(s, ", ")
}

func (o *observer) serviceEvent(key, typ, reason, msg string) {
	rec := o.eventRecorder()
	if rec == nil {
		return
	}
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return // not a Service key (peers, node routes)
	}
	svc, ok := o.services(ns, name)
	if !ok {
		return // deleted: nothing to attach the event to
	}
	rec.Event(svc, typ, reason, msg)
}

// sessionsChanged reads the speaker's sessions and reports each that came up or went
// down since the last call.
func (o *observer) sessionsChanged(ctx context.Context, speaker peerLister) {
	ctx, cancel := context.WithTimeout(ctx, speakerTimeout)
	defer cancel()
	peers, err := speaker.Peers(ctx)
	if err != nil {
		klog.FromContext(ctx).V(2).Info("reading sessions for events failed", "err", err)
		return
	}
	type change struct {
		p  bgp.PeerStatus
		up bool
	}
	var changes []change
	o.mu.Lock()
	seen := map[string]bool{}
	for _, p := range peers {
		addr := p.Address.String()
		seen[addr] = true
		up := p.State == bgp.StateEstablished
		was, known := o.sessions[addr]
		o.sessions[addr] = up
		if up != was && (known || up) { // a new neighbour that is not up yet is no transition
			changes = append(changes, change{p, up})
		}
	}
	for addr := range o.sessions {
		if !seen[addr] {
			delete(o.sessions, addr) // removed from the configuration: not a session failure
		}
	}
	o.mu.Unlock()
	rec := o.eventRecorder()
	ref := &corev1.ObjectReference{Kind: "Node", Name: o.node, UID: o.nodeUID}
	for _, c := range changes {
		dir, typ, reason := "down", corev1.EventTypeWarning, EventBGPSessionDown
		msg := fmt.Sprintf("BGP session with BGPPeer %s (%s) left Established: now %s", c.p.Name, c.p.Address, c.p.State)
		if c.up {
			dir, typ, reason = "up", corev1.EventTypeNormal, EventBGPSessionUp
			msg = fmt.Sprintf("BGP session with BGPPeer %s (%s) Established", c.p.Name, c.p.Address)
		} else if c.p.LastError != "" {
			msg += ": " + c.p.LastError
		}
		metrics.SessionTransitions.WithLabelValues(c.p.Name, dir).Inc()
		if rec != nil {
			rec.Event(ref, typ, reason, msg)
		}
	}
}

// dropReasons are the uplink program's drop reasons (bpf.DropReason).
var dropReasons = []bpf.DropReason{bpf.DropNoLocalBackend, bpf.DropSourceRange, bpf.DropNoBackend, bpf.DropFragment,
	bpf.DropMalformed, bpf.DropCTFull, bpf.DropNoService}

// datapathCounters is the per-Service datapath counter source: the manager's frontends
// with their counters from the pinned maps.
func datapathCounters(maps *bpf.Maps, m *datapath.Manager) metrics.DatapathSource {
	return func() (metrics.DatapathSample, error) {
		var s metrics.DatapathSample
		for _, fe := range m.Frontends() {
			st, err := maps.ServiceStats(fe.ID)
			if err != nil {
				return s, err
			}
			s.Frontends = append(s.Frontends, metrics.FrontendSample{
				Service: fe.Service, VIP: fe.Key.VIP.String(), Port: strconv.Itoa(int(fe.Key.Port)), Protocol: fe.Key.Proto.String(),
				Packets: st.Packets, Bytes: st.Bytes,
			})
		}
		drops, err := maps.Drops()
		if err != nil {
			return s, err
		}
		// Every reason, zero included (Drops omits zeros), so the series exist from the start.
		s.Drops = make(map[string]uint64, len(dropReasons))
		for _, r := range dropReasons {
			s.Drops[r.String()] = drops[r]
		}
		return s, nil
	}
}
