//go:build lab

package lab_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/labsuite"
	"github.com/bgplb/bgplb/conformance/suite"
)

// TestNetworkPolicyVIP is issue 16's NetworkPolicy acceptance with a real enforcer
// (kube-network-policies on every node, lab.Options.NetworkPolicy): a default-deny
// ingress policy in the backends' namespace stops the client's VIP traffic, an
// ingress policy allowing the client LAN (198.51.100.0/24) lets it through again, for
// externalTrafficPolicy Local and Cluster (backends on every node, so every node
// delivers locally and keeps the client's address).
//
// With bgplbd's default delivery (the node's stack routes VIP traffic to the pod) it
// passes. With BGPLB_DATAPATH_DELIVERY=redirect (bpf_redirect_peer straight into the
// pod, an opt-in documented as bypassing NetworkPolicy) the deny step fails: the VIP
// keeps answering.
func TestNetworkPolicyVIP(t *testing.T) {
	if _, err := os.Stat(os.Getenv("BGPLB_K8S_BIN_DIR") + "/" + "kube-network-policies"); err != nil {
		t.Fatalf("the enforcer is not built (make tools): %v", err)
	}
	ctx := context.Background()
	_, s := labsuite.Start(t, lab.DefaultDir+"-netpol", false, func(o *lab.Options) {
		o.NetworkPolicy = true
	})
	ns := s.Namespace(t, "netpol")
	var deps []string
	for _, node := range []string{"node1", "node2", "node3"} {
		deps = append(deps, s.Backend(t, ns, "web", node, 1))
	}
	s.LBService(t, ns, "local", "web", suite.WithLocal)
	s.LBService(t, ns, "cluster", "web")
	vips := map[string]netip.Addr{"local": s.WaitIngress(t, ns, "local"), "cluster": s.WaitIngress(t, ns, "cluster")}
	for _, d := range deps {
		s.WaitPods(t, ns, d, 1)
	}

	answers := func(name string, vip netip.Addr) error {
		// Several connections: each may take another node and backend.
		for i := 0; i < 6; i++ {
			rctx, cancel := context.WithTimeout(ctx, s.Timeouts.Request)
			_, err := s.HTTPGet(rctx, vip, 80, "/hostname")
			cancel()
			if err != nil {
				return fmt.Errorf("%s VIP %s: %w", name, vip, err)
			}
		}
		return nil
	}
	blocked := func(name string, vip netip.Addr) error {
		for i := 0; i < 6; i++ {
			rctx, cancel := context.WithTimeout(ctx, s.Timeouts.Request)
			got, err := s.HTTPGet(rctx, vip, 80, "/hostname")
			cancel()
			if err == nil {
				return fmt.Errorf("%s VIP %s answered %q through a default-deny ingress policy", name, vip, got)
			}
		}
		return nil
	}

	t.Log("no policy: both VIPs answer")
	for name, vip := range vips {
		suite.Eventually(t, s.Timeouts.Converge, "GET the "+name+" VIP", func() error { return answers(name, vip) })
	}

	t.Log("default-deny ingress in the namespace: both VIPs stop answering")
	deny := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "default-deny", Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	if _, err := s.Kube.NetworkingV1().NetworkPolicies(ns).Create(ctx, deny, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create policy: %v", err)
	}
	for name, vip := range vips {
		suite.Eventually(t, s.Timeouts.Converge, "the "+name+" VIP blocked", func() error { return blocked(name, vip) })
	}
	time.Sleep(s.Timeouts.Request) // connections in flight when the policy landed are done
	for name, vip := range vips {
		if err := blocked(name, vip); err != nil {
			t.Fatal(err)
		}
	}

	t.Log("allow ingress from the client LAN 198.51.100.0/24: both VIPs answer again")
	tcp := corev1.ProtocolTCP
	allow := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "allow-client-lan", Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "198.51.100.0/24"}}},
				Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp}},
			}},
		},
	}
	if _, err := s.Kube.NetworkingV1().NetworkPolicies(ns).Create(ctx, allow, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create policy: %v", err)
	}
	for name, vip := range vips {
		suite.Eventually(t, s.Timeouts.Converge, "GET the "+name+" VIP", func() error { return answers(name, vip) })
	}
}
