//go:build bench

package bench

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/labsuite"
	"github.com/bgplb/bgplb/conformance/suite"
)

var (
	dpRuns     = flag.Int("bench.runs", 5, "interleaved runs per measurement (the median is reported)")
	dpDuration = flag.Duration("bench.duration", 3*time.Second, "length of one wrk or iperf3 measurement")
	dpScales   = flag.String("bench.scales", "1,1000,10000", "comma-separated numbers of Services in the cluster (the target included)")
	dpQuiet    = flag.Duration("bench.quiet-wait", 4*time.Minute, "longest wait for the CPUs to calm down before each scale is measured (on a machine other work keeps busy, waiting longer only delays)")
	dpConfigs  = flag.String("bench.configs", "ebpf,iptables,nftables", "lab configurations of TestBenchDatapath: ebpf (b), iptables (c), nftables (d)")
)

// benchServiceCIDR is an extra ServiceCIDR object so that 10k ClusterIP Services fit
// (the lab's --service-cluster-ip-range is a /20). Inside the lab's 198.18.0.0/15
// benchmark range, routed nowhere: only kube-proxy on the nodes knows these IPs.
const benchServiceCIDR = "198.18.192.0/18"

// dpCase is one way of reaching the backend.
type dpCase string

const (
	casePod      dpCase = "a"
	caseEBPF     dpCase = "b"
	caseIPTables dpCase = "c"
	caseNFTables dpCase = "d"
)

var dpMeasures = []string{"new conn/s (wrk, Connection: close)", "req/s (wrk, keep-alive)", "iperf3 Gbit/s"}

// dpLabConfig is one lab the datapath benchmark brings up.
type dpLabConfig struct {
	name      string
	proxyMode string
	datapath  bool
	vipCase   dpCase
}

var dpLabConfigs = []dpLabConfig{
	{name: "ebpf", proxyMode: "nftables", datapath: true, vipCase: caseEBPF},
	{name: "iptables", proxyMode: "iptables", datapath: false, vipCase: caseIPTables},
	{name: "nftables", proxyMode: "nftables", datapath: false, vipCase: caseNFTables},
}

// dpResults holds samples by scale, lab config, case and measure index.
type dpResults struct {
	mu sync.Mutex
	m  map[string][]float64
}

func (r *dpResults) key(scale int, lab string, c dpCase, measure int) string {
	return fmt.Sprintf("%d/%s/%s/%d", scale, lab, c, measure)
}

func (r *dpResults) add(scale int, lab string, c dpCase, measure int, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.key(scale, lab, c, measure)
	r.m[k] = append(r.m[k], v)
}

// median returns the median sample and whether there is one.
func (r *dpResults) median(scale int, lab string, c dpCase, measure int) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := append([]float64(nil), r.m[r.key(scale, lab, c, measure)]...)
	if len(s) == 0 {
		return 0, false
	}
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

// TestBenchDatapath compares, side by side, new connections/s, request/response
// transactions/s and iperf3 throughput from the client namespace to one backend pod on
// node1 reached (a) by its pod IP, (b) by the VIP of an ETP=Local Service through
// bgplb's eBPF datapath, (c) by the VIP served by kube-proxy in iptables mode and (d) in
// nftables mode (bgplbd with --datapath=false), with 1, 1k and 10k Services in the
// cluster. One lab per configuration; (a) is measured in every lab interleaved with
// the lab's VIP case, and each ratio uses the (a) of the same lab.
// dpMaxBusy is how busy (0–1) the CPUs may be before a scale is measured.
const dpMaxBusy = 0.3

func TestBenchDatapath(t *testing.T) {
	scales, err := parseScales(*dpScales)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"wrk", "iperf3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the datapath benchmark needs %s: %v", tool, err)
		}
	}
	res := &dpResults{m: map[string][]float64{}}
	started := time.Now()
	wanted := map[string]bool{}
	for _, c := range strings.Split(*dpConfigs, ",") {
		wanted[strings.TrimSpace(c)] = true
	}
	var ran []dpLabConfig
	for _, cfg := range dpLabConfigs {
		if !wanted[cfg.name] {
			continue
		}
		ran = append(ran, cfg)
		t.Run(cfg.name, func(t *testing.T) { runDatapathLab(t, cfg, scales, res) })
	}

	// The table: one row per scale and measure.
	fmtv := func(measure int, v float64, ok bool) string {
		if !ok {
			return "—"
		}
		if measure == 2 {
			return fmt.Sprintf("%.2f", v)
		}
		return fmt.Sprintf("%.0f", v)
	}
	var rows [][]string
	var missed []string
	for _, sc := range scales {
		for mi, mname := range dpMeasures {
			row := []string{strconv.Itoa(sc), mname}
			// (a): medians of the labs that ran, shown as a range when they differ.
			var as []string
			for _, cfg := range ran {
				if v, ok := res.median(sc, cfg.name, casePod, mi); ok {
					as = append(as, fmtv(mi, v, true))
				}
			}
			if len(as) == 0 {
				as = []string{"—"}
			}
			row = append(row, strings.Join(as, " / "))
			for _, c := range []dpCase{caseEBPF, caseIPTables, caseNFTables} {
				cell, ratio := "—", "—"
				for _, cfg := range ran {
					if cfg.vipCase != c {
						continue
					}
					v, ok := res.median(sc, cfg.name, c, mi)
					a, aok := res.median(sc, cfg.name, casePod, mi)
					cell = fmtv(mi, v, ok)
					if ok && aok && a > 0 {
						ratio = fmt.Sprintf("%.2f", v/a)
						if c == caseEBPF && v/a < 0.95 {
							missed = append(missed, fmt.Sprintf("%d Services, %s: b/a = %.2f < 0.95", sc, mname, v/a))
						}
					}
				}
				row = append(row, cell, ratio)
			}
			rows = append(rows, row)
		}
	}
	note := fmt.Sprintf("Client namespace → a backend pod on node1 (podserver :8080, a one-off iperf3 -s :5201 in the pod's netns per measurement). "+
		"(a) pod IP, plain routing, to a twin pod on node1 that no Service selects; (b) VIP of an ETP=Local Service through bgplb's eBPF datapath (kube-proxy nftables also running); "+
		"(c) the same VIP served by kube-proxy iptables, (d) by kube-proxy nftables (bgplbd --datapath=false, VIP routed to node1). "+
		"One lab per configuration; the extra Services are ClusterIP Services with one endpoint each (EndpointSlices written directly), "+
		"the target Service is created last; each scale is measured once the CPUs are less than %.0f%% busy over 5 s (steal excluded; at most %s wait). Medians of %d interleaved runs of %s each (wrk -t2 -c32; iperf3 one stream). "+
		"The (a) column lists the median measured in each lab (%s order); each ratio uses the (a) of its own lab. Target: b/a ≥ 0.95, flat from 1 to 10k. bgplb datapath: delivery %s, attach %s. Total %s.",
		100*dpMaxBusy, *dpQuiet, *dpRuns, *dpDuration, labNames(ran), envOrDefault("BGPLB_DATAPATH_DELIVERY", "stack"), envOrDefault("BGPLB_DATAPATH_ATTACH", "auto"), time.Since(started).Round(time.Second))
	// Each attach mode and delivery keeps its own table: a legacy-TC or redirect run
	// does not replace the default's.
	title := "Datapath: pod IP vs bgplb eBPF vs kube-proxy"
	if m := envOrDefault("BGPLB_DATAPATH_ATTACH", "auto"); m != "auto" {
		title += " (attach " + m + ")"
	}
	if d := envOrDefault("BGPLB_DATAPATH_DELIVERY", "stack"); d != "stack" {
		title += " (delivery " + d + ")"
	}
	tab := Table{
		Title:   title,
		Note:    note,
		Columns: []string{"Services", "measure", "(a) pod IP", "(b) bgplb eBPF", "b/a", "(c) kube-proxy iptables", "c/a", "(d) kube-proxy nftables", "d/a"},
		Rows:    rows,
	}
	if err := tab.Write(*resultsPath); err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		t.Logf("%s", strings.Join(r, " | "))
	}
	for _, m := range missed {
		t.Errorf("target missed: %s", m)
	}
}

func labNames(cfgs []dpLabConfig) string {
	var n []string
	for _, c := range cfgs {
		n = append(n, c.name)
	}
	return strings.Join(n, ", ")
}

func parseScales(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad -bench.scales entry %q", f)
		}
		if len(out) > 0 && n < out[len(out)-1] {
			return nil, fmt.Errorf("-bench.scales must be ascending: %q", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// benchLabWith is benchLab with extra lab options; it waits while another lab is up.
func benchLabWith(t *testing.T, mutate func(*lab.Options)) (*lab.Lab, *suite.Suite) {
	t.Helper()
	waitLabFree(t)
	return labsuite.Start(t, *labDirFlag, false, mutate)
}

// waitLabFree waits (up to 15 minutes) while another lab is up on this machine: the
// lab's namespaces and API port are fixed, and we never tear down someone else's lab.
func waitLabFree(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Minute)
	for {
		busy := ""
		if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				if len(f) > 0 && (f[0] == lab.RouterNS || strings.HasPrefix(f[0], lab.NodeNSPrefix)) {
					busy = "namespace " + f[0] + " exists"
				}
			}
		}
		if busy == "" {
			if c, err := net.DialTimeout("tcp", lab.ForwardAddr, time.Second); err == nil {
				c.Close()
				busy = lab.ForwardAddr + " is listening"
			}
		}
		if busy == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("another lab is still up after 15 minutes (%s)", busy)
		}
		t.Logf("another lab is up (%s); waiting", busy)
		time.Sleep(30 * time.Second)
	}
}

// fastClient returns a clientset without client-side rate limiting worth noting.
func fastClient(t *testing.T, l *lab.Lab) kubernetes.Interface {
	t.Helper()
	cfg, err := l.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 5000, 10000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func runDatapathLab(t *testing.T, cfg dpLabConfig, scales []int, res *dpResults) {
	l, s := benchLabWith(t, func(o *lab.Options) {
		o.ProxyMode = cfg.proxyMode
		if !cfg.datapath {
			o.DaemonExtraArgs = []string{"--datapath=false"}
		}
	})
	ctx := context.Background()
	kc := fastClient(t, l)
	// Connection: close at ~20k/s for minutes would run the client out of ports
	// (TIME_WAIT): the whole ephemeral range, and reuse of TIME_WAIT ports.
	if out, err := lab.NetNS(lab.ClientNS).Exec(ctx, "sysctl", "-w", "net.ipv4.ip_local_port_range=1024 65535", "net.ipv4.tcp_tw_reuse=1"); err != nil {
		t.Fatalf("client sysctls: %v: %s", err, out)
	}
	const ns = "bench-datapath"
	// No namespace cleanup: deleting 10k Services would take minutes; the lab goes.
	if _, err := kc.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if scales[len(scales)-1] > 3000 {
		addServiceCIDR(t, kc)
	}

	// The backend: one pod on node1 behind the Service, and for (a) a twin pod on node1
	// that no Service selects, so that direct flows never share a 5-tuple with the
	// datapath's conntrack entries of VIP flows (they would be reverse-NATed).
	lbls := map[string]string{"app": "bench"}
	backend(t, kc, s, ns, "bench", lbls)
	backend(t, kc, s, ns, "direct", map[string]string{"app": "direct"})
	pod := s.WaitPods(t, ns, "bench", 1)[0]
	podIP := netip.MustParseAddr(pod.Status.PodIP)
	podNS := podNetns(t, podIP)
	dpod := s.WaitPods(t, ns, "direct", 1)[0]
	directIP := netip.MustParseAddr(dpod.Status.PodIP)
	directNS := podNetns(t, directIP)

	extras := 0
	prevTarget := ""
	for _, scale := range scales {
		// Extra Services first, the target last.
		t0 := time.Now()
		createExtras(t, kc, ns, extras, scale-1, podIP)
		created := scale - 1 - extras
		extras = scale - 1
		t.Logf("[%s] %d extra Services (+%d) in %s", cfg.name, extras, created, time.Since(t0).Round(time.Millisecond))
		if prevTarget != "" {
			if err := kc.CoreV1().Services(ns).Delete(ctx, prevTarget, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		target := fmt.Sprintf("target-%d", scale)
		prevTarget = target
		t1 := time.Now()
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: target, Namespace: ns},
			Spec: corev1.ServiceSpec{
				Type:              corev1.ServiceTypeLoadBalancer,
				LoadBalancerClass: ptr.To(s.Class),
				Selector:          lbls,
				Ports: []corev1.ServicePort{
					{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)},
					{Name: "iperf", Port: 5201, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(5201)},
				},
				ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			},
		}
		if _, err := kc.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		vip := s.WaitIngress(t, ns, target)
		s.EventuallyNextHops(t, vip, s.NodeAddrs("node1"))
		// The VIP serves both ports (kube-proxy may still be syncing 10k Services).
		suite.Eventually(t, 3*time.Minute, fmt.Sprintf("%s serves HTTP and iperf3", vip), func() error {
			if _, err := s.HTTPGet(ctx, vip, 80, "/"); err != nil {
				return err
			}
			_, err := iperfGbps(ctx, podNS, vip, 5201, time.Second)
			return err
		})
		t.Logf("[%s] target %s (VIP %s) served %s after creation", cfg.name, target, vip, time.Since(t1).Round(time.Millisecond))

		// Let the lab digest the burst (kube-proxy syncs, informers) before measuring.
		qctx, qcancel := context.WithTimeout(ctx, *dpQuiet)
		busy, quiet := WaitQuiet(qctx, 5*time.Second, dpMaxBusy)
		qcancel()
		t.Logf("[%s] %d Services: CPUs %.0f%% busy over 5s (quiet: %v) %s after the target was served", cfg.name, scale, 100*busy, quiet, time.Since(t1).Round(time.Second))

		targets := []struct {
			c          dpCase
			addr       netip.Addr
			http, perf uint16
			netns      string
		}{{casePod, directIP, 8080, 5201, directNS}, {cfg.vipCase, vip, 80, 5201, podNS}}
		for run := 0; run < *dpRuns; run++ {
			for mi := range dpMeasures {
				// Alternate which case goes first so neither always runs warm.
				order := []int{0, 1}
				if (run+mi)%2 == 1 {
					order = []int{1, 0}
				}
				for _, i := range order {
					tg := targets[i]
					var v float64
					var err error
					switch mi {
					case 0:
						v, err = wrkRate(ctx, tg.addr, tg.http, true)
					case 1:
						v, err = wrkRate(ctx, tg.addr, tg.http, false)
					case 2:
						v, err = iperfGbps(ctx, tg.netns, tg.addr, tg.perf, *dpDuration)
					}
					if err != nil {
						// One lost sample does not void the lab's other figures.
						t.Errorf("[%s] %d Services, run %d, (%s) %s: %v", cfg.name, scale, run, tg.c, dpMeasures[mi], err)
						continue
					}
					res.add(scale, cfg.name, tg.c, mi, v)
				}
			}
		}
		for mi, m := range dpMeasures {
			a, _ := res.median(scale, cfg.name, casePod, mi)
			v, _ := res.median(scale, cfg.name, cfg.vipCase, mi)
			t.Logf("[%s] %d Services: %s: (a) %.2f (%s) %.2f ratio %.3f", cfg.name, scale, m, a, cfg.vipCase, v, v/a)
		}
	}
}

// backend creates a one-replica Deployment of the pod server on node1, labelled lbls,
// listening on 8080 only: the lab's kubelet makes the pod server listen on every
// declared port, and iperf3 -s needs 5201 (the Service declares it).
func backend(t *testing.T, kc kubernetes.Interface, s *suite.Suite, ns, name string, lbls map[string]string) {
	t.Helper()
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbls},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls},
				Spec: corev1.PodSpec{
					NodeSelector:                  map[string]string{"kubernetes.io/hostname": "node1"},
					TerminationGracePeriodSeconds: ptr.To[int64](1),
					Containers: []corev1.Container{{
						Name: "server", Image: s.PodImage,
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
					}},
				},
			},
		},
	}
	if _, err := kc.AppsV1().Deployments(ns).Create(context.Background(), dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment %s/%s: %v", ns, name, err)
	}
}

// addServiceCIDR adds a ServiceCIDR object big enough for 10k ClusterIPs and waits
// until the API server reports it Ready.
func addServiceCIDR(t *testing.T, kc kubernetes.Interface) {
	t.Helper()
	ctx := context.Background()
	sc := &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: "bench"},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: []string{benchServiceCIDR}}}
	if _, err := kc.NetworkingV1().ServiceCIDRs().Create(ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create ServiceCIDR %s: %v", benchServiceCIDR, err)
	}
	suite.Eventually(t, time.Minute, "ServiceCIDR bench Ready", func() error {
		got, err := kc.NetworkingV1().ServiceCIDRs().Get(ctx, "bench", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == networkingv1.ServiceCIDRConditionReady && c.Status == metav1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", got.Status.Conditions)
	})
}

// createExtras creates ClusterIP Services extra-<from>..extra-<to-1>, each with an
// EndpointSlice holding the backend pod, with a pool of workers.
func createExtras(t *testing.T, kc kubernetes.Interface, ns string, from, to int, podIP netip.Addr) {
	t.Helper()
	if to <= from {
		return
	}
	ctx := context.Background()
	jobs := make(chan int)
	var failed atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < 48; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := createExtra(ctx, kc, ns, i, podIP); err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	for i := from; i < to; i++ {
		if failed.Load() != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
}

func createExtra(ctx context.Context, kc kubernetes.Interface, ns string, i int, podIP netip.Addr) error {
	name := fmt.Sprintf("extra-%05d", i)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	var err error
	for try := 0; try < 5; try++ {
		if _, err = kc.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err == nil || apierrors.IsAlreadyExists(err) {
			err = nil
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("create service %s: %w", name, err)
	}
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
			discoveryv1.LabelServiceName: name, discoveryv1.LabelManagedBy: "bench.bgplb.io"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{podIP.String()},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To("node1")}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("http"), Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for try := 0; try < 5; try++ {
		if _, err = kc.DiscoveryV1().EndpointSlices(ns).Create(ctx, es, metav1.CreateOptions{}); err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("create endpointslice %s: %w", name, err)
}

// podNetns finds the lab pod namespace holding ip.

func envOrDefault(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
