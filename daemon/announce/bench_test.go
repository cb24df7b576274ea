package announce

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

// BenchmarkSync10kServices syncs 10k Local Services with a ready local endpoint each
// (announce + datapath through fakes): the cost of a full resync.
func BenchmarkSync10kServices(b *testing.B) {
	t := &testing.T{}
	f := newFixture(t)
	f.advert("all", v1alpha1.BGPAdvertisementSpec{WeightedECMP: true})
	const n = 10000
	f.pools.Update(&v1alpha1.LoadBalancerIPPool{ObjectMeta: f.poolMeta(), Spec: v1alpha1.LoadBalancerIPPoolSpec{
		Blocks: []v1alpha1.IPBlock{{CIDR: "203.0.113.0/24"}, {CIDR: "2001:db8:ffff::/112"}}}})
	keys := make([]string, n)
	for i := range n {
		name := fmt.Sprintf("s%d", i)
		f.service(name, fmt.Sprintf("2001:db8:ffff::%x", i+1), corev1.ServiceExternalTrafficPolicyLocal)
		f.endpoints(name, [3]string{fmt.Sprintf("198.19.1.%d", i%250+1), node, "ready"})
		keys[i] = "default/" + name
	}
	b.ResetTimer()
	for range b.N {
		for _, k := range keys {
			if err := f.a.SyncService(context.Background(), k); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	if got := len(f.announced()); got != n {
		b.Fatalf("%d prefixes announced, want %d", got, n)
	}
}
