//go:build apiserver

package apiservertest_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/bgplb/bgplb/internal/apiservertest"
)

var corev1Namespace = corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apiservertest"}}

// TestStart: the returned rest.Config and kubeconfig both reach a working API server
// with full rights.
func TestStart(t *testing.T) {
	s := apiservertest.Start(t)
	cs, err := kubernetes.NewForConfig(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1Namespace, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace with rest.Config: %v", err)
	}
	out, err := exec.Command(apiservertest.Tool(t, "kubectl"), "--kubeconfig", s.Kubeconfig,
		"get", "namespace", corev1Namespace.Name, "-o", "name").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "namespace/"+corev1Namespace.Name {
		t.Fatalf("kubectl with the kubeconfig: %v\n%s", err, out)
	}
}
