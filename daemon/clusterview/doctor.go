package clusterview

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// Severities of a doctor check.
const (
	SeverityOK      = "ok"
	SeverityWarning = "warning"
	SeverityFailure = "failure"
)

// Check is one doctor finding.
type Check struct {
	Name     string `json:"name"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// Report is the output of a doctor (cluster-wide here, node-local in bgplbctl).
type Report struct {
	Kind       string  `json:"kind"`
	APIVersion string  `json:"apiVersion"`
	Checks     []Check `json:"checks"`
	OK         int     `json:"ok"`
	Warnings   int     `json:"warnings"`
	Failures   int     `json:"failures"`
}

// NewReport returns an empty report.
func NewReport() *Report {
	return &Report{Kind: "DoctorReport", APIVersion: APIVersion, Checks: []Check{}}
}

// Add records a check.
func (r *Report) Add(name, severity, format string, args ...any) {
	r.Checks = append(r.Checks, Check{Name: name, Severity: severity, Message: fmt.Sprintf(format, args...)})
	switch severity {
	case SeverityOK:
		r.OK++
	case SeverityWarning:
		r.Warnings++
	default:
		r.Failures++
	}
}

// Err returns nil when every check passed, else an *ExitCodeError with ExitError
// (warnings only) or ExitFailures.
func (r *Report) Err() error {
	switch {
	case r.Failures > 0:
		return &ExitCodeError{Code: ExitFailures, Err: fmt.Errorf("%d of %d checks failed", r.Failures, len(r.Checks))}
	case r.Warnings > 0:
		return &ExitCodeError{Code: ExitError, Err: fmt.Errorf("%d of %d checks have warnings", r.Warnings, len(r.Checks))}
	}
	return nil
}

// DoctorOptions say where bgplb runs.
type DoctorOptions struct {
	Namespace string // of the bgplbd DaemonSet
	Class     string // loadBalancerClass of bgplb's Services
}

// Doctor checks the cluster: the bgplbd DaemonSet, every node's BGP sessions, the
// BGPPeers, the pools and the Services. An unreachable API server is a failure.
func Doctor(ctx context.Context, c Clients, o DoctorOptions) *Report {
	r := NewReport()
	checkDaemonSet(ctx, c, o.Namespace, r)
	checkAllocator(ctx, c, o.Namespace, r)
	checkPeers(ctx, c, r)
	if sessions, err := Sessions(ctx, c, ""); err != nil {
		r.Add("BGP sessions", SeverityFailure, "%v", err)
	} else {
		checkSessions(sessions, r)
	}
	if pools, err := Pools(ctx, c, o.Class); err != nil {
		r.Add("pools", SeverityFailure, "%v", err)
	} else {
		checkPools(pools, r)
	}
	if svcs, err := Services(ctx, c, "", o.Class); err != nil {
		r.Add("services", SeverityFailure, "%v", err)
	} else {
		checkServices(svcs, r)
	}
	return r
}

func checkDaemonSet(ctx context.Context, c Clients, ns string, r *Report) {
	list, err := c.Kube.AppsV1().DaemonSets(ns).List(ctx, metav1.ListOptions{LabelSelector: PodSelector})
	if err != nil {
		r.Add("bgplbd DaemonSet", SeverityFailure, "list daemonsets in %s: %v", ns, err)
		return
	}
	if len(list.Items) == 0 {
		r.Add("bgplbd DaemonSet", SeverityFailure, "no DaemonSet labelled %s in namespace %s", PodSelector, ns)
		return
	}
	for _, ds := range list.Items {
		st := ds.Status
		switch {
		case st.DesiredNumberScheduled == 0:
			r.Add("bgplbd DaemonSet", SeverityFailure, "%s/%s schedules no pod", ds.Namespace, ds.Name)
		case st.NumberReady == 0:
			r.Add("bgplbd DaemonSet", SeverityFailure, "%s/%s: 0 of %d pods ready", ds.Namespace, ds.Name, st.DesiredNumberScheduled)
		case st.NumberReady < st.DesiredNumberScheduled:
			r.Add("bgplbd DaemonSet", SeverityWarning, "%s/%s: %d of %d pods ready (a pod is not ready while it has no established session)", ds.Namespace, ds.Name, st.NumberReady, st.DesiredNumberScheduled)
		default:
			r.Add("bgplbd DaemonSet", SeverityOK, "%s/%s: %d of %d pods ready", ds.Namespace, ds.Name, st.NumberReady, st.DesiredNumberScheduled)
		}
	}
}

// AllocatorSelector selects the bgplb-allocator Deployment (bgplbd --mode=allocator:
// LB-IPAM and the Announced aggregator).
const AllocatorSelector = "app.kubernetes.io/component=allocator"

// checkAllocator checks the allocator Deployment when there is one (with bgplbd
// --mode=all, the default of the lab, the DaemonSet does its work and there is none).
func checkAllocator(ctx context.Context, c Clients, ns string, r *Report) {
	list, err := c.Kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: AllocatorSelector})
	if err != nil {
		r.Add("bgplb-allocator", SeverityFailure, "list deployments in %s: %v", ns, err)
		return
	}
	for _, d := range list.Items {
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		switch ready := d.Status.ReadyReplicas; {
		case ready == 0:
			r.Add("bgplb-allocator", SeverityFailure, "%s/%s: 0 of %d replicas ready: no LB-IPAM, new Services get no VIP", d.Namespace, d.Name, want)
		case ready < want:
			r.Add("bgplb-allocator", SeverityWarning, "%s/%s: %d of %d replicas ready", d.Namespace, d.Name, ready, want)
		default:
			r.Add("bgplb-allocator", SeverityOK, "%s/%s: %d of %d replicas ready", d.Namespace, d.Name, ready, want)
		}
	}
}

func checkPeers(ctx context.Context, c Clients, r *Report) {
	peers, err := c.CRD.BgplbV1alpha1().BGPPeers().List(ctx, metav1.ListOptions{})
	switch {
	case apierrors.IsNotFound(err):
		r.Add("BGPPeers", SeverityFailure, "the BGPPeer CRD is not installed")
	case err != nil:
		r.Add("BGPPeers", SeverityFailure, "list bgppeers: %v", err)
	case len(peers.Items) == 0:
		r.Add("BGPPeers", SeverityFailure, "no BGPPeer: no VIP is announced anywhere")
	default:
		r.Add("BGPPeers", SeverityOK, "%d BGPPeer(s)", len(peers.Items))
	}
}

func checkSessions(l *SessionList, r *Report) {
	if len(l.NodesWithoutState) > 0 {
		r.Add("BGP sessions", SeverityWarning, "no BGPNodeState for node(s) %s: bgplbd has not run there", strings.Join(l.NodesWithoutState, ", "))
	}
	if len(l.Items) == 0 {
		r.Add("BGP sessions", SeverityFailure, "no node has a BGP session")
		return
	}
	var down []string
	for _, s := range l.Items {
		if s.State != v1alpha1.SessionEstablished {
			d := fmt.Sprintf("%s→%s (%s)", s.Node, s.Peer, s.State)
			if s.LastError != "" {
				d += ": " + s.LastError
			}
			down = append(down, d)
		}
	}
	switch {
	case len(down) == len(l.Items):
		r.Add("BGP sessions", SeverityFailure, "none of %d established: %s", len(l.Items), strings.Join(down, "; "))
	case len(down) > 0:
		r.Add("BGP sessions", SeverityWarning, "%d of %d down: %s", len(down), len(l.Items), strings.Join(down, "; "))
	default:
		r.Add("BGP sessions", SeverityOK, "%d of %d established", len(l.Items), len(l.Items))
	}
}

// poolFullPercent is the usage from which doctor warns about a pool.
const poolFullPercent = 90

func checkPools(l *PoolList, r *Report) {
	if len(l.Items) == 0 {
		r.Add("pools", SeverityFailure, "no LoadBalancerIPPool: no Service can get a VIP")
		return
	}
	bad := 0
	for _, p := range l.Items {
		switch {
		case p.Disabled:
			r.Add("pool "+p.Name, SeverityOK, "disabled")
		case !p.Ready:
			bad++
			r.Add("pool "+p.Name, SeverityWarning, "not ready: %s: %s", p.Reason, p.Message)
		case p.percentUsed() >= poolFullPercent:
			bad++
			r.Add("pool "+p.Name, SeverityWarning, "%d%% used (IPv4 %s, IPv6 %s)", p.percentUsed(), usage(p.IPv4), usage(p.IPv6))
		}
	}
	if bad == 0 {
		r.Add("pools", SeverityOK, "%d pool(s), all ready and under %d%% used", len(l.Items), poolFullPercent)
	}
}

func checkServices(l *ServiceList, r *Report) {
	var unalloc, unann []string
	for _, s := range l.Items {
		key := s.Namespace + "/" + s.Name
		switch {
		case !s.Allocated:
			unalloc = append(unalloc, fmt.Sprintf("%s (%s: %s)", key, dash(s.AllocationReason), s.Message))
		case !s.Announced:
			unann = append(unann, fmt.Sprintf("%s (%s: %s)", key, dash(s.Reason), s.Message))
		}
	}
	if len(unalloc) > 0 {
		r.Add("service VIPs", SeverityFailure, "%d of %d without a VIP: %s", len(unalloc), len(l.Items), strings.Join(unalloc, "; "))
	}
	if len(unann) > 0 {
		r.Add("service announcements", SeverityWarning, "%d of %d not announced: %s", len(unann), len(l.Items), strings.Join(unann, "; "))
	}
	if len(unalloc) == 0 && len(unann) == 0 {
		r.Add("services", SeverityOK, "%d Service(s), all with a VIP and announced", len(l.Items))
	}
}
