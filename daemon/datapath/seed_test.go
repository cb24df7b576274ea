package datapath

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestClusterHashSeed(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewSimpleClientset()
	first, err := ClusterHashSeed(ctx, kube, "bgplb-system")
	if err != nil {
		t.Fatal(err)
	}
	cm, err := kube.CoreV1().ConfigMaps("bgplb-system").Get(ctx, SeedConfigMap, metav1.GetOptions{})
	if err != nil || cm.Data[SeedKey] == "" {
		t.Fatalf("seed configmap = %+v, %v", cm, err)
	}
	// Every other daemon (node) reads the same seed.
	for range 3 {
		again, err := ClusterHashSeed(ctx, kube, "bgplb-system")
		if err != nil || again != first {
			t.Fatalf("second daemon got %d, %v; want %d", again, err, first)
		}
	}
	// Another cluster gets another seed (with overwhelming probability).
	other, err := ClusterHashSeed(ctx, fake.NewSimpleClientset(), "bgplb-system")
	if err != nil || other == first {
		t.Fatalf("another cluster got %d, %v; the first had %d", other, err, first)
	}
}
