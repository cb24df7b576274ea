package watch

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"

	crdfake "github.com/bgplb/bgplb/daemon/client/clientset/versioned/fake"
)

// BenchmarkCacheMemory measures the heap the informer caches of 10k Services with 100k
// endpoints take (objects shaped like real ones, with managedFields and a large
// last-applied annotation that the transforms drop). Run:
//
//	go test -run '^$' -bench CacheMemory -benchtime 1x ./daemon/watch
func BenchmarkCacheMemory(b *testing.B) {
	const services, perService = 10000, 10
	for range b.N {
		var objs []kruntime.Object
		big := string(make([]byte, 2048))
		for i := range services {
			name := fmt.Sprintf("svc-%d", i)
			objs = append(objs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name,
				Annotations:   map[string]string{"kubectl.kubernetes.io/last-applied-configuration": big},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}}},
				Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}})
			s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name + "-x",
				Labels:        map[string]string{discoveryv1.LabelServiceName: name},
				ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager"}}},
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080)}}}
			for j := range perService {
				s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{
					Addresses:  []string{fmt.Sprintf("198.19.%d.%d", j+1, i%250+1)},
					NodeName:   ptr.To(fmt.Sprintf("node%d", j+1)),
					Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
					TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: fmt.Sprintf("%s-%d", name, j), UID: "0123456789abcdef"},
				})
			}
			objs = append(objs, s)
		}
		kube := fake.NewSimpleClientset(objs...)
		objs = nil
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)

		ctx, cancel := context.WithCancel(context.Background())
		c, err := NewCaches(kube, crdfake.NewSimpleClientset(), Options{NodeName: "node1"})
		if err != nil {
			b.Fatal(err)
		}
		c.Start(ctx)
		if !c.WaitForCacheSync(ctx) {
			b.Fatal("no sync")
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		if n := len(c.ServiceKeys()); n != services {
			b.Fatalf("%d services cached", n)
		}
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-cache")
		cancel()
	}
}
