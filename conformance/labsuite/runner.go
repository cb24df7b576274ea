package labsuite

import (
	"path/filepath"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/runner"
	"github.com/bgplb/bgplb/conformance/suite"
)

// RunnerConfig returns the bgplb-conformance configuration that reaches the lab l the
// way a user's cluster is reached: its kubeconfig, the router's CLI and the two
// clients through `ip netns exec` command prefixes. The caller adds what to run
// (profiles, report).
func RunnerConfig(l *lab.Lab) *runner.Config {
	c := &runner.Config{
		Kubeconfig:          l.Kubeconfig(),
		Router:              lab.RouterFRR,
		RouterExec:          "ip netns exec " + lab.RouterNS,
		RouterCLI:           "vtysh --vty_socket " + filepath.Join(l.Dir, "frr"),
		ClientExec:          "ip netns exec " + lab.ClientNS,
		ClientAddress:       lab.ClientV4.String(),
		SubnetClientExec:    "ip netns exec " + lab.FabricClientNS,
		SubnetClientAddress: lab.FabricClientV4.String(),
		PodserverImage:      "bgplb.io/podserver:lab",
		Class:               "bgplb.io/bgp",
		Mode:                string(suite.ModeExplicitClass),
		VIPRange:            "203.0.113.0/24",
		Peer:                "lab-router",
		IPv6:                l.Opts.IPv6,
		Converge:            suite.DefaultTimeouts.Converge,
		DaemonNamespace:     "bgplb-system",
		Implementation:      "bgplb",
	}
	if l.Opts.Router == lab.RouterBIRD {
		c.Router = lab.RouterBIRD
		c.RouterCLI = "birdc -s " + filepath.Join(l.Dir, "bird", "bird.ctl")
	}
	return c
}

// Adapters returns Run's adapt hook for the lab: the adapters no command-line flag
// can express (bgplbd processes signalled, the router's bgpd killed, the API server
// paused, the nodes' routes read, a node's link cut, commands run on a real node), taken
// from ls (New), the features the lab's options decide, and the pod image its nodes run
// (real nodes: the podserver image imported into their containerd; RunnerConfig's
// placeholder only suits the lab kubelet, which runs the pod server whatever the image).
func Adapters(ls *suite.Suite) func(*suite.Suite) {
	return func(s *suite.Suite) {
		s.Faults = ls.Faults
		s.RouterFaults = ls.RouterFaults
		s.ControlPlaneFaults = ls.ControlPlaneFaults
		s.NodeRoutes = ls.NodeRoutes
		s.NodeLinkFaults = ls.NodeLinkFaults
		s.NodeExec = ls.NodeExec
		s.SupportedFeatures = ls.SupportedFeatures
		s.PodImage = ls.PodImage
	}
}
