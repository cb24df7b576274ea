package metrics

import (
	"strings"
	"testing"

	"k8s.io/component-base/metrics/testutil"
)

func TestPoolCollector(t *testing.T) {
	c := &poolCollector{src: func() []PoolSample {
		return []PoolSample{
			{Pool: "lab", Family: "IPv4", Total: 128, Used: 3},
			{Pool: "lab", Family: "IPv6", Total: 256, Used: 1},
		}
	}}
	want := `
# HELP bgplb_pool_addresses [ALPHA] Number of usable addresses of the pool, by IP family (LB-IPAM leader only).
# TYPE bgplb_pool_addresses gauge
bgplb_pool_addresses{family="IPv4",pool="lab"} 128
bgplb_pool_addresses{family="IPv6",pool="lab"} 256
# HELP bgplb_pool_addresses_used [ALPHA] Number of addresses of the pool assigned to at least one Service, by IP family (LB-IPAM leader only).
# TYPE bgplb_pool_addresses_used gauge
bgplb_pool_addresses_used{family="IPv4",pool="lab"} 3
bgplb_pool_addresses_used{family="IPv6",pool="lab"} 1
`
	if err := testutil.CustomCollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if err := testutil.CustomCollectAndCompare(&poolCollector{}, strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
}
