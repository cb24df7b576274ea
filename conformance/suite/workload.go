package suite

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/internal/poll"
)

// Namespace creates a namespace for one test and deletes it when the test ends.
func (s *Suite) Namespace(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bgplb.io/conformance": "true"}}}
	if _, err := s.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = s.Kube.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
		// Wait until the namespace is gone so the next test starts from a clean cluster.
		for ctx.Err() == nil {
			if _, err := s.Kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				return
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Logf("namespace %s still terminating", name)
	})
	return name
}

// BackendOption changes the Deployment Backend creates.
type BackendOption func(*appsv1.Deployment)

// WithUDPPort makes the backends also answer datagrams on UDP port (see podserver: every
// datagram is answered with its hostname, the client's address and the payload).
func WithUDPPort(port int32) BackendOption {
	return func(d *appsv1.Deployment) {
		c := &d.Spec.Template.Spec.Containers[0]
		c.Ports = append(c.Ports, corev1.ContainerPort{ContainerPort: port, Protocol: corev1.ProtocolUDP})
	}
}

// Backend creates a Deployment of the test server pinned to node, labelled app=app,
// listening on port 8080 (TCP). Its name is <app>-<node>.
func (s *Suite) Backend(t *testing.T, ns, app, node string, replicas int32, opts ...BackendOption) string {
	t.Helper()
	name := app + "-" + node
	lbls := map[string]string{"app": app, "bgplb.io/node": node}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbls},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: lbls},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: lbls},
				Spec: corev1.PodSpec{
					NodeSelector:                  map[string]string{"kubernetes.io/hostname": node},
					TerminationGracePeriodSeconds: ptr.To[int64](5),
					Containers: []corev1.Container{{
						Name: "server", Image: s.PodImage,
						Ports: []corev1.ContainerPort{{ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
						Env:   []corev1.EnvVar{{Name: "SHUTDOWN_DELAY", Value: "1s"}},
					}},
				},
			},
		},
	}
	for _, o := range opts {
		o(d)
	}
	// The pod server answers on the container's ports: a real kubelet runs the image's
	// entrypoint with these arguments (the lab kubelet derives the same from the ports).
	c := &d.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 {
		c.Args = podserverArgs(c.Ports)
	}
	// Readiness follows the pod server's GET /ready (SetReady flips it), as the lab
	// kubelet probes it: a real kubelet needs the probe spelled out.
	if c.ReadinessProbe == nil {
		c.ReadinessProbe = &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}},
			PeriodSeconds: 1, SuccessThreshold: 1, FailureThreshold: 2, TimeoutSeconds: 1,
		}
	}
	if _, err := s.Kube.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment %s/%s: %v", ns, name, err)
	}
	return name
}

// podserverArgs returns the pod server's --tcp and --udp flags for ports.
func podserverArgs(ports []corev1.ContainerPort) []string {
	var tcp, udp []string
	for _, p := range ports {
		if p.Protocol == corev1.ProtocolUDP {
			udp = append(udp, fmt.Sprint(p.ContainerPort))
		} else {
			tcp = append(tcp, fmt.Sprint(p.ContainerPort))
		}
	}
	var args []string
	if len(tcp) > 0 {
		args = append(args, "--tcp", strings.Join(tcp, ","))
	}
	if len(udp) > 0 {
		args = append(args, "--udp", strings.Join(udp, ","))
	}
	return args
}

// Scale sets the replicas of Deployment name and waits until exactly that many of
// its pods are ready and none is terminating.
func (s *Suite) Scale(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	ctx := context.Background()
	sc, err := s.Kube.AppsV1().Deployments(ns).GetScale(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get scale of %s/%s: %v", ns, name, err)
	}
	sc.Spec.Replicas = replicas
	if _, err := s.Kube.AppsV1().Deployments(ns).UpdateScale(ctx, name, sc, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("scale %s/%s to %d: %v", ns, name, replicas, err)
	}
	s.WaitPods(t, ns, name, int(replicas))
}

// WaitPods waits until Deployment name has exactly n ready pods and no others.
func (s *Suite) WaitPods(t *testing.T, ns, name string, n int) []corev1.Pod {
	t.Helper()
	d, err := s.Kube.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get deployment %s/%s: %v", ns, name, err)
	}
	sel := labels.SelectorFromSet(d.Spec.Selector.MatchLabels).String()
	var pods []corev1.Pod
	Eventually(t, s.Timeouts.PodReady, fmt.Sprintf("%d ready pods of %s/%s", n, ns, name), func() error {
		list, err := s.Kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return err
		}
		pods = list.Items
		ready := 0
		for _, p := range pods {
			if p.DeletionTimestamp != nil {
				return fmt.Errorf("pod %s still terminating", p.Name)
			}
			if PodReady(&p) {
				ready++
			}
		}
		if ready != n || len(pods) != n {
			return fmt.Errorf("%d pods, %d ready", len(pods), ready)
		}
		return nil
	})
	return pods
}

// PodReady reports the pod's Ready condition.
func PodReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ServiceOption changes a Service before it is created.
type ServiceOption func(*corev1.Service)

// WithLocal sets externalTrafficPolicy: Local.
func WithLocal(svc *corev1.Service) {
	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
}

// WithLabels adds labels to the Service.
func WithLabels(kv map[string]string) ServiceOption {
	return func(svc *corev1.Service) {
		if svc.Labels == nil {
			svc.Labels = map[string]string{}
		}
		for k, v := range kv {
			svc.Labels[k] = v
		}
	}
}

// WithClass sets the loadBalancerClass (nil for none).
func WithClass(class *string) ServiceOption {
	return func(svc *corev1.Service) { svc.Spec.LoadBalancerClass = class }
}

// LBService creates a LoadBalancer Service of the suite's class selecting app=app on
// port 80 → 8080.
func (s *Suite) LBService(t *testing.T, ns, name, app string, opts ...ServiceOption) *corev1.Service {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type:              corev1.ServiceTypeLoadBalancer,
			LoadBalancerClass: ptr.To(s.Class),
			Selector:          map[string]string{"app": app},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP,
				TargetPort: intstr.FromInt32(8080)}},
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
		},
	}
	for _, o := range opts {
		o(svc)
	}
	out, err := s.Kube.CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service %s/%s: %v", ns, name, err)
	}
	return out
}

// UpdateService applies mutate to the current Service and updates it, retrying on
// conflicts.
func (s *Suite) UpdateService(t *testing.T, ns, name string, mutate func(*corev1.Service)) {
	t.Helper()
	Eventually(t, 10*time.Second, "update service "+ns+"/"+name, func() error {
		svc, err := s.Kube.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(svc)
		_, err = s.Kube.CoreV1().Services(ns).Update(context.Background(), svc, metav1.UpdateOptions{})
		return err
	})
}

// WaitIngress waits for the Service's first ingress IP and checks it is inside the
// suite's VIP range with ipMode nil or VIP.
func (s *Suite) WaitIngress(t *testing.T, ns, name string) netip.Addr {
	t.Helper()
	var vip netip.Addr
	Eventually(t, s.Timeouts.Converge, "ingress IP of "+ns+"/"+name, func() error {
		svc, err := s.Kube.CoreV1().Services(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(svc.Status.LoadBalancer.Ingress) == 0 {
			return fmt.Errorf("no ingress yet (conditions %v)", svc.Status.Conditions)
		}
		ing := svc.Status.LoadBalancer.Ingress[0]
		a, err := netip.ParseAddr(ing.IP)
		if err != nil {
			return fmt.Errorf("ingress %+v: %w", ing, err)
		}
		vip = a
		return nil
	})
	if !s.VIPRange.Contains(vip) {
		t.Fatalf("ingress %s of %s/%s is outside the VIP range %s", vip, ns, name, s.VIPRange)
	}
	return vip
}

// HostPrefix returns the /32 or /128 of a.
func HostPrefix(a netip.Addr) netip.Prefix {
	return netip.PrefixFrom(a, a.BitLen())
}

// RIBNextHops returns the next hops the router holds for vip.
func (s *Suite) RIBNextHops(vip netip.Addr) ([]netip.Addr, error) {
	return s.PrefixRIBNextHops(HostPrefix(vip))
}

// PrefixRIBNextHops returns the next hops of the BGP paths the router holds for
// exactly prefix, sorted and without duplicates.
func (s *Suite) PrefixRIBNextHops(prefix netip.Prefix) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	paths, err := s.Router.Paths(ctx, prefix)
	if err != nil {
		return nil, err
	}
	nh := make([]netip.Addr, 0, len(paths))
	for _, p := range paths {
		nh = append(nh, p.NextHop)
	}
	slices.SortFunc(nh, netip.Addr.Compare)
	return slices.Compact(nh), nil
}

// EventuallyNextHops waits until the router's RIB and FIB for vip hold exactly want
// (empty: no route).
func (s *Suite) EventuallyNextHops(t *testing.T, vip netip.Addr, want []netip.Addr) {
	t.Helper()
	s.EventuallyPrefixNextHops(t, HostPrefix(vip), want)
}

// EventuallyPrefixNextHops waits until the router's BGP RIB and its FIB hold exactly
// want as the next hops of prefix (empty: no route).
func (s *Suite) EventuallyPrefixNextHops(t *testing.T, prefix netip.Prefix, want []netip.Addr) {
	t.Helper()
	want = slices.Clone(want)
	slices.SortFunc(want, netip.Addr.Compare)
	Eventually(t, s.Timeouts.Converge, fmt.Sprintf("router next hops of %s == %v", prefix, want), func() error {
		rib, err := s.PrefixRIBNextHops(prefix)
		if err != nil {
			return err
		}
		if !slices.Equal(rib, want) {
			return fmt.Errorf("RIB has %v", rib)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		fib, err := s.Router.FIBNextHops(ctx, prefix)
		if err != nil {
			return err
		}
		if !slices.Equal(fib, want) {
			return fmt.Errorf("RIB ok, FIB has %v", fib)
		}
		return nil
	})
}

// ConsistentlyNextHops asserts the RIB for vip stays exactly want for d.
func (s *Suite) ConsistentlyNextHops(t *testing.T, vip netip.Addr, want []netip.Addr, d time.Duration) {
	t.Helper()
	Consistently(t, d, fmt.Sprintf("router next hops of %s stay %v", vip, want), func() error {
		rib, err := s.RIBNextHops(vip)
		if err != nil {
			return err
		}
		if !slices.Equal(rib, want) {
			return fmt.Errorf("RIB has %v", rib)
		}
		return nil
	})
}

// HTTPGet fetches http://addr:port/path from the client on a new connection.
func (s *Suite) HTTPGet(ctx context.Context, addr netip.Addr, port uint16, path string) (string, error) {
	return s.httpDo(ctx, http.MethodGet, addr, port, path, "")
}

// HTTPPost posts body to http://addr:port/path from the client.
func (s *Suite) HTTPPost(ctx context.Context, addr netip.Addr, port uint16, path, body string) (string, error) {
	return s.httpDo(ctx, http.MethodPost, addr, port, path, body)
}

// SetReady makes the test server at podIP report ready or not ready on /ready (its
// readiness probe), through the client. The server answers the new state: 200 "ready"
// or 503 "not ready".
func (s *Suite) SetReady(ctx context.Context, podIP netip.Addr, ready bool) error {
	body, err := s.HTTPPost(ctx, podIP, 8080, "/ready", fmt.Sprint(ready))
	want := "ready"
	if !ready {
		want = "not ready"
	}
	if body != want {
		return fmt.Errorf("set %s ready=%v: answer %q: %v", podIP, ready, body, err)
	}
	return nil
}

// WaitSessions waits until the router has an Established session with every node
// that has lasted at least 3 s, so tests start from settled sessions.
func (s *Suite) WaitSessions(t *testing.T) {
	t.Helper()
	Eventually(t, s.Timeouts.Converge*2, "settled BGP sessions with every node", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		nbs, err := s.Router.Neighbors(ctx)
		if err != nil {
			return err
		}
		for _, n := range s.Nodes {
			ok := false
			for _, nb := range nbs {
				if nb.Address == n.Addresses[0] && nb.State == "Established" && time.Since(nb.EstablishedSince) >= 3*time.Second {
					ok = true
				}
			}
			if !ok {
				return fmt.Errorf("no settled session with %s (%s)", n.Name, n.Addresses[0])
			}
		}
		return nil
	})
}

// HTTPGetFrom fetches http://addr:port/path from client c on a new connection.
func HTTPGetFrom(ctx context.Context, c Client, timeout time.Duration, addr netip.Addr, port uint16, path string) (string, error) {
	return httpDo(ctx, c, timeout, http.MethodGet, addr, port, path, "")
}

func (s *Suite) httpDo(ctx context.Context, method string, addr netip.Addr, port uint16, path, body string) (string, error) {
	return httpDo(ctx, s.Client, s.Timeouts.Request, method, addr, port, path, body)
}

func httpDo(ctx context.Context, c Client, timeout time.Duration, method string, addr netip.Addr, port uint16, path, body string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if hd, ok := c.(HTTPDoer); ok {
		url := "http://" + net.JoinHostPort(addr.String(), fmt.Sprint(port)) + path
		code, b, err := hd.HTTP(ctx, method, url, body)
		if err != nil {
			return "", err
		}
		if code != http.StatusOK {
			return string(b), fmt.Errorf("%s %s: %d %s", method, url, code, http.StatusText(code))
		}
		return strings.TrimSpace(string(b)), nil
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: c.Dial, DisableKeepAlives: true}}
	url := "http://" + net.JoinHostPort(addr.String(), fmt.Sprint(port)) + path
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read %s %s: %w", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}

// Eventually polls cond every 200ms until it returns nil; it fails the test with the
// last error after timeout (poll.Eventually, the repository's one).
func Eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	poll.Eventually(t, timeout, 200*time.Millisecond, what, cond)
}

// Consistently checks cond every 200ms for d; it fails the test at the first error
// (poll.Consistently).
func Consistently(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	poll.Consistently(t, d, 200*time.Millisecond, what, cond)
}

// RolloutRestart restarts Deployment name like `kubectl rollout restart` (a new
// restartedAt annotation on the pod template, so its pods are replaced by the
// Deployment's rolling strategy) and returns at once; WaitRollout waits for the end.
func (s *Suite) RolloutRestart(t *testing.T, ns, name string) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`,
		time.Now().Format(time.RFC3339Nano))
	if _, err := s.Kube.AppsV1().Deployments(ns).Patch(context.Background(), name, types.StrategicMergePatchType,
		[]byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("restart deployment %s/%s: %v", ns, name, err)
	}
}

// WaitRollout waits until Deployment name has rolled out its current template (every
// replica updated and available, as `kubectl rollout status` checks) and then until
// only its n ready pods remain (WaitPods).
func (s *Suite) WaitRollout(t *testing.T, ns, name string, n int) []corev1.Pod {
	t.Helper()
	Eventually(t, s.Timeouts.PodReady, "rollout of "+ns+"/"+name, func() error {
		d, err := s.Kube.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		want := ptr.Deref(d.Spec.Replicas, 1)
		st := d.Status
		if st.ObservedGeneration < d.Generation || st.UpdatedReplicas != want || st.Replicas != want || st.AvailableReplicas != want {
			return fmt.Errorf("generation %d observed %d, replicas %d updated %d available %d of %d",
				d.Generation, st.ObservedGeneration, st.Replicas, st.UpdatedReplicas, st.AvailableReplicas, want)
		}
		return nil
	})
	return s.WaitPods(t, ns, name, n)
}
