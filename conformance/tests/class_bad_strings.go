package tests

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
)

// G6: an invalid loadBalancerClass, or a class on a Service that is not a LoadBalancer,
// is rejected by the API server naming spec.loadBalancerClass, and nothing is created.
func init() {
	ConformanceTests = append(ConformanceTests, suite.ConformanceTest{
		ShortName: "BadInputClassStrings",
		ID:        "G6",
		Description: "a LoadBalancer Service with an invalid loadBalancerClass and a ClusterIP Service with a " +
			"loadBalancerClass are rejected by the API server naming spec.loadBalancerClass; nothing is created",
		Profile:  "LB-IPAM",
		Features: []suite.Feature{suite.FeatureClassSelection},
		Test:     testBadClassStrings,
	})
}

func testBadClassStrings(t *testing.T, s *suite.Suite) {
	ns := s.Namespace(t, "conf-bad-class")
	svc := func(name string, typ corev1.ServiceType, class string) *corev1.Service {
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.ServiceSpec{
				Type:              typ,
				LoadBalancerClass: ptr.To(class),
				Selector:          map[string]string{"app": name},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP,
					TargetPort: intstr.FromInt32(8080)}},
			},
		}
	}
	cases := []struct {
		what string
		svc  *corev1.Service
	}{
		{"LoadBalancer with a class containing spaces", svc("spaces", corev1.ServiceTypeLoadBalancer, "bgplb.io/not a class")},
		{"LoadBalancer with an empty name after the prefix", svc("emptyname", corev1.ServiceTypeLoadBalancer, "bgplb.io/")},
		{"ClusterIP with our class", svc("clusterip", corev1.ServiceTypeClusterIP, s.Class)},
		{"NodePort with our class", svc("nodeport", corev1.ServiceTypeNodePort, s.Class)},
	}
	for _, c := range cases {
		_, err := s.Kube.CoreV1().Services(ns).Create(ctxBG, c.svc, metav1.CreateOptions{})
		suite.ExpectInvalid(t, c.what, err, "spec.loadBalancerClass")
		if _, err := s.Kube.CoreV1().Services(ns).Get(ctxBG, c.svc.Name, getOpts); !apierrors.IsNotFound(err) {
			t.Errorf("%s: Service %s/%s exists after the rejection (get: %v)", c.what, ns, c.svc.Name, err)
		}
	}
	list, err := s.Kube.CoreV1().Services(ns).List(ctxBG, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("namespace %s holds %d Services after only rejected creates", ns, len(list.Items))
	}
}
