package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/suite"
	"github.com/bgplb/bgplb/conformance/tests"
)

// Run is the suite's one entry point, for bgplb-conformance and go test alike: it
// builds the suite from c (a broken router or cluster connection fails t before any
// test), lets adapt add adapters the flags cannot express (the lab's faults), runs
// the registered tests of the chosen profiles and writes the report. It returns the
// report (also when t failed).
func Run(t *testing.T, c *Config, adapt func(*suite.Suite)) suite.Report {
	t.Helper()
	ctx := context.Background()
	s, err := c.Build(ctx)
	if err != nil {
		t.Fatalf("bgplb-conformance: %v", err)
	}
	if adapt != nil {
		adapt(s)
	}
	return RunSuite(t, c, s)
}

// RunSuite runs the chosen tests on a built suite and writes the report.
func RunSuite(t *testing.T, c *Config, s *suite.Suite) suite.Report {
	t.Helper()
	ctx := context.Background()
	var chosen []suite.ConformanceTest
	for _, ct := range tests.ConformanceTests {
		if len(c.Profiles) > 0 && !slices.Contains(c.Profiles, ct.Profile) {
			continue
		}
		chosen = append(chosen, ct)
	}
	if s.SkipTests == nil {
		s.SkipTests = map[string]string{}
	}
	for _, name := range c.SkipTests {
		if !slices.ContainsFunc(tests.ConformanceTests, func(ct suite.ConformanceTest) bool { return ct.ShortName == name }) {
			t.Fatalf("bgplb-conformance: --skip-tests: no test %q", name)
		}
		s.SkipTests[name] = "left out by --skip-tests"
	}
	// Tests start from settled sessions with every node (and a run against a router
	// that peers with nobody stops here, saying so).
	s.WaitSessions(t)
	if s.Client == nil {
		t.Logf("no client adapter (--client-exec): the tests that need one are skipped and LB-DATAPATH is partial")
	}
	results := suite.Run(t, s, chosen, testing.Short())

	env := suite.Environment{Kubernetes: "unknown", Router: s.Router.Name(ctx), Kernel: kernel(ctx, s), Setup: c.Setup}
	if c.KubernetesVersion != "" {
		env.Kubernetes = c.KubernetesVersion
	} else if v, err := s.Kube.Discovery().ServerVersion(); err == nil {
		env.Kubernetes = v.GitVersion
	}
	rep := suite.BuildReport(suite.Implementation{Name: c.Implementation, Version: c.ImplementationVersion},
		s.Mode, env, s.SupportedFeatures, results)
	for _, p := range rep.Profiles {
		t.Logf("profile %s: %s (core %d passed, %d failed, %d skipped; extended %d passed, %d failed, %d skipped)",
			p.Name, p.Result, p.Core.Passed, p.Core.Failed, p.Core.Skipped, p.Extended.Passed, p.Extended.Failed, p.Extended.Skipped)
	}
	if path := absPath(c.Report); path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatalf("create report dir: %v", err)
		}
		if err := rep.Write(path); err != nil {
			t.Fatal(err)
		}
		t.Logf("conformance report written to %s", path)
	}
	return rep
}

// APIFaults restarts bgplbd on a node by deleting its pod through the API (its
// DaemonSet starts a new one): SIGKILL deletes with grace 0, other signals with the
// pod's grace period. It cannot keep a daemon down (restart false).
type APIFaults struct {
	Kube      kubernetes.Interface
	Namespace string
	Selector  string
}

var _ suite.Faults = APIFaults{}

// SignalDaemon implements suite.Faults.
func (f APIFaults) SignalDaemon(ctx context.Context, node string, sig syscall.Signal, restart bool) error {
	if !restart {
		return fmt.Errorf("keep bgplbd on %s down through the API: %w", node, suite.ErrUnsupported)
	}
	pods, err := f.Kube.CoreV1().Pods(f.Namespace).List(ctx, metav1.ListOptions{LabelSelector: f.Selector,
		FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return fmt.Errorf("list bgplbd pods on %s: %w", node, err)
	}
	if len(pods.Items) != 1 {
		return fmt.Errorf("want one bgplbd pod (%s in %s) on %s, found %d", f.Selector, f.Namespace, node, len(pods.Items))
	}
	old := pods.Items[0]
	opts := metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &old.UID}}
	if sig == syscall.SIGKILL {
		opts.GracePeriodSeconds = ptr.To[int64](0)
	}
	if err := f.Kube.CoreV1().Pods(f.Namespace).Delete(ctx, old.Name, opts); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete bgplbd pod %s: %w", old.Name, err)
	}
	// Return once the old pod is gone and its replacement is ready, like a supervisor
	// that restarted the process.
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	for {
		pods, err := f.Kube.CoreV1().Pods(f.Namespace).List(ctx, metav1.ListOptions{LabelSelector: f.Selector,
			FieldSelector: "spec.nodeName=" + node})
		if err == nil && len(pods.Items) == 1 && pods.Items[0].UID != old.UID && suite.PodReady(&pods.Items[0]) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for bgplbd's new pod on %s: %w", node, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// prefSrc reads the source address from `ip -j route get` output.
func prefSrc(out []byte) (netip.Addr, error) {
	var rts []struct {
		PrefSrc string `json:"prefsrc"`
	}
	if err := json.Unmarshal(out, &rts); err != nil || len(rts) == 0 {
		return netip.Addr{}, fmt.Errorf("decode ip route get output %q: %v", out, err)
	}
	a, err := netip.ParseAddr(rts[0].PrefSrc)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route has no source address: %q", out)
	}
	return a, nil
}
