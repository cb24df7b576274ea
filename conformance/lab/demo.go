package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"
)

// DemoOptions configure Demo.
type DemoOptions struct {
	// Manifests is the dir of the demo's YAML files (manifests/examples/demo).
	Manifests string
	// CRDs is an optional dir of CRD YAML files applied first (manifests/base/crds).
	CRDs string
	// Namespace and Service name the demo's LoadBalancer Service.
	Namespace, Service string
}

// Demo applies the demo manifests to the lab, waits for the pods, and prints, with a
// plain explanation of each part, the pods, EndpointSlices, the Service, the router's
// BGP summary and routes, and what the client sees.
func (l *Lab) Demo(ctx context.Context, o DemoOptions, w io.Writer) error {
	cfg, err := l.RESTConfig()
	if err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create discovery client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("create dynamic client: %w", err)
	}
	cs, err := l.Clientset()
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	section := func(title string) { fmt.Fprintf(w, "\n== %s\n", title) }

	if o.CRDs != "" {
		if _, err := os.Stat(o.CRDs); err == nil {
			section("Installing the bgplb CRDs from " + o.CRDs)
			if err := applyDir(ctx, dyn, mapper, o.CRDs, w, nil); err != nil {
				return err
			}
			if err := waitCRDsEstablished(ctx, mapper, dc); err != nil {
				return err
			}
		}
	}
	section("Applying " + o.Manifests)
	fix, err := l.demoFix()
	if err != nil {
		return err
	}
	if err := applyDir(ctx, dyn, mapper, o.Manifests, w, fix); err != nil {
		return err
	}

	section(fmt.Sprintf("Pods of %s/%s (scheduled by kube-scheduler, started by the lab kubelet: a netns per pod, ptp+host-local via libcni, the podserver process)", o.Namespace, o.Service))
	svc, err := cs.CoreV1().Services(o.Namespace).Get(ctx, o.Service, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get service %s/%s: %w", o.Namespace, o.Service, err)
	}
	selector := metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector})
	var pods []corev1.Pod
	err = poll(ctx, 120*time.Second, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		list, err := cs.CoreV1().Pods(o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, nil
		}
		pods = list.Items
		ready := 0
		for i := range pods {
			if podIsReady(&pods[i]) && pods[i].DeletionTimestamp == nil {
				ready++
			}
		}
		return len(pods) > 0 && ready == len(pods), nil
	})
	if err != nil {
		return fmt.Errorf("wait for the demo pods to be ready (see %s/logs/*-kubelet.log): %w", l.Dir, err)
	}
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	fmt.Fprintf(w, "%-28s %-7s %-14s %s\n", "NAME", "NODE", "IP", "READY")
	for i := range pods {
		p := &pods[i]
		fmt.Fprintf(w, "%-28s %-7s %-14s %v\n", p.Name, p.Spec.NodeName, p.Status.PodIP, podIsReady(p))
	}

	section("EndpointSlices of the Service (written by kube-controller-manager from the pods' Ready conditions; bgplb reads these)")
	_ = poll(ctx, 15*time.Second, 300*time.Millisecond, func(ctx context.Context) (bool, error) {
		ready := 0
		for _, ep := range demoEndpoints(ctx, cs, o.Namespace, o.Service) {
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				ready++
			}
		}
		return ready >= len(pods), nil
	}) // print whatever is there after the wait
	fmt.Fprintf(w, "%-14s %-7s %-6s %-8s %s\n", "ADDRESS", "NODE", "READY", "SERVING", "TERMINATING")
	for _, ep := range demoEndpoints(ctx, cs, o.Namespace, o.Service) {
		node := ""
		if ep.NodeName != nil {
			node = *ep.NodeName
		}
		fmt.Fprintf(w, "%-14s %-7s %-6s %-8s %s\n", strings.Join(ep.Addresses, ","), node,
			boolPtr(ep.Conditions.Ready), boolPtr(ep.Conditions.Serving), boolPtr(ep.Conditions.Terminating))
	}

	section("The Service")
	vip := ""
	_ = poll(ctx, 20*time.Second, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
		s, err := cs.CoreV1().Services(o.Namespace).Get(ctx, o.Service, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		svc = s
		if len(s.Status.LoadBalancer.Ingress) > 0 {
			vip = s.Status.LoadBalancer.Ingress[0].IP
		}
		return vip != "" || !l.daemonRunning(), nil
	}) // no VIP is a state to report, not an error
	if l.daemonRunning() {
		// Give the daemons' sessions (connect retry 2 s on FRR's side) and the VIP
		// routes time to converge before showing them.
		_ = poll(ctx, 30*time.Second, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
			established, err := l.EstablishedSessions(ctx)
			return err == nil && established >= len(l.Nodes), nil
		}) // what is not there after the wait is what the sections below show
		_ = poll(ctx, 10*time.Second, 500*time.Millisecond, func(ctx context.Context) (bool, error) {
			if vip == "" {
				return true, nil
			}
			out, err := run(ctx, "ip", "-n", RouterNS, "route", "show", vip)
			return err == nil && len(bytes.TrimSpace(out)) > 0, nil
		}) // what is not there after the wait is what the sections below show
	}
	if s, err := cs.CoreV1().Services(o.Namespace).Get(ctx, o.Service, metav1.GetOptions{}); err == nil {
		svc = s // conditions after convergence
	}
	class := ""
	if svc.Spec.LoadBalancerClass != nil {
		class = *svc.Spec.LoadBalancerClass
	}
	fmt.Fprintf(w, "%s/%s type=%s class=%s externalTrafficPolicy=%s clusterIP=%s VIP=%s\n", svc.Namespace, svc.Name,
		svc.Spec.Type, class, svc.Spec.ExternalTrafficPolicy, svc.Spec.ClusterIP, orPending(vip))
	for _, c := range svc.Status.Conditions {
		fmt.Fprintf(w, "  condition %s=%s reason=%s: %s\n", c.Type, c.Status, c.Reason, c.Message)
	}

	section(fmt.Sprintf("Router (%s in %s, AS %d): BGP sessions with the nodes", l.Opts.Router, RouterNS, RouterASN))
	if out, err := l.RouterSummary(ctx); err != nil {
		fmt.Fprintf(w, "error: %v\n", err)
	} else {
		fmt.Fprintf(w, "%s\n", strings.TrimSpace(out))
	}
	section(fmt.Sprintf("Router kernel routes (ip -n %s route): static pod-CIDR routes, plus VIP routes learnt over BGP (proto bgp)", RouterNS))
	if out, err := run(ctx, "ip", "-n", RouterNS, "route"); err != nil {
		fmt.Fprintf(w, "error: %v\n", err)
	} else {
		fmt.Fprintf(w, "%s\n", strings.TrimSpace(string(out)))
	}

	section(fmt.Sprintf("From the client (%s in %s, behind the router): each pod directly, /clientip shows the source address the pod saw", ClientV4, ClientNS))
	for i := range pods {
		p := &pods[i]
		port := "8080"
		if len(p.Spec.Containers) > 0 && len(p.Spec.Containers[0].Ports) > 0 {
			port = fmt.Sprint(p.Spec.Containers[0].Ports[0].ContainerPort)
		}
		l.showCurl(ctx, w, fmt.Sprintf("http://%s:%s/clientip", p.Status.PodIP, port))
	}
	if vip == "" {
		fmt.Fprintf(w, "\nNo VIP yet: %s. Once bgplbd runs on the nodes it assigns a VIP from the pool,\n"+
			"announces it from the nodes with ready pods (the router shows one BGP next hop per such node) and\n"+
			"this demo curls the VIP from the client.\n", l.noVIPReason())
		return nil
	}
	section(fmt.Sprintf("From the client: the VIP %s (routed by the router over BGP ECMP to the nodes, then to a local pod)", vip))
	out, _ := run(ctx, "ip", "-n", RouterNS, "route", "show", vip) // empty output and an error both mean no route
	route := strings.TrimSpace(string(out))
	if route == "" {
		fmt.Fprintf(w, "router route to the VIP: none: no node announces it (see the Service's bgplb.io/Announced condition above)\n")
		l.showCurl(ctx, w, fmt.Sprintf("http://%s/clientip", vip))
		return nil
	}
	fmt.Fprintf(w, "router route to the VIP:\n%s\n", route)
	l.showCurl(ctx, w, fmt.Sprintf("http://%s/clientip", vip))
	for range 6 {
		l.showCurl(ctx, w, fmt.Sprintf("http://%s/hostname", vip))
	}
	return nil
}

func (l *Lab) showCurl(ctx context.Context, w io.Writer, url string) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, "nsenter", NetNS(ClientNS).Command("curl", "-sS", "--max-time", "3", url)[1:]...).CombinedOutput()
	res := strings.TrimSpace(string(out))
	if err != nil {
		res = fmt.Sprintf("FAILED (%v) %s", err, res)
	}
	fmt.Fprintf(w, "client$ curl %s  ->  %s\n", url, res)
}

func (l *Lab) daemonRunning() bool {
	if l.Opts.Runtime == RuntimeContainerd {
		return l.daemonSetRunning()
	}
	procs, _ := l.Processes() // a listing error means no daemon seen
	for _, p := range procs {
		if strings.HasSuffix(p.Name, "-bgplbd") && p.Alive {
			return true
		}
	}
	return false
}

func (l *Lab) noVIPReason() string {
	if executable(filepath.Join(l.Opts.BinDir, "bgplbd")) && !l.Opts.NoDaemon && !l.daemonRunning() {
		return "bgplbd was started but is not running (see " + filepath.Join(l.Dir, "logs") + "/node*-bgplbd.log)"
	}
	if l.daemonRunning() {
		return "bgplbd runs but has not assigned one (see the Service conditions above and " + filepath.Join(l.Dir, "logs") + "/node*-bgplbd.log)"
	}
	if l.Opts.NoDaemon {
		return "the lab was started with --no-daemon, so the Service stays <pending>"
	}
	return "bgplbd is not built yet (no " + filepath.Join(l.Opts.BinDir, "bgplbd") + "), so the Service stays <pending>"
}

func orPending(s string) string {
	if s == "" {
		return "<pending>"
	}
	return s
}

func boolPtr(b *bool) string {
	if b == nil {
		return "-"
	}
	return fmt.Sprint(*b)
}

func podIsReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func demoEndpoints(ctx context.Context, cs kubernetes.Interface, ns, svc string) []discoveryv1.Endpoint {
	list, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		return nil
	}
	var out []discoveryv1.Endpoint
	for _, s := range list.Items {
		out = append(out, s.Endpoints...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addresses[0] < out[j].Addresses[0] })
	return out
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// applyDir server-side applies every object in the *.yaml files of dir (sorted by
// name). Objects whose kind the API server does not know (CRDs not installed) are
// reported and skipped.
func applyDir(ctx context.Context, dyn dynamic.Interface, mapper *restmapper.DeferredDiscoveryRESTMapper, dir string, w io.Writer, fix func(*unstructured.Unstructured) error) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	if len(files) == 0 {
		return fmt.Errorf("no *.yaml files in %s", dir)
	}
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read %s: %w", f, err)
		}
		if err := applyYAML(ctx, dyn, mapper, f, data, w, fix); err != nil {
			return err
		}
	}
	return nil
}

// applyYAML server-side-applies every document of data (named source in messages).
// fix, when not nil, changes each object first.
func applyYAML(ctx context.Context, dyn dynamic.Interface, mapper *restmapper.DeferredDiscoveryRESTMapper, source string, data []byte, w io.Writer, fix func(*unstructured.Unstructured) error) error {
	for _, doc := range docSep.Split(string(data), -1) {
		if len(bytes.TrimSpace([]byte(doc))) == 0 {
			continue
		}
		var obj unstructured.Unstructured
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			return fmt.Errorf("parse %s: %w", source, err)
		}
		if obj.GetAPIVersion() == "" || obj.GetKind() == "" || obj.GetKind() == "Kustomization" {
			continue
		}
		if fix != nil {
			if err := fix(&obj); err != nil {
				return fmt.Errorf("adapt %s %s from %s: %w", obj.GetKind(), obj.GetName(), source, err)
			}
		}
		gvk := obj.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			mapper.Reset()
			m, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
		if err != nil {
			if meta.IsNoMatchError(err) {
				fmt.Fprintf(w, "skipped %s %s: the API server does not know the kind (CRDs not installed)\n", gvk.Kind, obj.GetName())
				continue
			}
			return fmt.Errorf("map %s: %w", gvk, err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			if obj.GetNamespace() == "" {
				obj.SetNamespace("default")
			}
			ri = dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
		}
		if _, err := ri.Apply(ctx, obj.GetName(), &obj, metav1.ApplyOptions{FieldManager: "bgplb-lab", Force: true}); err != nil {
			return fmt.Errorf("apply %s %s from %s: %w", gvk.Kind, obj.GetName(), source, err)
		}
		fmt.Fprintf(w, "applied %s %s\n", strings.ToLower(gvk.Kind), strings.TrimPrefix(obj.GetNamespace()+"/"+obj.GetName(), "/"))
	}
	return nil
}

// waitCRDsEstablished waits until discovery serves the bgplb.io group.
func waitCRDsEstablished(ctx context.Context, mapper *restmapper.DeferredDiscoveryRESTMapper, dc discovery.DiscoveryInterface) error {
	err := poll(ctx, 30*time.Second, 300*time.Millisecond, func(context.Context) (bool, error) {
		groups, err := dc.ServerGroups()
		if err != nil {
			return false, nil
		}
		for _, g := range groups.Groups {
			if g.Name == "bgplb.io" {
				mapper.Reset()
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return errors.New("the bgplb.io CRDs were not served within 30s")
	}
	return nil
}
