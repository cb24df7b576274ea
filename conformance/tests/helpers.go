package tests

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/bgplb/bgplb/conformance/suite"
)

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("parse address %q: %v", s, err)
	}
	return a
}

// spreadRequests sends n GET /hostname requests to vip:80 from the client, each on a new
// connection (a new flow), and fails the test when one fails, when a pod of pods never
// answers, or (with namePrefix set) when a backend whose name lacks namePrefix answers.
func spreadRequests(t *testing.T, s *suite.Suite, vip netip.Addr, n int, pods []corev1.Pod, namePrefix string) {
	t.Helper()
	ctx := context.Background()
	seen := map[string]int{}
	failures := 0
	for i := 0; i < n; i++ {
		name, err := s.HTTPGet(ctx, vip, 80, "/hostname")
		if err != nil {
			failures++
			t.Logf("request %d: %v", i, err)
			continue
		}
		seen[name]++
	}
	t.Logf("%d requests, %d failed, per backend: %v", n, failures, seen)
	if failures > 0 {
		t.Errorf("%d of %d requests failed", failures, n)
	}
	for _, p := range pods {
		if seen[p.Name] == 0 {
			t.Errorf("backend %s (%s) never answered", p.Name, p.Spec.NodeName)
		}
	}
	for name := range seen {
		if namePrefix != "" && !strings.HasPrefix(name, namePrefix) {
			t.Errorf("answer from an unexpected backend %q", name)
		}
	}
}

// pauseAPIServer makes the API server stop answering and returns the function that
// resumes it; the test's cleanup resumes it too, so it is never left paused.
func pauseAPIServer(ctx context.Context, t *testing.T, s *suite.Suite) (resume func()) {
	t.Helper()
	t.Log("pause the API server")
	if err := s.ControlPlaneFaults.PauseAPIServer(ctx, true); err != nil {
		t.Fatalf("pause the API server: %v", err)
	}
	paused := true
	resume = func() {
		if paused {
			if err := s.ControlPlaneFaults.PauseAPIServer(context.Background(), false); err != nil {
				t.Errorf("resume the API server: %v", err)
			}
			paused = false
		}
	}
	t.Cleanup(resume)
	return resume
}
