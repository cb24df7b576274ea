package runner

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/bgplb/bgplb/conformance/suite"
)

// fakeFaults writes a --faults-exec script that logs its arguments and answers like
// a lab without router faults (a BIRD lab).
func fakeFaults(t *testing.T) (string, string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	script := filepath.Join(dir, "faults")
	body := `#!/bin/sh
echo "$*" >> ` + log + `
case "$1" in
capabilities) echo "daemon apiserver node-routes node-link" ;;
node-routes) echo '["{\"dst\":\"203.0.113.240/29\"}"]' ;;
esac
`
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, log
}

func TestExecFaults(t *testing.T) {
	ctx := context.Background()
	script, log := fakeFaults(t)
	s := &suite.Suite{}
	if err := addExecFaults(ctx, s, "sh "+script); err != nil {
		t.Fatal(err)
	}
	if s.Faults == nil || s.ControlPlaneFaults == nil || s.NodeRoutes == nil || s.NodeLinkFaults == nil {
		t.Fatalf("adapters missing for the capabilities daemon apiserver node-routes node-link: %+v", s)
	}
	if s.RouterFaults != nil {
		t.Error("RouterFaults set although the command lacks router-bgp")
	}
	if err := s.Faults.SignalDaemon(ctx, "node2", syscall.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	if err := s.ControlPlaneFaults.PauseAPIServer(ctx, true); err != nil {
		t.Fatal(err)
	}
	routes, err := s.NodeRoutes.Routes(ctx, "node1", netip.MustParsePrefix("203.0.113.240/29"))
	if err != nil || !slices.Equal(routes, []string{`{"dst":"203.0.113.240/29"}`}) {
		t.Errorf("Routes = %q, %v", routes, err)
	}
	if err := s.NodeLinkFaults.SetNodeLink(ctx, "node3", false); err != nil {
		t.Fatal(err)
	}
	if err := s.NodeLinkFaults.SetNodeLink(ctx, "node3", true); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"capabilities", "signal-daemon node2 9 stay-down", "pause-apiserver true", "node-routes node1 203.0.113.240/29", "node-link node3 down", "node-link node3 up"}
	if got := strings.Split(strings.TrimSpace(string(b)), "\n"); !slices.Equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
}

func TestExecFaultsFailure(t *testing.T) {
	err := addExecFaults(context.Background(), &suite.Suite{}, "/nonexistent/bgplb-faults")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/bgplb-faults capabilities") {
		t.Errorf("error %v: want the failed command named", err)
	}
}

func TestRouterAdapterCommands(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	for _, name := range []string{"vtysh", "birdc", "ip"} {
		body := "#!/bin/sh\necho \"" + name + " $*\" >> " + log + "\necho '{}'\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	prefix := "env PATH=" + dir + ":/usr/bin:/bin"
	ctx := context.Background()
	frr, err := (&Config{Router: "frr", RouterExec: prefix, RouterCLI: "vtysh --vty_socket /x"}).RouterAdapter()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = frr.Neighbors(ctx)
	bird, err := (&Config{Router: "bird", RouterExec: prefix}).RouterAdapter()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = bird.Neighbors(ctx)
	_, _ = bird.FIBNextHops(ctx, netip.MustParsePrefix("203.0.113.1/32"))
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"vtysh --vty_socket /x -c show bgp neighbors json", "birdc show protocols all", "ip -4 -j route show exact 203.0.113.1/32"}
	if got := strings.Split(strings.TrimSpace(string(b)), "\n"); !slices.Equal(got, want) {
		t.Errorf("commands %q, want %q", got, want)
	}
}
