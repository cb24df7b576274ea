package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/conformance/suite"
)

// The CNI-CHAINED tests look at the nodes themselves through the node adapter
// (suite.NodeExec): the endpoints bgplbd registered (`bgplbctl status -o json`), the
// pins the plugin left in bpffs, and the plugin binary the DaemonSet installed, run by
// hand as the runtime runs it. The paths are the production defaults the DaemonSet
// installs to.
const (
	cniPluginPath = "/opt/cni/bin/bgplb"
	cniConfDir    = "/etc/cni/net.d"
	cniBinDir     = "/opt/cni/bin"
)

func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "CNIChainedAddDel",
		ID:        "F1 F4",
		Description: "for every pod the test creates (two per node) the runtime's ADD through the chained plugin registered it " +
			"with bgplbd (pod, IPs, host veth) and pinned its program link; deleting the pods (the runtime's DEL) " +
			"removes the registrations and the pins",
		Profile:  "CNI-CHAINED",
		Features: []suite.Feature{suite.FeatureCNIAddDel},
		Needs:    []suite.Adapter{suite.AdapterNodeExec},
		Test:     testCNIChainedAddDel,
	})
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "CNIChainedCheck",
		ID:        "F5",
		Description: "the installed plugin's CHECK of a running pod (its netns, host veth, record, link and " +
			"registration) exits 0; CHECK of an attachment never added fails with code 111; CHECK at cniVersion 0.3.1 is refused (code 1)",
		Profile:  "CNI-CHAINED",
		Features: []suite.Feature{suite.FeatureCNICheck},
		Needs:    []suite.Adapter{suite.AdapterNodeExec},
		Test:     testCNIChainedCheck,
	})
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "CNIChainedBadInput",
		ID:        "F2 G7",
		Description: "the installed plugin answers malformed stdin and environment with the spec's codes (6, 7, 4) " +
			"and a JSON error, and not chained with 7 'must be called as chained plugin'; nothing is registered",
		Profile:  "CNI-CHAINED",
		Features: []suite.Feature{suite.FeatureCNIBadInput},
		Needs:    []suite.Adapter{suite.AdapterNodeExec},
		Test:     testCNIChainedBadInput,
	})
}

// cniEndpoint is what the CNI-CHAINED tests read of a registered endpoint
// (`bgplbctl status -o json`, .endpoints[]).
type cniEndpoint struct {
	ContainerID   string       `json:"containerID"`
	IfName        string       `json:"ifName"`
	Netns         string       `json:"netns"`
	PodNamespace  string       `json:"podNamespace"`
	PodName       string       `json:"podName"`
	PodUID        string       `json:"podUID"`
	IPs           []netip.Addr `json:"ips"`
	HostIfName    string       `json:"hostIfName"`
	LinkPin       string       `json:"linkPin"`
	DatapathError string       `json:"datapathError"`
}

// nodeEndpoints lists the endpoints registered with bgplbd on node.
func nodeEndpoints(ctx context.Context, s *suite.Suite, node string) ([]cniEndpoint, error) {
	out, err := s.NodeExec.NodeExec(ctx, node, nil, "bgplbctl", "status", "-o", "json")
	var st struct {
		Endpoints []cniEndpoint `json:"endpoints"`
	}
	if jerr := json.Unmarshal(out, &st); jerr != nil {
		if err != nil {
			return nil, fmt.Errorf("bgplbctl status on %s: %w", node, err)
		}
		return nil, fmt.Errorf("decode bgplbctl status of %s: %w: %q", node, jerr, out)
	}
	// status exits non-zero when a part (e.g. the BGPNodeState, read with the node's
	// own credentials) is unreadable; the endpoints come from the daemon's socket.
	if st.Endpoints == nil {
		return nil, fmt.Errorf("bgplbctl status on %s listed no endpoints part: %v", node, err)
	}
	return st.Endpoints, nil
}

// podEndpoint returns pod's registration among eps.
func podEndpoint(eps []cniEndpoint, p corev1.Pod) (cniEndpoint, bool) {
	for _, e := range eps {
		if e.PodNamespace == p.Namespace && e.PodName == p.Name && e.PodUID == string(p.UID) {
			return e, true
		}
	}
	return cniEndpoint{}, false
}

// checkRegistered fails unless pod's registration on its node matches the pod and its
// program link is pinned.
func checkRegistered(ctx context.Context, s *suite.Suite, eps []cniEndpoint, p corev1.Pod) (cniEndpoint, error) {
	e, ok := podEndpoint(eps, p)
	if !ok {
		return e, fmt.Errorf("pod %s/%s (uid %s) is not registered on %s", p.Namespace, p.Name, p.UID, p.Spec.NodeName)
	}
	for _, ip := range p.Status.PodIPs {
		a, err := netip.ParseAddr(ip.IP)
		if err != nil || !slices.Contains(e.IPs, a) {
			return e, fmt.Errorf("pod %s/%s has IP %s, its registration on %s has %v", p.Namespace, p.Name, ip.IP, p.Spec.NodeName, e.IPs)
		}
	}
	if len(p.Status.PodIPs) == 0 {
		return e, fmt.Errorf("pod %s/%s has no IP", p.Namespace, p.Name)
	}
	if e.DatapathError != "" || e.HostIfName == "" || e.LinkPin == "" || e.ContainerID == "" {
		return e, fmt.Errorf("pod %s/%s's registration on %s is incomplete or not datapath-ready: %+v", p.Namespace, p.Name, p.Spec.NodeName, e)
	}
	if _, err := s.NodeExec.NodeExec(ctx, p.Spec.NodeName, nil, "test", "-e", e.LinkPin); err != nil {
		return e, fmt.Errorf("pod %s/%s's program link pin %s is missing on %s: %w", p.Namespace, p.Name, e.LinkPin, p.Spec.NodeName, err)
	}
	return e, nil
}

func testCNIChainedAddDel(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-cni")
	var deps []string
	for i := range s.Nodes {
		deps = append(deps, s.Backend(t, ns, "cni", s.NodeName(i+1), 2))
	}
	var pods []corev1.Pod
	for _, d := range deps {
		pods = append(pods, s.WaitPods(t, ns, d, 2)...)
	}
	// Pods that started before bgplbd chained the plugin (e.g. the allocator, applied
	// with the DaemonSet) went through the primary CNI alone, as on any cluster that
	// installs a chained plugin later: only pods created after the chaining are checked.
	checked := map[string]bool{}
	regs := map[string]cniEndpoint{} // pod UID → registration
	for _, p := range pods {
		if checked[string(p.UID)] {
			continue
		}
		checked[string(p.UID)] = true
		suite.Eventually(t, s.Timeouts.Converge, "registration of pod "+p.Namespace+"/"+p.Name, func() error {
			// A pod listed before it got its IP: read it again.
			cur, err := s.Kube.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			eps, err := nodeEndpoints(ctx, s, cur.Spec.NodeName)
			if err != nil {
				return err
			}
			e, err := checkRegistered(ctx, s, eps, *cur)
			if err == nil {
				regs[string(cur.UID)] = e
			}
			return err
		})
	}
	t.Logf("%d pods registered with their program links pinned", len(regs))

	// DEL: the runtime tears the sandboxes down when the pods go.
	for _, d := range deps {
		s.Scale(t, ns, d, 0)
	}
	for _, p := range pods {
		e, ok := regs[string(p.UID)]
		if !ok {
			continue
		}
		node := p.Spec.NodeName
		suite.Eventually(t, s.Timeouts.Converge, "DEL of pod "+p.Name+" on "+node, func() error {
			eps, err := nodeEndpoints(ctx, s, node)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(eps, func(x cniEndpoint) bool { return x.ContainerID == e.ContainerID || x.PodUID == e.PodUID }) {
				return fmt.Errorf("pod %s is still registered on %s", p.Name, node)
			}
			if _, err := s.NodeExec.NodeExec(ctx, node, nil, "test", "!", "-e", e.LinkPin); err != nil {
				return fmt.Errorf("pin %s of deleted pod %s still on %s: %w", e.LinkPin, p.Name, node, err)
			}
			return nil
		})
	}
}

// chainedConf returns node's chained network configuration: the name and cniVersion of
// the runtime's conflist (the lexicographically first file of the conf dir, as
// containerd and bgplbd pick it) and its bgplb plugin entry.
func chainedConf(ctx context.Context, t *testing.T, s *suite.Suite, node string) map[string]any {
	t.Helper()
	out, err := s.NodeExec.NodeExec(ctx, node, nil, "ls", cniConfDir)
	if err != nil {
		t.Fatalf("list %s on %s: %v", cniConfDir, node, err)
	}
	var files []string
	for _, f := range strings.Fields(string(out)) {
		if ext := path.Ext(f); ext == ".conflist" || ext == ".conf" || ext == ".json" {
			files = append(files, f)
		}
	}
	slices.Sort(files)
	if len(files) == 0 {
		t.Fatalf("no CNI configuration in %s on %s", cniConfDir, node)
	}
	data, err := s.NodeExec.NodeExec(ctx, node, nil, "cat", path.Join(cniConfDir, files[0]))
	if err != nil {
		t.Fatalf("read %s on %s: %v", files[0], node, err)
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatalf("decode %s on %s: %v", files[0], node, err)
	}
	if len(list.Plugins) == 0 || list.Plugins[len(list.Plugins)-1]["type"] != "bgplb" {
		t.Fatalf("%s on %s does not chain bgplb last: %s", files[0], node, data)
	}
	conf := list.Plugins[len(list.Plugins)-1]
	conf["cniVersion"], conf["name"] = list.CNIVersion, list.Name
	return conf
}

// prevResultOf is the primary plugin's result for registered endpoint e, as the
// runtime passes it to the chained plugin.
func prevResultOf(version string, e cniEndpoint) map[string]any {
	var ips []any
	for _, ip := range e.IPs {
		bits := 32
		if ip.Is6() {
			bits = 128
		}
		ips = append(ips, map[string]any{"address": netip.PrefixFrom(ip, bits).String(), "interface": 1})
	}
	return map[string]any{"cniVersion": version,
		"interfaces": []any{map[string]any{"name": e.HostIfName}, map[string]any{"name": e.IfName, "sandbox": e.Netns}},
		"ips":        ips}
}

// cniError is the JSON error a CNI plugin prints on failure.
type cniError struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details"`
}

// runPlugin runs the installed plugin on node with env and stdin. It returns the
// decoded error (nil on exit 0).
func runPlugin(ctx context.Context, s *suite.Suite, node string, env []string, stdin []byte) (*cniError, string, error) {
	argv := append(append([]string{"env", "-i"}, env...), cniPluginPath)
	out, err := s.NodeExec.NodeExec(ctx, node, stdin, argv...)
	if err == nil {
		return nil, string(out), nil
	}
	var ce cniError
	if jerr := json.Unmarshal(out, &ce); jerr != nil || ce.Code == 0 {
		return nil, string(out), fmt.Errorf("%v, and stdout %q is no CNI error", err, out)
	}
	return &ce, string(out), nil
}

// livePod starts one backend pod on node 1 and returns its registration and the
// node's chained configuration.
func livePod(ctx context.Context, t *testing.T, s *suite.Suite, ns string) (string, cniEndpoint, map[string]any) {
	t.Helper()
	node := s.NodeName(1)
	d := s.Backend(t, ns, "cni", node, 1)
	p := s.WaitPods(t, ns, d, 1)[0]
	var e cniEndpoint
	suite.Eventually(t, s.Timeouts.Converge, "registration of pod "+p.Name, func() error {
		eps, err := nodeEndpoints(ctx, s, node)
		if err != nil {
			return err
		}
		e, err = checkRegistered(ctx, s, eps, p)
		return err
	})
	return node, e, chainedConf(ctx, t, s, node)
}

// env is the plugin's environment for command on e's attachment with container id.
func (e cniEndpoint) env(command, id string) []string {
	return []string{"CNI_COMMAND=" + command, "CNI_CONTAINERID=" + id, "CNI_NETNS=" + e.Netns, "CNI_IFNAME=" + e.IfName, "CNI_PATH=" + cniBinDir}
}

func withConf(conf map[string]any, set map[string]any) []byte {
	c := map[string]any{}
	for k, v := range conf {
		c[k] = v
	}
	for k, v := range set {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	data, _ := json.Marshal(c) // maps of JSON values
	return data
}

func testCNIChainedCheck(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-cni-check")
	node, e, conf := livePod(ctx, t, s, ns)
	version, _ := conf["cniVersion"].(string)
	ce, out, err := runPlugin(ctx, s, node, e.env("CHECK", e.ContainerID), withConf(conf, map[string]any{"prevResult": prevResultOf(version, e)}))
	if err != nil || ce != nil {
		t.Fatalf("CHECK of the running pod on %s: %+v %v (stdout %q)", node, ce, err, out)
	}
	ce, out, err = runPlugin(ctx, s, node, e.env("CHECK", "conformance-never-added"), withConf(conf, map[string]any{"prevResult": prevResultOf(version, e)}))
	if err != nil || ce == nil || ce.Code != 111 {
		t.Fatalf("CHECK of an attachment never added on %s: want code 111, got %+v %v (stdout %q)", node, ce, err, out)
	}
	ce, out, err = runPlugin(ctx, s, node, e.env("CHECK", e.ContainerID), withConf(conf, map[string]any{"cniVersion": "0.3.1", "prevResult": prevResultOf("0.3.1", e)}))
	if err != nil || ce == nil || ce.Code != 1 {
		t.Fatalf("CHECK at cniVersion 0.3.1 on %s: want code 1, got %+v %v (stdout %q)", node, ce, err, out)
	}
}

func testCNIChainedBadInput(t *testing.T, s *suite.Suite) {
	ctx := context.Background()
	ns := s.Namespace(t, "conf-cni-bad")
	node, e, conf := livePod(ctx, t, s, ns)
	version, _ := conf["cniVersion"].(string)
	const id = "conformance-bad-input"
	good := func(cmd string) []string { return e.env(cmd, id) }
	without := func(env []string, names ...string) []string {
		return slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
			k, _, _ := strings.Cut(kv, "=")
			return slices.Contains(names, k)
		})
	}
	with := func(env []string, kv string) []string {
		k, _, _ := strings.Cut(kv, "=")
		return append(without(env, k), kv)
	}
	prev := map[string]any{"prevResult": prevResultOf(version, e)}
	valid := withConf(conf, prev)
	cases := []struct {
		name  string
		env   []string
		stdin []byte
		code  uint
		msg   string
	}{
		{"invalid JSON", good("ADD"), []byte(`{"cniVersion":`), 6, ""},
		{"bad cniVersion ADD", good("ADD"), withConf(conf, map[string]any{"cniVersion": "adsfsadf"}), 6, "adsfsadf"},
		{"bad cniVersion DEL", good("DEL"), withConf(conf, map[string]any{"cniVersion": "adsfsadf"}), 6, "adsfsadf"},
		{"bad name", good("ADD"), withConf(conf, map[string]any{"prevResult": prevResultOf(version, e), "name": "te%%st"}), 7, ""},
		{"missing env", without(good("ADD"), "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"), valid, 4, "[CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME]"},
		{"ifname .", with(good("ADD"), "CNI_IFNAME=."), valid, 4, ""},
		{"ifname a/b", with(good("ADD"), "CNI_IFNAME=a/b"), valid, 4, ""},
		{"ifname too long", with(good("ADD"), "CNI_IFNAME=abcdefghijklmnop"), valid, 4, ""},
		{"unknown command", good("NOPE"), valid, 4, "NOPE"},
		{"not chained", good("ADD"), withConf(conf, nil), 7, "must be called as chained plugin"},
	}
	for _, c := range cases {
		ce, out, err := runPlugin(ctx, s, node, c.env, c.stdin)
		switch {
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case ce == nil:
			t.Errorf("%s: exit 0 (stdout %q), want code %d", c.name, out, c.code)
		case ce.Code != c.code || !strings.Contains(ce.Msg+ce.Details, c.msg):
			t.Errorf("%s: got %+v, want code %d with %q", c.name, ce, c.code, c.msg)
		}
	}
	// Nothing was registered or pinned for the bad attachment.
	eps, err := nodeEndpoints(ctx, s, node)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(eps, func(x cniEndpoint) bool { return x.ContainerID == id }) {
		t.Errorf("bad input registered %s on %s", id, node)
	}
}
