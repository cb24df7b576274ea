//go:build apiserver

// This test validates the generated CRDs against a real kube-apiserver and etcd:
//
//	go test -tags apiserver ./daemon/apis/bgplb/v1alpha1
//
// BGPLB_K8S_BIN_DIR names the directory holding kube-apiserver (default
// /root/.cache/bgplb/bin); etcd is found in PATH or /usr/bin. A missing binary fails the test.
package v1alpha1_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/client/clientset/versioned"
	"github.com/bgplb/bgplb/internal/apiservertest"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// applyCRDs creates every CRD of manifests/base/crds and waits until each is Established.
func applyCRDs(t *testing.T, dyn dynamic.Interface) {
	t.Helper()
	ctx := context.Background()
	files, err := filepath.Glob("../../../../manifests/base/crds/bgplb.io_*.yaml")
	if err != nil || len(files) != 4 {
		t.Fatalf("expected 4 CRD files, got %v (%v)", files, err)
	}
	var names []string
	for _, f := range files {
		obj := readYAML(t, f)
		if _, err := dyn.Resource(crdGVR).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create CRD from %s: %v", f, err)
		}
		names = append(names, obj.GetName())
	}
	for _, n := range names {
		deadline := time.Now().Add(30 * time.Second)
		for !crdEstablished(t, dyn, n) {
			if time.Now().After(deadline) {
				t.Fatalf("CRD %s not Established", n)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func crdEstablished(t *testing.T, dyn dynamic.Interface, name string) bool {
	obj, err := dyn.Resource(crdGVR).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get CRD %s: %v", name, err)
	}
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func readYAML(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return parseYAML(t, string(b))
}

func parseYAML(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(s))
	if err != nil {
		t.Fatalf("yaml: %v\n%s", err, s)
	}
	var m map[string]any
	if err := json.Unmarshal(j, &m); err != nil {
		t.Fatalf("decode: %v\n%s", err, s)
	}
	return &unstructured.Unstructured{Object: m}
}

type objCase struct {
	name string
	kind string // resource
	yaml string // the object without apiVersion/kind/metadata
	// wantErr lists substrings the rejection must contain (field path and message);
	// empty means the object must be accepted.
	wantErr []string
}

var gvr = func(res string) schema.GroupVersionResource {
	return v1alpha1.SchemeGroupVersion.WithResource(res)
}

var kinds = map[string]string{
	"loadbalancerippools": "LoadBalancerIPPool",
	"bgppeers":            "BGPPeer",
	"bgpadvertisements":   "BGPAdvertisement",
}

func catalogue() []objCase {
	pool, peer, adv := "loadbalancerippools", "bgppeers", "bgpadvertisements"
	return []objCase{
		// G1: invalid pools.
		{"pool bad octets", pool, `spec: {blocks: [{cidr: 100.200.300.400/24}]}`, []string{"spec.blocks[0].cidr", "must be a valid CIDR"}},
		{"pool prefix 33", pool, `spec: {blocks: [{cidr: 1.2.3.0/33}]}`, []string{"spec.blocks[0].cidr", "must be a valid CIDR"}},
		{"pool host bits", pool, `spec: {blocks: [{cidr: 203.0.113.5/24}]}`, []string{"spec.blocks[0].cidr", "host bits"}},
		{"pool reversed range", pool, `spec: {blocks: [{start: 1.2.3.10, stop: 1.2.3.1}]}`, []string{"spec.blocks[0].stop", "start must not be greater than stop"}},
		{"pool reversed v6 range", pool, `spec: {blocks: [{cidr: 2001:db8:ffff::/112}, {start: "2001:db8:ffff::1:0", stop: "2001:db8:ffff::ff"}]}`, []string{"spec.blocks[1].stop", "start must not be greater than stop"}},
		{"pool reversed by one", pool, `spec: {blocks: [{start: 203.0.113.8, stop: 203.0.113.7}]}`, []string{"spec.blocks[0].stop", "start must not be greater than stop"}},
		{"pool reversed v6 first bit", pool, `spec: {blocks: [{start: "8000::", stop: "::1"}]}`, []string{"spec.blocks[0].stop", "start must not be greater than stop"}},
		{"pool reversed v6 last bit", pool, `spec: {blocks: [{start: "2001:db8::3", stop: "2001:db8::2"}]}`, []string{"spec.blocks[0].stop", "start must not be greater than stop"}},
		{"pool mixed families", pool, `spec: {blocks: [{start: 203.0.113.1, stop: "2001:db8::1"}]}`, []string{"spec.blocks[0].stop", "same IP family"}},
		{"pool empty blocks", pool, `spec: {blocks: []}`, []string{"spec.blocks", "at least 1"}},
		{"pool no blocks", pool, `spec: {}`, []string{"spec.blocks", "Required value"}},
		{"pool cidr and range", pool, `spec: {blocks: [{cidr: 203.0.113.0/24, start: 203.0.113.1, stop: 203.0.113.2}]}`, []string{"spec.blocks[0]", "exactly one of cidr or start/stop"}},
		{"pool start only", pool, `spec: {blocks: [{start: 203.0.113.1}]}`, []string{"spec.blocks[0].stop", "set together"}},
		{"pool bad start", pool, `spec: {blocks: [{start: 1.2.3, stop: 1.2.3.4}]}`, []string{"spec.blocks[0].start", "valid IP"}},
		{"pool good v4", pool, `spec: {blocks: [{cidr: 203.0.113.0/24}], avoidBuggyIPs: true}`, nil},
		{"pool good dual + ranges", pool, `spec: {blocks: [{cidr: "2001:db8:ffff::/112"}, {start: 198.51.100.10, stop: 198.51.100.10}, {start: "2001:db8:fffe::1", stop: "2001:db8:fffe::1:0"}], serviceSelector: {matchLabels: {team: a}}}`, nil},
		{"pool good adjacent v4 and v6", pool, `spec: {blocks: [{start: 203.0.113.7, stop: 203.0.113.8}, {start: "::1", stop: "8000::"}, {start: "2001:db8::2", stop: "2001:db8::3"}, {start: 0.0.0.0, stop: 255.255.255.255}]}`, nil},
		{"pool good v6 range across 64-bit halves", pool, `spec: {blocks: [{start: "2001:db8:fffd::ffff:ffff:ffff:ffff", stop: "2001:db8:fffd:1::"}]}`, nil},
		// G3: bad peers.
		{"peer ASN 0", peer, `spec: {localASN: 64513, peerASN: 0, peerAddress: 198.18.0.1}`, []string{"spec.peerASN", "greater than or equal to 1"}},
		{"peer ASN 2^32", peer, `spec: {localASN: 4294967296, peerASN: 64512, peerAddress: 198.18.0.1}`, []string{"spec.localASN", "less than or equal to 4294967295"}},
		{"peer ASN missing", peer, `spec: {localASN: 64513, peerAddress: 198.18.0.1}`, []string{"spec.peerASN", "Required value"}},
		{"peer address 1.2.3.400", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 1.2.3.400}`, []string{"spec.peerAddress", "valid IP"}},
		{"peer address 1.1.1", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 1.1.1}`, []string{"spec.peerAddress", "valid IP"}},
		{"peer keepalive > hold", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, timers: {holdTimeSeconds: 9, keepaliveTimeSeconds: 10}}`, []string{"spec.timers.keepaliveTimeSeconds", "less than holdTimeSeconds"}},
		{"peer keepalive == default hold", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, timers: {keepaliveTimeSeconds: 90}}`, []string{"spec.timers.keepaliveTimeSeconds", "less than holdTimeSeconds"}},
		{"peer hold 2s", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, timers: {holdTimeSeconds: 2, keepaliveTimeSeconds: 1}}`, []string{"spec.timers.holdTimeSeconds", "0 or at least 3"}},
		{"peer TTL 0", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, ebgpMultihopTTL: 0}`, []string{"spec.ebgpMultihopTTL", "greater than or equal to 1"}},
		{"peer TTL 256", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, ebgpMultihopTTL: 256}`, []string{"spec.ebgpMultihopTTL", "less than or equal to 255"}},
		{"peer GTSM 0 hops", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, ttlSecurityHops: 0}`, []string{"spec.ttlSecurityHops", "greater than or equal to 1"}},
		{"peer GTSM 255 hops", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, ttlSecurityHops: 255}`, []string{"spec.ttlSecurityHops", "less than or equal to 254"}},
		{"peer GTSM with multihop", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, ttlSecurityHops: 1, ebgpMultihopTTL: 2}`, []string{"mutually exclusive"}},
		{"peer good GTSM", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, ttlSecurityHops: 1}`, nil},
		{"peer both families", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, addressFamilies: [IPv4, IPv6]}`, nil},
		{"peer unknown family", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, addressFamilies: [IPv4, ipv6]}`, []string{"spec.addressFamilies[1]", "Unsupported value"}},
		{"peer family twice", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, addressFamilies: [IPv6, IPv6]}`, []string{"spec.addressFamilies[1]", "Duplicate value"}},
		{"peer no family", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, addressFamilies: []}`, []string{"spec.addressFamilies", "at least 1"}},
		{"peer maxPrefixes 0", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, maxPrefixes: 0}`, []string{"spec.maxPrefixes", "greater than or equal to 1"}},
		{"peer maxPrefixes too big", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, maxPrefixes: 1000001}`, []string{"spec.maxPrefixes", "less than or equal to 1000000"}},
		{"peer good maxPrefixes", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, maxPrefixes: 5000}`, nil},
		{"peer port 0", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, peerPort: 0}`, []string{"spec.peerPort", "greater than or equal to 1"}},
		{"peer bad source", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, sourceAddress: "198.18.0.0/24"}`, []string{"spec.sourceAddress", "valid IP"}},
		{"peer secret without key", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, passwordSecretRef: {name: s}}`, []string{"spec.passwordSecretRef.key", "Required value"}},
		{"peer good eBGP", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, timers: {holdTimeSeconds: 9, keepaliveTimeSeconds: 3, connectRetrySeconds: 5}, gracefulRestart: {enabled: true, restartTimeSeconds: 60}, passwordSecretRef: {name: bgp, key: password}}`, nil},
		{"peer good hold only", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, timers: {holdTimeSeconds: 9}}`, nil},
		{"peer hold 0 with keepalive", peer, `spec: {localASN: 64513, peerASN: 64512, peerAddress: 198.18.0.1, timers: {holdTimeSeconds: 0, keepaliveTimeSeconds: 5}}`, []string{"spec.timers.keepaliveTimeSeconds", "0 when holdTimeSeconds is 0"}},
		{"peer good hold 0", peer, `spec: {localASN: 4294967295, peerASN: 4294967295, peerAddress: "2001:db8:f::1", ebgpMultihopTTL: 255, timers: {holdTimeSeconds: 0, keepaliveTimeSeconds: 0}}`, nil},
		// Advertisements.
		{"adv community too big", adv, `spec: {communities: ["65536:1"]}`, []string{"spec.communities[0]", "AS:VALUE"}},
		{"adv community word", adv, `spec: {communities: ["64512:1", "nope"]}`, []string{"spec.communities[1]", "AS:VALUE"}},
		{"adv large community short", adv, `spec: {largeCommunities: ["1:2"]}`, []string{"spec.largeCommunities[0]", "GLOBAL:LOCAL1:LOCAL2"}},
		{"adv large community too big", adv, `spec: {largeCommunities: ["4294967296:1:1"]}`, []string{"spec.largeCommunities[0]", "GLOBAL:LOCAL1:LOCAL2"}},
		{"adv local pref negative", adv, `spec: {localPreference: -1}`, []string{"spec.localPreference", "greater than or equal to 0"}},
		{"adv good", adv, `spec: {communities: ["no-export", "64512:100", "65535:65535"], largeCommunities: ["4294967295:0:1"], localPreference: 200, weightedECMP: true, poolSelector: {matchLabels: {a: b}}}`, nil},
	}
}

func TestCRDsAgainstAPIServer(t *testing.T) {
	cfg := apiservertest.Start(t).Config
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("dynamic client: %v", err)
	}
	applyCRDs(t, dyn)
	ctx := context.Background()

	for i, c := range catalogue() {
		t.Run(c.name, func(t *testing.T) {
			obj := parseYAML(t, c.yaml)
			obj.SetAPIVersion(v1alpha1.SchemeGroupVersion.String())
			obj.SetKind(kinds[c.kind])
			obj.SetName(fmt.Sprintf("case-%d", i))
			_, err := dyn.Resource(gvr(c.kind)).Create(ctx, obj, metav1.CreateOptions{})
			if len(c.wantErr) == 0 {
				if err != nil {
					t.Fatalf("valid object rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("invalid object accepted:\n%s", c.yaml)
			}
			t.Logf("rejected as expected: %v", err)
			for _, want := range c.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}

	t.Run("typed clientset, defaults and status subresource", func(t *testing.T) {
		cs, err := versioned.NewForConfig(cfg)
		if err != nil {
			t.Fatalf("clientset: %v", err)
		}
		p, err := cs.BgplbV1alpha1().LoadBalancerIPPools().Create(ctx, &v1alpha1.LoadBalancerIPPool{
			ObjectMeta: metav1.ObjectMeta{Name: "typed"},
			Spec:       v1alpha1.LoadBalancerIPPoolSpec{Blocks: []v1alpha1.IPBlock{{CIDR: "203.0.113.0/28"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create pool: %v", err)
		}
		if p.Spec.AutoAssign == nil || !*p.Spec.AutoAssign {
			t.Errorf("autoAssign not defaulted to true: %v", p.Spec.AutoAssign)
		}
		p.Status.IPv4 = &v1alpha1.PoolCounts{Total: 16, Used: 3, Free: 13}
		p.Status.Conditions = []metav1.Condition{{Type: v1alpha1.PoolConditionReady, Status: metav1.ConditionTrue, Reason: "Ready", Message: "ok", LastTransitionTime: metav1.Now()}}
		if _, err := cs.BgplbV1alpha1().LoadBalancerIPPools().UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update status: %v", err)
		}
		peer, err := cs.BgplbV1alpha1().BGPPeers().Create(ctx, &v1alpha1.BGPPeer{
			ObjectMeta: metav1.ObjectMeta{Name: "typed"},
			Spec:       v1alpha1.BGPPeerSpec{LocalASN: 64513, PeerASN: 64512, PeerAddress: "198.18.0.1", Timers: &v1alpha1.BGPTimers{}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create peer: %v", err)
		}
		if peer.Spec.MaxPrefixes == nil || *peer.Spec.MaxPrefixes != 100 {
			t.Errorf("maxPrefixes not defaulted to 100: %v", peer.Spec.MaxPrefixes)
		}
		if peer.Spec.PeerPort == nil || *peer.Spec.PeerPort != 179 || *peer.Spec.Timers.HoldTimeSeconds != 90 ||
			*peer.Spec.Timers.ConnectRetrySeconds != 120 || peer.Spec.Timers.KeepaliveTimeSeconds != nil {
			t.Errorf("peer defaults not applied: %+v %+v", peer.Spec.PeerPort, peer.Spec.Timers)
		}
		ns, err := cs.BgplbV1alpha1().BGPNodeStates().Create(ctx, &v1alpha1.BGPNodeState{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create node state: %v", err)
		}
		ns.Status.Peers = []v1alpha1.BGPPeerState{{Name: "typed", Address: "198.18.0.1", PeerASN: 64512, LocalASN: 64513, State: v1alpha1.SessionEstablished, PrefixesSent: 2}}
		ns.Status.Announced = v1alpha1.PrefixCounts{IPv4: 10000, IPv6: 2}
		ns.Status.Datapath = &v1alpha1.DatapathSummary{Endpoints: 3}
		// The status stays small: more than MaxNodeStateErrors errors are refused.
		tooMany := ns.DeepCopy()
		for i := range v1alpha1.MaxNodeStateErrors + 1 {
			tooMany.Status.Errors = append(tooMany.Status.Errors, fmt.Sprintf("default/svc-%d: boom", i))
		}
		if _, err := cs.BgplbV1alpha1().BGPNodeStates().UpdateStatus(ctx, tooMany, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
			t.Errorf("update with %d errors: %v, want Invalid", len(tooMany.Status.Errors), err)
		}
		if _, err := cs.BgplbV1alpha1().BGPNodeStates().UpdateStatus(ctx, ns, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update node state status: %v", err)
		}

		// kubectl get: the server-side table has our printer columns with values.
		table := getTable(t, cfg, "/apis/bgplb.io/v1alpha1/loadbalancerippools/typed")
		for col, want := range map[string]string{"CIDRs": "203.0.113.0/28", "V4 Used": "3", "V4 Free": "13", "Ready": "True"} {
			if got := table[col]; got != want {
				t.Errorf("pool column %q = %q, want %q (table %v)", col, got, want, table)
			}
		}
		table = getTable(t, cfg, "/apis/bgplb.io/v1alpha1/bgppeers/typed")
		if table["Address"] != "198.18.0.1" || table["Peer ASN"] != "64512" || table["Local ASN"] != "64513" {
			t.Errorf("peer columns %v", table)
		}
		table = getTable(t, cfg, "/apis/bgplb.io/v1alpha1/bgpnodestates/node1")
		if table["Peers"] != "198.18.0.1" || table["States"] != "Established" || table["IPv4"] != "10000" || table["IPv6"] != "2" {
			t.Errorf("node state columns %v", table)
		}
	})

	t.Run("kubectl explain: OpenAPI v3 has the field docs", func(t *testing.T) {
		hc, err := rest.HTTPClientFor(cfg)
		if err != nil {
			t.Fatalf("http client: %v", err)
		}
		resp, err := hc.Get(cfg.Host + "/openapi/v3/apis/bgplb.io/v1alpha1")
		if err != nil {
			t.Fatalf("get openapi: %v", err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body) // a short read shows up as missing text below
		for _, want := range []string{"AvoidBuggyIPs skips IPv4 addresses ending in .0 or .255", "PeerASN is the AS number of the peer"} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("OpenAPI v3 document (HTTP %d) lacks %q", resp.StatusCode, want)
			}
		}
	})
}

// getTable fetches one object as a meta.k8s.io Table (what kubectl get prints) and returns
// column name -> cell text.
func getTable(t *testing.T, cfg *rest.Config, path string) map[string]string {
	t.Helper()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatalf("http client: %v", err)
	}
	req, err := http.NewRequest(http.MethodGet, cfg.Host+path, nil)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("get table %s: %v", path, err)
	}
	defer resp.Body.Close()
	var tbl metav1.Table
	if err := json.NewDecoder(resp.Body).Decode(&tbl); err != nil {
		t.Fatalf("decode table %s: %v", path, err)
	}
	if len(tbl.Rows) != 1 {
		t.Fatalf("table %s has %d rows", path, len(tbl.Rows))
	}
	out := map[string]string{}
	for i, c := range tbl.ColumnDefinitions {
		if i < len(tbl.Rows[0].Cells) {
			out[c.Name] = fmt.Sprint(tbl.Rows[0].Cells[i])
		}
	}
	return out
}
