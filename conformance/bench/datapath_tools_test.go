//go:build bench

package bench

// Driving the load tools (wrk, iperf3) inside the lab's namespaces.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bgplb/bgplb/conformance/lab"
)

func podNetns(t *testing.T, ip netip.Addr) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], lab.PodNSPrefix) {
			continue
		}
		js, err := exec.Command("ip", "-n", f[0], "-j", "addr").Output()
		if err != nil {
			continue
		}
		var links []struct {
			AddrInfo []struct {
				Local string `json:"local"`
			} `json:"addr_info"`
		}
		if json.Unmarshal(js, &links) != nil {
			continue
		}
		for _, l := range links {
			for _, a := range l.AddrInfo {
				if a.Local == ip.String() {
					return f[0]
				}
			}
		}
	}
	t.Fatalf("no pod namespace holds %s", ip)
	return ""
}

var wrkRateRE = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

// wrkRate runs wrk from the client namespace against http://addr:port/ and returns
// requests per second; with newConn every request opens a new connection.
func wrkRate(ctx context.Context, addr netip.Addr, port uint16, newConn bool) (float64, error) {
	argv := []string{"wrk", "-t2", "-c32", "-d" + durSeconds(*dpDuration), "--timeout", "2s"}
	if newConn {
		argv = append(argv, "-H", "Connection: close")
	}
	argv = append(argv, fmt.Sprintf("http://%s/", netip.AddrPortFrom(addr, port)))
	cctx, cancel := context.WithTimeout(ctx, *dpDuration+20*time.Second)
	defer cancel()
	out, err := lab.NetNS(lab.ClientNS).Exec(cctx, argv...)
	if err != nil {
		return 0, err
	}
	m := wrkRateRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no Requests/sec in wrk output: %s", out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("wrk rate %q: %s", m[1], out)
	}
	return v, nil
}

// iperfGbps runs one iperf3 TCP stream of length d from the client namespace to
// addr:port, served by a one-off iperf3 server started in the pod's namespace podNS,
// and returns the receiver's throughput in Gbit/s.
func iperfGbps(ctx context.Context, podNS string, addr netip.Addr, port uint16, d time.Duration) (float64, error) {
	cctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	srv := exec.CommandContext(cctx, "ip", "netns", "exec", podNS, "iperf3", "-s", "-1", "-p", "5201")
	if err := srv.Start(); err != nil {
		return 0, fmt.Errorf("start iperf3 server in %s: %w", podNS, err)
	}
	defer func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	}()
	// Wait until the server listens.
	for i := 0; ; i++ {
		out, _ := exec.CommandContext(cctx, "ip", "netns", "exec", podNS, "ss", "-Htln", "sport = :5201").Output()
		if strings.TrimSpace(string(out)) != "" {
			break
		}
		if i == 50 {
			return 0, fmt.Errorf("iperf3 server in %s does not listen", podNS)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := lab.NetNS(lab.ClientNS).Exec(cctx, "iperf3", "-c", addr.String(), "-p", strconv.Itoa(int(port)),
		"-t", durSeconds(d), "-J")
	if err != nil {
		return 0, err
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Errorf("parse iperf3 output: %w: %s", err, out)
	}
	if r.Error != "" || r.End.SumReceived.BitsPerSecond <= 0 {
		return 0, fmt.Errorf("iperf3: %q: %s", r.Error, out)
	}
	return r.End.SumReceived.BitsPerSecond / 1e9, nil
}

func durSeconds(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s) + "s"
}
