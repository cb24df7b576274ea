//go:build apiserver

package manifests

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/client/clientset/versioned"
	"github.com/bgplb/bgplb/internal/apiservertest"
)

const (
	namespace   = "bgplb-system"
	nodeNameKey = "authentication.kubernetes.io/node-name"
	// Substrings of the policies' messages (base/admission.yaml).
	msgNodeState = "bgplbd may write only the BGPNodeState of its own node"
	msgService   = "bgplb-allocator may write only the status of LoadBalancer Services of class bgplb.io/bgp"
)

// TestRBACAgainstAPIServer applies manifests/base (CRDs, RBAC, admission policies, the
// DaemonSet) to a real kube-apiserver and acts as bgplbd with a ServiceAccount token
// bound to a bgplbd Pod on node1, as the kubelet mints it: the token writes node1's
// BGPNodeState and nothing else's and no Service status or Lease; the allocator's token
// (ServiceAccount bgplb-allocator) writes the status only of Services of bgplb's class;
// the admin is unaffected (docs/design.md, "Trust boundaries").
func TestRBACAgainstAPIServer(t *testing.T) {
	srv := apiservertest.Start(t)
	kubectl := apiservertest.Tool(t, "kubectl")
	var out bytes.Buffer
	cmd := exec.Command(kubectl, "--kubeconfig", srv.Kubeconfig, "apply", "--server-side", "-k", "base")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl apply -k base: %v\n%s", err, out.String())
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	admin := kubernetes.NewForConfigOrDie(srv.Config)
	adminCRD := versioned.NewForConfigOrDie(srv.Config)

	// What the kubelet has for a bgplbd pod: the Node, the Pod bound to it, and a
	// token bound to the Pod (the kubelet's projected token is the same TokenRequest).
	for _, n := range []string{"node1", "node2"} {
		if _, err := admin.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create node %s: %v", n, err)
		}
	}
	pod, err := admin.CoreV1().Pods(namespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "bgplbd-node1"},
		Spec: corev1.PodSpec{
			ServiceAccountName: "bgplbd", NodeName: "node1",
			Containers: []corev1.Container{{Name: "bgplbd", Image: "ghcr.io/bgplb/bgplb:v0.1.0"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	tokenFor := func(sa string, bound *authenticationv1.BoundObjectReference) *rest.Config {
		t.Helper()
		tr, err := admin.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
			Spec: authenticationv1.TokenRequestSpec{BoundObjectRef: bound},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("TokenRequest for %s: %v", sa, err)
		}
		cfg := rest.CopyConfig(srv.Config)
		cfg.BearerToken = tr.Status.Token
		return cfg
	}
	token := func(bound *authenticationv1.BoundObjectReference) *rest.Config { return tokenFor("bgplbd", bound) }
	// The allocator Deployment's pod and its token (ServiceAccount bgplb-allocator).
	allocPod, err := admin.CoreV1().Pods(namespace).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "bgplb-allocator-0"},
		Spec: corev1.PodSpec{
			ServiceAccountName: "bgplb-allocator", NodeName: "node2",
			Containers: []corev1.Container{{Name: "allocator", Image: "ghcr.io/bgplb/bgplb:v0.1.0"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create allocator pod: %v", err)
	}
	alloc := kubernetes.NewForConfigOrDie(tokenFor("bgplb-allocator",
		&authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: allocPod.Name, UID: allocPod.UID}))
	podCfg := token(&authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID})
	unboundCfg := token(nil)
	sa, saCRD := kubernetes.NewForConfigOrDie(podCfg), versioned.NewForConfigOrDie(podCfg)

	// The API server puts the pod's node into the token's user (ServiceAccountTokenPodNodeInfo).
	review, err := sa.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectReview: %v", err)
	}
	ui := review.Status.UserInfo
	if ui.Username != "system:serviceaccount:bgplb-system:bgplbd" || len(ui.Extra[nodeNameKey]) != 1 || ui.Extra[nodeNameKey][0] != "node1" {
		t.Fatalf("pod-bound token's user = %s with extra %v, want bgplbd with %s=[node1]", ui.Username, ui.Extra, nodeNameKey)
	}

	// The policies are loaded asynchronously: enforced once a dry-run write of node2's
	// BGPNodeState is refused. (Their status.typeChecking is written by
	// kube-controller-manager, which does not run here; the writes below that must
	// succeed show the expressions evaluate.)
	nodeState := func(name string) *v1alpha1.BGPNodeState {
		return &v1alpha1.BGPNodeState{ObjectMeta: metav1.ObjectMeta{Name: name}}
	}
	waitFor(ctx, t, "node-state policy enforced", func() (bool, string) {
		_, err := saCRD.BgplbV1alpha1().BGPNodeStates().Create(ctx, nodeState("node2"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), msgNodeState), errString(err)
	})

	// BGPNodeState: node1 (own) yes, with create, status update and status patch.
	nodeStates := saCRD.BgplbV1alpha1().BGPNodeStates()
	ns1, err := nodeStates.Create(ctx, nodeState("node1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("bgplbd on node1: create BGPNodeState node1: %v", err)
	}
	ns1.Status.Version = "v0.1.0"
	if _, err := nodeStates.UpdateStatus(ctx, ns1, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("bgplbd on node1: update status of BGPNodeState node1: %v", err)
	}
	if _, err := nodeStates.Patch(ctx, "node1", types.MergePatchType, []byte(`{"status":{"version":"v0.1.1"}}`), metav1.PatchOptions{}, "status"); err != nil {
		t.Fatalf("bgplbd on node1: patch status of BGPNodeState node1: %v", err)
	}
	// Another node's: refused by the policy, whatever the verb; the admin may.
	ns2, err := adminCRD.BgplbV1alpha1().BGPNodeStates().Create(ctx, nodeState("node2"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("admin: create BGPNodeState node2: %v", err)
	}
	wantNode2 := msgNodeState + ": its token is bound to node node1, not node2"
	refused(t, "create BGPNodeState node3", wantNode2[:len(wantNode2)-1]+"3", func() error {
		_, err := nodeStates.Create(ctx, nodeState("node3"), metav1.CreateOptions{})
		return err
	})
	ns2.Status.Version = "forged"
	refused(t, "update status of BGPNodeState node2", wantNode2, func() error {
		_, err := nodeStates.UpdateStatus(ctx, ns2, metav1.UpdateOptions{})
		return err
	})
	refused(t, "patch status of BGPNodeState node2", wantNode2, func() error {
		_, err := nodeStates.Patch(ctx, "node2", types.MergePatchType, []byte(`{"status":{"version":"forged"}}`), metav1.PatchOptions{}, "status")
		return err
	})
	refused(t, "update BGPNodeState node2", wantNode2, func() error {
		_, err := nodeStates.Update(ctx, ns2, metav1.UpdateOptions{})
		return err
	})
	// RBAC grants no delete at all.
	refused(t, "delete BGPNodeState node1", "cannot delete resource", func() error {
		return nodeStates.Delete(ctx, "node1", metav1.DeleteOptions{})
	})
	// A token that names no node (unbound, like a legacy Secret token) writes none.
	refused(t, "unbound token: patch status of BGPNodeState node1", msgNodeState+": its token is not bound to a node, not node1", func() error {
		_, err := versioned.NewForConfigOrDie(unboundCfg).BgplbV1alpha1().BGPNodeStates().
			Patch(ctx, "node1", types.MergePatchType, []byte(`{"status":{"version":"forged"}}`), metav1.PatchOptions{}, "status")
		return err
	})
	if _, err := adminCRD.BgplbV1alpha1().BGPNodeStates().Patch(ctx, "node2", types.MergePatchType, []byte(`{"status":{"version":"admin"}}`), metav1.PatchOptions{}, "status"); err != nil {
		t.Errorf("admin: patch status of BGPNodeState node2: %v", err)
	}
	if got, err := adminCRD.BgplbV1alpha1().BGPNodeStates().Get(ctx, "node1", metav1.GetOptions{}); err != nil || got.Status.Version != "v0.1.1" {
		t.Errorf("BGPNodeState node1 after the refused writes: %v (err %v), want version v0.1.1", got.Status, err)
	}

	// Service status: bgplb's class yes; another class, no class, not LoadBalancer no.
	class := func(c string) *string { return &c }
	services := []struct {
		name    string
		typ     corev1.ServiceType
		class   *string
		allowed bool
	}{
		{"ours", corev1.ServiceTypeLoadBalancer, class(v1alpha1.DefaultLoadBalancerClass), true},
		{"other-class", corev1.ServiceTypeLoadBalancer, class("example.com/other"), false},
		{"no-class", corev1.ServiceTypeLoadBalancer, nil, false},
		{"cluster-ip", corev1.ServiceTypeClusterIP, nil, false},
	}
	condition := []byte(`{"status":{"conditions":[{"type":"bgplb.io/Announced","status":"True","reason":"Test",` +
		`"message":"patched","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`)
	created := map[string]*corev1.Service{}
	for _, s := range services {
		svc, err := admin.CoreV1().Services("default").Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: s.name},
			Spec: corev1.ServiceSpec{Type: s.typ, LoadBalancerClass: s.class,
				Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("admin: create service %s: %v", s.name, err)
		}
		created[s.name] = svc
	}
	// The DaemonSet's ServiceAccount may write no Service status at all (RBAC), nor the
	// Lease; only the allocator's may.
	refused(t, "bgplbd: patch status of service ours", `cannot patch resource "services/status"`, func() error {
		_, err := sa.CoreV1().Services("default").Patch(ctx, "ours", types.MergePatchType, condition, metav1.PatchOptions{}, "status")
		return err
	})
	refused(t, "bgplbd: update status of service ours", `cannot update resource "services/status"`, func() error {
		_, err := sa.CoreV1().Services("default").UpdateStatus(ctx, created["ours"], metav1.UpdateOptions{})
		return err
	})
	refused(t, "bgplbd: create the LB-IPAM Lease", `cannot create resource "leases"`, func() error {
		_, err := sa.CoordinationV1().Leases(namespace).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "bgplb-ipam"}}, metav1.CreateOptions{})
		return err
	})
	refused(t, "bgplbd: patch status of LoadBalancerIPPool", `cannot patch resource "loadbalancerippools/status"`, func() error {
		_, err := saCRD.BgplbV1alpha1().LoadBalancerIPPools().Patch(ctx, "any", types.MergePatchType, []byte(`{"status":{}}`), metav1.PatchOptions{}, "status")
		return err
	})
	if _, err := alloc.CoordinationV1().Leases(namespace).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "bgplb-ipam"}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("allocator: create the LB-IPAM Lease: %v", err)
	}
	sa = alloc // the allocator's writes below
	waitFor(ctx, t, "service-status policy enforced", func() (bool, string) {
		_, err := sa.CoreV1().Services("default").Patch(ctx, "other-class", types.MergePatchType, condition,
			metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}, "status")
		return err != nil && strings.Contains(err.Error(), msgService), errString(err)
	})
	for _, s := range services {
		svc := created[s.name]
		// A condition, not an ingress IP: the API server refuses ingress on a ClusterIP
		// Service before admission, and bgplbd writes both.
		svc.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionIPAllocated, Status: metav1.ConditionTrue,
			Reason: "Test", Message: "written by bgplbd", LastTransitionTime: metav1.Now()}}
		update := func() error {
			_, err := sa.CoreV1().Services("default").UpdateStatus(ctx, svc, metav1.UpdateOptions{})
			return err
		}
		patch := func() error {
			_, err := sa.CoreV1().Services("default").Patch(ctx, s.name, types.MergePatchType, condition, metav1.PatchOptions{}, "status")
			return err
		}
		if s.allowed {
			svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "203.0.113.7"}}
			if err := update(); err != nil {
				t.Errorf("bgplbd: update status of service %s: %v", s.name, err)
			}
			if err := patch(); err != nil {
				t.Errorf("bgplbd: patch status of service %s: %v", s.name, err)
			}
			continue
		}
		want := msgService + ", not default/" + s.name
		refused(t, "update status of service "+s.name, want, update)
		refused(t, "patch status of service "+s.name, want, patch)
		if _, err := admin.CoreV1().Services("default").Patch(ctx, s.name, types.MergePatchType, condition, metav1.PatchOptions{}, "status"); err != nil {
			t.Errorf("admin: patch status of service %s: %v", s.name, err)
		}
	}
	if got, err := admin.CoreV1().Services("default").Get(ctx, "ours", metav1.GetOptions{}); err != nil ||
		len(got.Status.LoadBalancer.Ingress) != 1 || got.Status.LoadBalancer.Ingress[0].IP != "203.0.113.7" {
		t.Errorf("service ours after bgplbd's status writes: %+v (err %v), want ingress 203.0.113.7", got.Status, err)
	}
	// RBAC: no write to a Service itself.
	refused(t, "patch service ours", `cannot patch resource "services"`, func() error {
		_, err := sa.CoreV1().Services("default").Patch(ctx, "ours", types.MergePatchType, []byte(`{"spec":{"externalTrafficPolicy":"Local"}}`), metav1.PatchOptions{})
		return err
	})
}

// refused asserts that write fails as Forbidden with a message containing want.
func refused(t *testing.T, what, want string, write func() error) {
	t.Helper()
	err := write()
	switch {
	case err == nil:
		t.Errorf("bgplbd: %s succeeded, want it refused (%q)", what, want)
	case !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err):
		t.Errorf("bgplbd: %s: %v, want Forbidden", what, err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("bgplbd: %s refused with %q, want it to say %q", what, err, want)
	default:
		t.Logf("bgplbd: %s refused: %v", what, err)
	}
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	var last string
	for {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within the test's time (last: %s)", what, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
