package app

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/bgplb/bgplb/daemon/bgp/bgptest"
)

// TestStopSpeaker: a restart keeps the routes (graceful stop, no community); a cordoned
// or annotated node drains (community on, then a stop with a Cease).
func TestStopSpeaker(t *testing.T) {
	for _, tc := range []struct {
		name         string
		node         corev1.Node
		wantDrain    bool
		wantGraceful bool
	}{
		{"restart", corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}}, false, true},
		{"cordoned", corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: corev1.NodeSpec{Unschedulable: true}}, true, false},
		{"annotated", corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Annotations: map[string]string{DrainAnnotation: ""}}}, true, false},
		{"node unknown", corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("POD_NAMESPACE", "")
			kube := fake.NewClientset(&tc.node)
			sp := bgptest.NewFake()
			stopSpeaker(context.Background(), Config{NodeName: "n1"}, kube, sp)
			stopped, graceful := sp.Stopped()
			if !stopped || graceful != tc.wantGraceful || sp.GracefulShutdown() != tc.wantDrain {
				t.Fatalf("stopped %v graceful %v community %v; want graceful %v community %v", stopped, graceful,
					sp.GracefulShutdown(), tc.wantGraceful, tc.wantDrain)
			}
		})
	}
}
