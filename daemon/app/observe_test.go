package app

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
	compmetrics "k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/testutil"

	"github.com/bgplb/bgplb/daemon/bgp"
	"github.com/bgplb/bgplb/daemon/features"
	"github.com/bgplb/bgplb/daemon/metrics"
)

type fakeAnnounced struct {
	prefixes map[string][]netip.Prefix
	reason   string
}

func (f *fakeAnnounced) AnnouncedPrefixes(key string) []netip.Prefix { return f.prefixes[key] }
func (f *fakeAnnounced) ServiceReason(string) string                 { return f.reason }

type obsPeers struct{ peers []bgp.PeerStatus }

func (f *obsPeers) Peers(context.Context) ([]bgp.PeerStatus, error) { return f.peers, nil }

func counter(t *testing.T, c compmetrics.CounterMetric) float64 {
	t.Helper()
	v, err := testutil.GetCounterMetricValue(c)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func drain(rec *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// TestObserverEvents: a Service starting and stopping to be announced and a session
// going up and down give one event and one counter increment each; with the
// AnnouncementEvents gate off only the counters move.
func TestObserverEvents(t *testing.T) {
	metrics.Register()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "web", Name: "frontend"}}
	ann := &fakeAnnounced{prefixes: map[string][]netip.Prefix{}, reason: "NoEligibleEndpoints"}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1", UID: "u1"}}
	o := newObserver(node, ann, func(ns, name string) (*corev1.Service, bool) { return svc, ns == "web" && name == "frontend" })
	rec := record.NewFakeRecorder(10)
	o.setRecorder(rec)
	vip := netip.MustParsePrefix("203.0.113.1/32")
	announce0 := counter(t, metrics.ServiceAnnouncements.WithLabelValues("announce"))
	withdraw0 := counter(t, metrics.ServiceAnnouncements.WithLabelValues("withdraw"))

	_ = o.sync("web/frontend", func() error { ann.prefixes["web/frontend"] = []netip.Prefix{vip}; return nil })
	_ = o.sync("web/frontend", func() error { return nil }) // no transition
	_ = o.sync("web/frontend", func() error { delete(ann.prefixes, "web/frontend"); return nil })
	got := drain(rec)
	want := []string{"Normal VIPAnnounced node node1 announces 203.0.113.1/32", "Normal VIPWithdrawn node node1 withdrew 203.0.113.1/32 (NoEligibleEndpoints)"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("service events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := counter(t, metrics.ServiceAnnouncements.WithLabelValues("announce")) - announce0; d != 1 {
		t.Errorf("announce counter moved by %v, want 1", d)
	}
	if d := counter(t, metrics.ServiceAnnouncements.WithLabelValues("withdraw")) - withdraw0; d != 1 {
		t.Errorf("withdraw counter moved by %v, want 1", d)
	}

	addr := netip.MustParseAddr("198.18.0.1")
	sp := &obsPeers{peers: []bgp.PeerStatus{{Name: "router", Address: addr, State: "Active"}}}
	o.sessionsChanged(context.Background(), sp) // new and not up: no transition
	sp.peers[0].State = bgp.StateEstablished
	o.sessionsChanged(context.Background(), sp)
	sp.peers[0].State, sp.peers[0].LastError = "Idle", "hold timer expired"
	o.sessionsChanged(context.Background(), sp)
	got = drain(rec)
	want = []string{"Normal BGPSessionUp BGP session with BGPPeer router (198.18.0.1) Established",
		"Warning BGPSessionDown BGP session with BGPPeer router (198.18.0.1) left Established: now Idle: hold timer expired"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("session events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := counter(t, metrics.SessionTransitions.WithLabelValues("router", "down")); n != 1 {
		t.Errorf("session down counter %v, want 1", n)
	}

	// Gate off: counters only.
	if err := features.Gate.Set("AnnouncementEvents=false"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = features.Gate.Set("AnnouncementEvents=true") })
	_ = o.sync("web/frontend", func() error { ann.prefixes["web/frontend"] = []netip.Prefix{vip}; return nil })
	sp.peers[0].State = bgp.StateEstablished
	o.sessionsChanged(context.Background(), sp)
	if got := drain(rec); len(got) != 0 {
		t.Errorf("events with AnnouncementEvents=false: %v", got)
	}
	if d := counter(t, metrics.ServiceAnnouncements.WithLabelValues("announce")) - announce0; d != 2 {
		t.Errorf("announce counter moved by %v, want 2", d)
	}
}
