package tests

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"github.com/bgplb/bgplb/conformance/suite"
)

// D8: a pod reaching a VIP from inside the cluster gets an answer. With ETP=Local the
// backend sees the pod's own IP; with ETP=Cluster the kernel's service handling decides
// (kube-proxy masquerades traffic to a Cluster-policy Service's external IPs, pods'
// included), so the pod's IP or its node's address.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "DatapathInCluster",
		ID:        "D8",
		Description: "a pod on node2 fetches http://VIP/clientip of an ETP=Local and an ETP=Cluster Service " +
			"(backend on node1): both answer; Local shows the pod's own IP, Cluster the pod's IP or, masqueraded " +
			"by kube-proxy, its node's",
		Profile:  "LB-DATAPATH",
		Features: []suite.Feature{suite.FeatureTCPViaVIP, suite.FeatureSourcePreserve},
		Test:     testDatapathInCluster,
	})
}

func testDatapathInCluster(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-dp-in-cluster")
	d := s.Backend(t, ns, "web", s.NodeName(1), 1)
	c := s.Backend(t, ns, "caller", s.NodeName(2), 1)
	s.LBService(t, ns, "cluster", "web")
	s.LBService(t, ns, "local", "web", suite.WithLocal)
	vips := map[string]netip.Addr{"cluster": s.WaitIngress(t, ns, "cluster"), "local": s.WaitIngress(t, ns, "local")}
	s.WaitPods(t, ns, d, 1)
	caller := s.WaitPods(t, ns, c, 1)[0]
	callerIP := mustAddr(t, caller.Status.PodIP)
	s.EventuallyNextHops(t, vips["cluster"], s.AllNodeAddrs())
	s.EventuallyNextHops(t, vips["local"], s.NodeAddrs(s.NodeName(1)))

	for _, name := range []string{"cluster", "local"} {
		vip := vips[name]
		path := fmt.Sprintf("/fetch?addr=%s:80&path=/clientip", vip)
		var got string
		suite.Eventually(t, s.Timeouts.Converge, fmt.Sprintf("pod %s reaches %s (%s)", caller.Name, vip, name), func() error {
			var err error
			got, err = s.HTTPGet(ctx, callerIP, 8080, path)
			return err
		})
		switch {
		case got == callerIP.String():
			t.Logf("%s: pod %s reached %s and the backend saw the pod's own IP %s", name, caller.Name, vip, got)
		case name == "cluster" && got == s.NodeAddr(caller.Spec.NodeName).String():
			// ETP=Cluster traffic the datapath hands to the kernel: kube-proxy masquerades
			// every packet to an external destination of a Cluster-policy Service, pods' too.
			t.Logf("%s: pod %s reached %s; kube-proxy masqueraded it to its node's %s", name, caller.Name, vip, got)
		default:
			t.Errorf("%s: the backend saw %q as the source of pod %s (%s on %s)", name, got, caller.Name, callerIP, caller.Spec.NodeName)
		}
	}
}
