package ipam

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// mkPool builds a pool created `age` seconds after epoch; a block is "cidr" or "start-stop".
func mkPool(name string, age int, blocks ...string) *v1alpha1.LoadBalancerIPPool {
	p := &v1alpha1.LoadBalancerIPPool{
		ObjectMeta: metav1.ObjectMeta{Name: name, Generation: 1, CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(age) * time.Second))},
	}
	for _, b := range blocks {
		if start, stop, ok := strings.Cut(b, "-"); ok {
			p.Spec.Blocks = append(p.Spec.Blocks, v1alpha1.IPBlock{Start: start, Stop: stop})
		} else {
			p.Spec.Blocks = append(p.Spec.Blocks, v1alpha1.IPBlock{CIDR: b})
		}
	}
	return p
}

type poolOpt func(*v1alpha1.LoadBalancerIPPool)

func withPoolOpts(p *v1alpha1.LoadBalancerIPPool, opts ...poolOpt) *v1alpha1.LoadBalancerIPPool {
	for _, o := range opts {
		o(p)
	}
	return p
}

func noAuto(p *v1alpha1.LoadBalancerIPPool)   { f := false; p.Spec.AutoAssign = &f }
func disabled(p *v1alpha1.LoadBalancerIPPool) { p.Spec.Disabled = true }
func priority(n int32) poolOpt {
	return func(p *v1alpha1.LoadBalancerIPPool) { p.Spec.Priority = n }
}
func avoidBuggy(p *v1alpha1.LoadBalancerIPPool) {
	p.Spec.AvoidBuggyIPs = true
}
func svcSelector(k, v string) poolOpt {
	return func(p *v1alpha1.LoadBalancerIPPool) {
		p.Spec.ServiceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
}
func nsSelector(k, v string) poolOpt {
	return func(p *v1alpha1.LoadBalancerIPPool) {
		p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
}

type svcOpt func(*corev1.Service)

// mkSvc builds an IPv4 SingleStack LoadBalancer Service of our class with port 80/TCP.
func mkSvc(name string, opts ...svcOpt) *corev1.Service {
	class := v1alpha1.DefaultLoadBalancerClass
	ns, n, ok := strings.Cut(name, "/")
	if !ok {
		ns, n = "default", name
	}
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n, CreationTimestamp: metav1.NewTime(epoch)},
		Spec: corev1.ServiceSpec{
			Type:              corev1.ServiceTypeLoadBalancer,
			LoadBalancerClass: &class,
			IPFamilies:        []corev1.IPFamily{corev1.IPv4Protocol},
			Ports:             []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}},
			Selector:          map[string]string{"app": n},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func class(c string) svcOpt {
	return func(s *corev1.Service) {
		if c == "" {
			s.Spec.LoadBalancerClass = nil
			return
		}
		s.Spec.LoadBalancerClass = &c
	}
}
func svcType(t corev1.ServiceType) svcOpt { return func(s *corev1.Service) { s.Spec.Type = t } }
func lbIP(ip string) svcOpt               { return func(s *corev1.Service) { s.Spec.LoadBalancerIP = ip } }
func annot(k, v string) svcOpt {
	return func(s *corev1.Service) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[k] = v
	}
}
func label(k, v string) svcOpt {
	return func(s *corev1.Service) {
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[k] = v
	}
}
func sharing(key string) svcOpt { return annot(v1alpha1.AnnotationSharingKey, key) }
func ports(ps ...int32) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.Ports = nil
		for _, p := range ps {
			proto := corev1.ProtocolTCP
			if p < 0 {
				p, proto = -p, corev1.ProtocolUDP
			}
			s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: p, Protocol: proto})
		}
	}
}
func local(s *corev1.Service) {
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
}
func selector(app string) svcOpt {
	return func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": app} }
}
func families(policy corev1.IPFamilyPolicy, fams ...corev1.IPFamily) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = &policy
		s.Spec.IPFamilies = fams
	}
}
func status(ips ...string) svcOpt {
	return func(s *corev1.Service) {
		s.Status.LoadBalancer.Ingress = nil
		for _, ip := range ips {
			s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
		}
	}
}
func created(sec int) svcOpt {
	return func(s *corev1.Service) {
		s.CreationTimestamp = metav1.NewTime(epoch.Add(time.Duration(sec) * time.Second))
	}
}

// writeStatus mimics the controller writing a Result into the Service's status.
func writeStatus(s *corev1.Service, r Result) {
	if r.Ours {
		s.Status.LoadBalancer.Ingress = r.Ingress()
	}
}

func ipStrings(ips []netip.Addr) string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return strings.Join(out, ",")
}

func newAlloc(t testing.TB, cfg Config, pools ...*v1alpha1.LoadBalancerIPPool) *Allocator {
	t.Helper()
	a := New(cfg)
	a.SetPools(pools)
	return a
}
