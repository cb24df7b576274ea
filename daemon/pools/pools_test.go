package pools

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

func TestParseBlockErrorsNameTheField(t *testing.T) {
	cases := map[string]struct {
		b     v1alpha1.IPBlock
		field string
	}{
		"bad octets":    {v1alpha1.IPBlock{CIDR: "100.200.300.400/24"}, "cidr"},
		"bad length":    {v1alpha1.IPBlock{CIDR: "1.2.3.0/33"}, "cidr"},
		"host bits":     {v1alpha1.IPBlock{CIDR: "203.0.113.1/24"}, "cidr"},
		"reversed":      {v1alpha1.IPBlock{Start: "1.2.3.10", Stop: "1.2.3.1"}, "stop"},
		"mixed family":  {v1alpha1.IPBlock{Start: "1.2.3.1", Stop: "2001:db8::1"}, "stop"},
		"bad start":     {v1alpha1.IPBlock{Start: "1.2.3", Stop: "1.2.3.1"}, "start"},
		"only start":    {v1alpha1.IPBlock{Start: "1.2.3.1"}, "stop"},
		"both":          {v1alpha1.IPBlock{CIDR: "1.2.3.0/24", Start: "1.2.3.1", Stop: "1.2.3.2"}, "cidr"},
		"none":          {v1alpha1.IPBlock{}, "cidr"},
		"v4-mapped v6":  {v1alpha1.IPBlock{CIDR: "::ffff:1.2.3.0/120"}, "cidr"},
		"zone in range": {v1alpha1.IPBlock{Start: "fe80::1%eth0", Stop: "fe80::2"}, "start"},
	}
	for name, c := range cases {
		_, _, err := ParseBlock(c.b)
		if err == nil || !strings.HasPrefix(err.Error(), c.field+":") {
			t.Errorf("%s: error %v, want one starting with %q", name, err, c.field+":")
		}
	}
	first, last, err := ParseBlock(v1alpha1.IPBlock{CIDR: "2001:db8:ffff::/112"})
	if err != nil || first.String() != "2001:db8:ffff::" || last.String() != "2001:db8:ffff::ffff" {
		t.Errorf("v6 cidr: %v %v %v", first, last, err)
	}
	first, last, err = ParseBlock(v1alpha1.IPBlock{CIDR: "203.0.113.0/24"})
	if err != nil || first.String() != "203.0.113.0" || last.String() != "203.0.113.255" {
		t.Errorf("v4 cidr: %v %v %v", first, last, err)
	}
}

func prefixStrings(ps []netip.Prefix) []string {
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return s
}

func TestBlockPrefixesOfRange(t *testing.T) {
	got, err := BlockPrefixes(v1alpha1.IPBlock{Start: "203.0.113.10", Stop: "203.0.113.20"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"203.0.113.10/31", "203.0.113.12/30", "203.0.113.16/30", "203.0.113.20/32"}
	if s := prefixStrings(got); !reflect.DeepEqual(s, want) {
		t.Fatalf("prefixes = %v, want %v", s, want)
	}
	got, err = BlockPrefixes(v1alpha1.IPBlock{Start: "2001:db8:ffff::", Stop: "2001:db8:ffff::ffff"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].String() != "2001:db8:ffff::/112" {
		t.Fatalf("v6 range = %v", got)
	}
}

func pool(name string, blocks ...v1alpha1.IPBlock) *v1alpha1.LoadBalancerIPPool {
	p := &v1alpha1.LoadBalancerIPPool{Spec: v1alpha1.LoadBalancerIPPoolSpec{Blocks: blocks}}
	p.Name = name
	return p
}

func TestPrefixesAndContaining(t *testing.T) {
	ps := []*v1alpha1.LoadBalancerIPPool{
		pool("b", v1alpha1.IPBlock{CIDR: "2001:db8:ffff::/112"}, v1alpha1.IPBlock{CIDR: "203.0.113.0/24"}),
		pool("a", v1alpha1.IPBlock{Start: "198.51.100.1", Stop: "198.51.100.2"}, v1alpha1.IPBlock{CIDR: "203.0.113.0/24"}),
		pool("bad", v1alpha1.IPBlock{CIDR: "203.0.113.1/24"}),
	}
	want := []string{"198.51.100.1/32", "198.51.100.2/32", "203.0.113.0/24", "2001:db8:ffff::/112"}
	if s := prefixStrings(Prefixes(ps)); !reflect.DeepEqual(s, want) {
		t.Errorf("Prefixes = %v, want %v", s, want)
	}
	for ip, want := range map[string]string{"203.0.113.7": "b,a", "198.51.100.2": "a", "198.51.100.3": "", "2001:db8:ffff::1": "b"} {
		var names []string
		for _, p := range Containing(ps, netip.MustParseAddr(ip)) {
			names = append(names, p.Name)
		}
		if got := strings.Join(names, ","); got != want {
			t.Errorf("Containing(%s) = %q, want %q", ip, got, want)
		}
	}
}

func TestSelectors(t *testing.T) {
	ls := map[string]string{"a": "1"}
	for _, c := range []struct {
		sel        *metav1.LabelSelector
		match, all bool
		err        bool
	}{
		{nil, true, true, false},
		{&metav1.LabelSelector{}, true, true, false},
		{&metav1.LabelSelector{MatchLabels: map[string]string{"a": "1"}}, true, false, false},
		{&metav1.LabelSelector{MatchLabels: map[string]string{"a": "2"}}, false, false, false},
		{&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Bad"}}}, false, false, true},
	} {
		ok, err := Matches(c.sel, ls)
		if ok != c.match || (err != nil) != c.err || SelectsAll(c.sel) != c.all {
			t.Errorf("%v: Matches = %v, %v; SelectsAll = %v", c.sel, ok, err, SelectsAll(c.sel))
		}
	}
}
