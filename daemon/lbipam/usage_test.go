package lbipam

import (
	"context"
	"slices"
	"testing"

	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/metrics"
)

func TestPoolUsage(t *testing.T) {
	f := newFixture(t, pool("p", "203.0.113.8/30"), pool("v6", "2001:db8:ffff::/120"),
		service("web", v1alpha1.DefaultLoadBalancerClass))
	must(t, f.c.Sync(context.Background(), "default/web"))
	got := f.c.PoolUsage()
	want := []metrics.PoolSample{
		{Pool: "p", Family: "IPv4", Total: 4, Used: 1},
		{Pool: "v6", Family: "IPv6", Total: 256, Used: 0},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("usage = %+v, want %+v", got, want)
	}
}
