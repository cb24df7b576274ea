package tests

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
)

// C5 (BGPEndpointConditions): the endpoint-condition truth table end to end: a
// selector-less ETP=Local Service whose EndpointSlice the test writes (real pods,
// conditions chosen per row); each row's ready/serving/terminating conditions decide the
// router's next hops and which backends answer new connections, and a connection
// established to an endpoint that turns terminating-but-serving keeps working.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BGPEndpointConditions",
		ID:        "C5",
		Description: "the endpoint-condition truth table end to end: a selector-less ETP=Local Service whose " +
			"EndpointSlice the test writes (real pods, conditions chosen per row); each row's ready/serving/" +
			"terminating conditions decide the router's next hops and which backends answer new connections, " +
			"and a connection established to an endpoint that turns terminating-but-serving keeps working",
		Needs:    []suite.Adapter{suite.AdapterClient},
		Profile:  "LB-BGP",
		Features: []suite.Feature{suite.FeatureETPLocal, suite.FeatureEndpointReadines},
		Test:     testEndpointConditions,
	})
}

// cond is one endpoint's conditions in a truth-table row.
type cond struct{ ready, serving, terminating bool }

var (
	condReady    = cond{ready: true, serving: true}
	condServing  = cond{serving: true, terminating: true} // terminating but still serving
	condDraining = cond{terminating: true}                // terminating, no longer serving
	condNotReady = cond{}
)

func (c cond) String() string {
	switch c {
	case condReady:
		return "ready"
	case condServing:
		return "terminating-serving"
	case condDraining:
		return "terminating-not-serving"
	case condNotReady:
		return "not-ready"
	}
	return fmt.Sprintf("%+v", struct{ R, S, T bool }{c.ready, c.serving, c.terminating})
}

func testEndpointConditions(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-ep-conditions")
	n1, n2 := s.NodeName(1), s.NodeName(2)
	// Real pods the CNI plugin registered: a and c on node 1, b on node 2. No Service
	// selects them; the test's EndpointSlice points at them.
	d1 := s.Backend(t, ns, "epc", n1, 2)
	d2 := s.Backend(t, ns, "epc", n2, 1)
	p1 := s.WaitPods(t, ns, d1, 2)
	p2 := s.WaitPods(t, ns, d2, 1)
	a, c, b := p1[0], p1[1], p2[0]

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "epc", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeLoadBalancer,
			LoadBalancerClass:     ptr.To(s.Class),
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP,
				TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := s.Kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create selector-less service: %v", err)
	}
	vip := s.WaitIngress(t, ns, "epc")

	epSlices := s.Kube.DiscoveryV1().EndpointSlices(ns)
	write := func(conds map[string]cond) {
		t.Helper()
		es := &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: "epc-manual", Namespace: ns, Labels: map[string]string{
				discoveryv1.LabelServiceName: "epc",
				discoveryv1.LabelManagedBy:   "conformance.bgplb.io",
			}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
		}
		for _, p := range []corev1.Pod{a, c, b} {
			cd := conds[p.Name]
			es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
				Addresses: []string{p.Status.PodIP},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(cd.ready), Serving: ptr.To(cd.serving),
					Terminating: ptr.To(cd.terminating)},
				NodeName:  ptr.To(p.Spec.NodeName),
				TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: p.Name, UID: p.UID},
			})
		}
		cur, err := epSlices.Get(ctx, es.Name, metav1.GetOptions{})
		if err == nil {
			es.ResourceVersion = cur.ResourceVersion
			_, err = epSlices.Update(ctx, es, metav1.UpdateOptions{})
		} else {
			_, err = epSlices.Create(ctx, es, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatalf("write EndpointSlice: %v", err)
		}
	}

	// Each row: conditions of a, c (node 1) and b (node 2); the nodes the router must
	// have as next hops; the backends that must answer new connections (nil: none).
	rows := []struct {
		what    string
		a, c, b cond
		nodes   []string
		answer  []corev1.Pod
	}{
		{"all ready", condReady, condReady, condReady, []string{n1, n2}, []corev1.Pod{a, c, b}},
		{"a terminating-serving beside ready c: ready ones take new flows", condServing, condReady, condReady, []string{n1, n2}, []corev1.Pod{c, b}},
		{"node 2's only endpoint terminating-serving while others are ready: node 2 withdrawn", condReady, condReady, condServing, []string{n1}, []corev1.Pod{a, c}},
		{"no ready endpoint anywhere: serving ones announce and answer", condServing, condServing, condServing, []string{n1, n2}, []corev1.Pod{a, c, b}},
		{"node 2 terminating-not-serving, node 1 serving: node 2 withdrawn", condServing, condServing, condDraining, []string{n1}, []corev1.Pod{a, c}},
		{"a not ready, c ready, b not ready", condNotReady, condReady, condNotReady, []string{n1}, []corev1.Pod{c}},
		{"nothing ready or serving: withdrawn everywhere", condNotReady, condDraining, condNotReady, nil, nil},
	}
	for _, r := range rows {
		t.Logf("row %q: a=%s c=%s (%s), b=%s (%s)", r.what, r.a, r.c, n1, r.b, n2)
		write(map[string]cond{a.Name: r.a, c.Name: r.c, b.Name: r.b})
		s.EventuallyNextHops(t, vip, s.NodeAddrs(r.nodes...))
		if len(r.answer) > 0 {
			answeredBy(t, s, vip, r.answer)
		}
	}

	t.Log("established flow: only a ready, a connection to it held; a turns terminating-serving, c ready")
	write(map[string]cond{a.Name: condReady, c.Name: condNotReady, b.Name: condNotReady})
	s.EventuallyNextHops(t, vip, s.NodeAddrs(n1))
	answeredBy(t, s, vip, []corev1.Pod{a})
	conn, err := s.Client.Dial(ctx, "tcp", netip.AddrPortFrom(vip, 80).String())
	if err != nil {
		t.Fatalf("open the held connection: %v", err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	if got, err := heldHostname(conn, br, s.Timeouts.Request); err != nil || got != a.Name {
		t.Fatalf("held connection answered by %q, %v; want %s", got, err, a.Name)
	}
	write(map[string]cond{a.Name: condServing, c.Name: condReady, b.Name: condNotReady})
	// New connections move to c once node 1's datapath has the new conditions.
	suite.Eventually(t, s.Timeouts.Converge, "new connections answered by "+c.Name+" only", func() error {
		got, err := s.HTTPGet(ctx, vip, 80, "/hostname")
		if err != nil {
			return err
		}
		if got != c.Name {
			return fmt.Errorf("answered by %s", got)
		}
		return nil
	})
	answeredBy(t, s, vip, []corev1.Pod{c})
	for i := 0; i < 5; i++ {
		if got, err := heldHostname(conn, br, s.Timeouts.Request); err != nil || got != a.Name {
			t.Fatalf("held connection after a turned terminating-serving: answer %d %q, %v; want %s", i, got, err, a.Name)
		}
	}
}

// answeredBy sends 60 requests on new connections and checks that every one is
// answered, only by want, and that each of want answers.
func answeredBy(t *testing.T, s *suite.Suite, vip netip.Addr, want []corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	seen := map[string]int{}
	// The datapath follows the slice a moment after the router does: wait until only
	// wanted backends answer, then count.
	wanted := func(name string) bool {
		return slices.ContainsFunc(want, func(p corev1.Pod) bool { return p.Name == name })
	}
	suite.Eventually(t, s.Timeouts.Converge, "answers only from the row's backends", func() error {
		for i := 0; i < 10; i++ {
			got, err := s.HTTPGet(ctx, vip, 80, "/hostname")
			if err != nil {
				return err
			}
			if !wanted(got) {
				return fmt.Errorf("answered by %s", got)
			}
		}
		return nil
	})
	for i := 0; i < 60; i++ {
		got, err := s.HTTPGet(ctx, vip, 80, "/hostname")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		seen[got]++
	}
	t.Logf("60 new connections, per backend: %v", seen)
	for name := range seen {
		if !wanted(name) {
			t.Errorf("answered by %s, which this row excludes", name)
		}
	}
	for _, p := range want {
		if seen[p.Name] == 0 {
			t.Errorf("%s (%s) never answered", p.Name, p.Spec.NodeName)
		}
	}
}

// heldHostname asks GET /hostname on the held connection.
func heldHostname(conn net.Conn, br *bufio.Reader, timeout time.Duration) (string, error) {
	_ = conn.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprint(conn, "GET /hostname HTTP/1.1\r\nHost: vip\r\n\r\n"); err != nil {
		return "", fmt.Errorf("write: %w", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", fmt.Errorf("read answer: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read body: %w", err)
	}
	return strings.TrimSpace(string(body)), nil
}
