//go:build bench

package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/suite"
)

// TestBenchConvergence measures the time from a pod's Ready condition changing (as the
// API server reports it) to the router's kernel FIB gaining or losing the VIP route,
// over 100 changes: an ETP=Local Service whose only backend is one pod on node1, made
// unready and ready again through its /ready endpoint.
func TestBenchConvergence(t *testing.T) {
	_, s := benchLab(t)
	ctx := context.Background()
	ns := s.Namespace(t, "bench-convergence")
	d := s.Backend(t, ns, "conv", "node1", 1)
	s.LBService(t, ns, "conv", "conv", suite.WithLocal)
	vip := s.WaitIngress(t, ns, "conv")
	pod := s.WaitPods(t, ns, d, 1)[0]
	s.EventuallyNextHops(t, vip, s.NodeAddrs("node1"))
	podIP := pod.Status.PodIP

	// FIB events of the router namespace, as the kernel reports them.
	mctx, stop := context.WithCancel(ctx)
	defer stop()
	mon := exec.CommandContext(mctx, "ip", "-n", lab.RouterNS, "monitor", "route")
	out, err := mon.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := mon.Start(); err != nil {
		t.Fatalf("start ip monitor: %v", err)
	}
	defer func() { stop(); _ = mon.Wait() }()
	type fibEvent struct {
		added bool
		at    time.Time
	}
	fib := make(chan fibEvent, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			deleted := len(f) > 0 && f[0] == "Deleted"
			if deleted {
				f = f[1:]
			}
			if len(f) == 0 || strings.TrimSuffix(f[0], "/32") != vip.String() {
				continue
			}
			fib <- fibEvent{added: !deleted, at: time.Now()}
		}
	}()

	// Ready transitions of the pod, as the API server reports them.
	w, err := s.Kube.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: pod.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	// Stopping the watch can end its stream with an error event; only one before the
	// measurement is done is worth a line.
	var measured atomic.Bool
	defer func() {
		measured.Store(true)
		w.Stop()
	}()
	readyAt := make(chan fibEvent, 64)
	go func() {
		last := true
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				if !measured.Load() {
					t.Logf("pod watch: %s %v", ev.Type, ev.Object)
				}
				continue
			}
			if ev.Type != watch.Modified || p.Name != pod.Name {
				continue
			}
			if r := suite.PodReady(p); r != last {
				last = r
				readyAt <- fibEvent{added: r, at: time.Now()}
			}
		}
	}()

	const changes = 100
	var up, down []time.Duration
	for i := 0; i < changes; i++ {
		ready := i%2 == 1
		if err := s.SetReady(ctx, mustParse(podIP), ready); err != nil {
			t.Fatalf("change %d: set ready=%v: %v", i, ready, err)
		}
		var t0 time.Time
		select {
		case ev := <-readyAt:
			if ev.added != ready {
				t.Fatalf("change %d: pod went ready=%v, want %v", i, ev.added, ready)
			}
			t0 = ev.at
		case <-time.After(30 * time.Second):
			t.Fatalf("change %d: the pod's Ready condition did not change to %v", i, ready)
		}
		for {
			select {
			case ev := <-fib:
				if ev.added != ready {
					continue // a replace of the old state
				}
				lat := ev.at.Sub(t0)
				if ready {
					up = append(up, lat)
				} else {
					down = append(down, lat)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("change %d: the router's FIB did not follow ready=%v", i, ready)
			}
			break
		}
	}
	measured.Store(true)
	all := append(append([]time.Duration{}, up...), down...)
	row := func(name string, ds []time.Duration) []string {
		return []string{name, fmt.Sprint(len(ds)), ms(Percentile(ds, 50)), ms(Percentile(ds, 99)), ms(Percentile(ds, 100))}
	}
	tab := Table{
		Title:   "Convergence: pod Ready change → router FIB",
		Note:    "ETP=Local, one backend pod on node1; time from the API server's Pod update to `ip monitor route` in the router namespace. Target p99 ≤ 300 ms.",
		Columns: []string{"change", "n", "p50", "p99", "max"},
		Rows:    [][]string{row("route appears (ready)", up), row("route disappears (unready)", down), row("all", all)},
	}
	t.Logf("convergence p50 %s p99 %s over %d changes", ms(Percentile(all, 50)), ms(Percentile(all, 99)), len(all))
	if err := tab.Write(*resultsPath); err != nil {
		t.Fatal(err)
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func mustParse(s string) netip.Addr { return netip.MustParseAddr(s) }
