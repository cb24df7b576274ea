//go:build lab

package lab_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/labsuite"
	"github.com/bgplb/bgplb/conformance/suite"
)

// TestDatapathNotReadyNode is issue 16's acceptance 2: on a node whose datapath cannot
// attach (its CNI plugin is configured with a pin directory that is not on bpffs), new
// pods still start and answer on their pod IPs, the node does not announce, the
// Service's Announced condition says why, the pod gets a Warning event, and the other
// nodes keep serving the VIP.
func TestDatapathNotReadyNode(t *testing.T) {
	ctx := context.Background()
	_, s := labsuite.Start(t, lab.DefaultDir+"-dpready", false, func(o *lab.Options) {
		o.ExportPodCIDR = true // the client reaches pod IPs through the router
		o.BrokenDatapathNodes = []string{"node3"}
	})
	ns := s.Namespace(t, "dp-notready")
	d1 := s.Backend(t, ns, "web", "node1", 1)
	d3 := s.Backend(t, ns, "web", "node3", 1)
	s.LBService(t, ns, "web", "web", suite.WithLocal)
	vip := s.WaitIngress(t, ns, "web")
	s.WaitPods(t, ns, d1, 1)
	pods3 := s.WaitPods(t, ns, d3, 1) // pod setup on node3 did not fail

	t.Log("the pod on node3 answers on its pod IP")
	ip3 := netip.MustParseAddr(pods3[0].Status.PodIP)
	suite.Eventually(t, s.Timeouts.Converge, "GET node3's pod at "+ip3.String(), func() error {
		got, err := s.HTTPGet(ctx, ip3, 8080, "/hostname")
		if err == nil && got != pods3[0].Name {
			err = fmt.Errorf("answer %q, want %q", got, pods3[0].Name)
		}
		return err
	})

	t.Log("only node1 announces; the VIP answers from node1's pod")
	s.EventuallyNextHops(t, vip, s.NodeAddrs("node1"))
	s.ConsistentlyNextHops(t, vip, s.NodeAddrs("node1"), 3*s.Timeouts.Request)
	suite.Eventually(t, s.Timeouts.Converge, "GET the VIP", func() error {
		got, err := s.HTTPGet(ctx, vip, 80, "/hostname")
		if err == nil && !strings.HasPrefix(got, d1) {
			err = fmt.Errorf("answer %q from outside node1", got)
		}
		return err
	})

	t.Log("the Announced condition names node3's datapath problem")
	waitAnnounced(t, s, ns, "web", metav1.ConditionTrue, "Announced", "node3: 1 local endpoint(s) not datapath-ready")

	t.Log("a Service with its only pod on node3: not announced, reason DatapathNotReady")
	d3only := s.Backend(t, ns, "solo", "node3", 1)
	s.LBService(t, ns, "solo", "solo", suite.WithLocal)
	vip2 := s.WaitIngress(t, ns, "solo")
	s.WaitPods(t, ns, d3only, 1)
	waitAnnounced(t, s, ns, "solo", metav1.ConditionFalse, "DatapathNotReady", "bpf filesystem")
	s.ConsistentlyNextHops(t, vip2, nil, 3*s.Timeouts.Request)

	t.Log("the pod has a Warning event DatapathNotReady")
	suite.Eventually(t, s.Timeouts.Converge, "DatapathNotReady event on "+pods3[0].Name, func() error {
		evs, err := s.Kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + pods3[0].Name + ",reason=DatapathNotReady"})
		if err != nil {
			return err
		}
		if len(evs.Items) == 0 || evs.Items[0].Type != corev1.EventTypeWarning {
			return fmt.Errorf("events %+v", evs.Items)
		}
		return nil
	})
}

func waitAnnounced(t *testing.T, s *suite.Suite, ns, name string, st metav1.ConditionStatus, reason, msgPart string) {
	t.Helper()
	suite.Eventually(t, s.Timeouts.Converge, fmt.Sprintf("Announced=%s %s on %s/%s", st, reason, ns, name), func() error {
		svc, err := s.Kube.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		c := meta.FindStatusCondition(svc.Status.Conditions, "bgplb.io/Announced")
		if c == nil || c.Status != st || c.Reason != reason || !strings.Contains(c.Message, msgPart) {
			return fmt.Errorf("condition %+v", c)
		}
		return nil
	})
}
