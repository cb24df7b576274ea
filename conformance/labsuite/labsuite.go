package labsuite

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bgplb/bgplb/conformance/lab"
	"github.com/bgplb/bgplb/conformance/suite"
	lbv1 "github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	lbclient "github.com/bgplb/bgplb/daemon/client/clientset/versioned"
)

// Client is the lab's client namespace behind the router.
type Client struct {
	NS   lab.NetNS
	Addr netip.Addr
}

// Address returns the client's IPv4 address.
func (c Client) Address() netip.Addr { return c.Addr }

// Dial opens a connection from inside the client namespace.
func (c Client) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return c.NS.Dialer(5*time.Second)(ctx, network, addr)
}

// Ping sends one ICMP echo request from the client namespace.
func (c Client) Ping(ctx context.Context, addr netip.Addr) error {
	out, err := c.NS.Exec(ctx, "ping", "-n", "-c", "1", "-W", "1", addr.String())
	if err != nil {
		return fmt.Errorf("ping %s: %w: %s", addr, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Faults restarts daemons through the lab.
type Faults struct{ Lab *lab.Lab }

// SignalDaemon implements suite.Faults.
func (f Faults) SignalDaemon(ctx context.Context, node string, sig syscall.Signal, restart bool) error {
	return f.Lab.SignalDaemon(ctx, node, sig, restart)
}

// KillRouterBGP implements suite.RouterFaults: SIGKILL to the lab router's bgpd (FRR)
// or to BIRD.
func (f Faults) KillRouterBGP(ctx context.Context) error {
	if f.Lab.Opts.Router == lab.RouterBIRD {
		return killBIRD(ctx, f.Lab)
	}
	return f.Lab.StopRouterBGP(ctx, syscall.SIGKILL)
}

// StartRouterBGP implements suite.RouterFaults.
func (f Faults) StartRouterBGP(ctx context.Context) error {
	if f.Lab.Opts.Router == lab.RouterBIRD {
		return startBIRD(ctx, f.Lab)
	}
	return f.Lab.StartRouterBGP(ctx)
}

// PauseAPIServer implements suite.ControlPlaneFaults.
func (f Faults) PauseAPIServer(_ context.Context, pause bool) error {
	return f.Lab.PauseAPIServer(pause)
}

// SetNodeLink implements suite.NodeLinkFaults.
func (f Faults) SetNodeLink(ctx context.Context, node string, up bool) error {
	return f.Lab.SetNodeLink(ctx, node, up)
}

// NodeRoutes reads the lab nodes' routing tables with `ip -j route show` in their
// namespaces.
type NodeRoutes struct{ Lab *lab.Lab }

// Routes implements suite.NodeRoutes.
func (r NodeRoutes) Routes(ctx context.Context, node string, prefix netip.Prefix) ([]string, error) {
	i := slices.IndexFunc(r.Lab.Nodes, func(n lab.Node) bool { return n.Name == node })
	if i < 0 {
		return nil, fmt.Errorf("lab has no node %q", node)
	}
	family := "-4"
	if prefix.Addr().Is6() {
		family = "-6"
	}
	out, err := lab.NetNS(r.Lab.Nodes[i].Netns).Exec(ctx, "ip", "-j", family, "route", "show", "table", "all", "exact", prefix.String())
	if err != nil {
		return nil, fmt.Errorf("read routes of %s on %s: %w: %s", prefix, node, err, strings.TrimSpace(string(out)))
	}
	var routes []map[string]any
	if s := strings.TrimSpace(string(out)); s != "" {
		if err := json.Unmarshal([]byte(s), &routes); err != nil {
			return nil, fmt.Errorf("parse routes of %s on %s: %w", prefix, node, err)
		}
	}
	res := make([]string, 0, len(routes))
	for _, rt := range routes {
		b, err := json.Marshal(rt)
		if err != nil {
			return nil, fmt.Errorf("print route of %s on %s: %w", prefix, node, err)
		}
		res = append(res, string(b))
	}
	return res, nil
}

// New returns a suite for the lab l with every feature declared supported.
func New(l *lab.Lab) (*suite.Suite, error) {
	cfg, err := l.RESTConfig()
	if err != nil {
		return nil, err
	}
	kube, err := l.Clientset()
	if err != nil {
		return nil, err
	}
	lbc, err := lbclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create bgplb clientset: %w", err)
	}
	s := &suite.Suite{
		Kube:               kube,
		LB:                 lbc,
		Router:             l.BGPRouter(),
		Client:             Client{NS: lab.NetNS(lab.ClientNS), Addr: lab.ClientV4},
		SubnetClient:       suite.ExecSubnetClient{ExecClient: suite.ExecClient{Exec: suite.Exec{"ip", "netns", "exec", lab.FabricClientNS}, Addr: lab.FabricClientV4}},
		Faults:             Faults{Lab: l},
		NodeRoutes:         NodeRoutes{Lab: l},
		ControlPlaneFaults: Faults{Lab: l},
		NodeLinkFaults:     Faults{Lab: l},
		Timeouts:           suite.DefaultTimeouts,
		Class:              lbv1.DefaultLoadBalancerClass,
		Mode:               suite.ModeExplicitClass,
		VIPRange:           netip.MustParsePrefix("203.0.113.0/24"),
		PeerName:           "lab-router",
		SupportedFeatures:  suite.AllFeatures(),
		PodImage:           "bgplb.io/podserver:lab",
	}
	if l.Opts.Runtime == lab.RuntimeContainerd {
		// Real nodes run the podserver image imported into their containerd.
		if s.PodImage, err = l.ImageRef("podserver"); err != nil {
			return nil, err
		}
		// Only a real node has a machine of its own to run commands on (CNI-CHAINED).
		s.NodeExec = NodeExec{Lab: l}
	}
	if !l.Opts.ExportPodCIDR {
		// The router holds static pod routes; nothing for C14 to check.
		s.SupportedFeatures = slices.DeleteFunc(s.SupportedFeatures, func(f suite.Feature) bool { return f == suite.FeaturePodCIDRExport })
	}
	// FRR's bgpd is stopped and started alone; BIRD, one process, as a whole.
	s.RouterFaults = Faults{Lab: l}
	if !l.Opts.IPv6 {
		// A single-stack cluster: no IPv6 Service can exist.
		s.SupportedFeatures = slices.DeleteFunc(s.SupportedFeatures, func(f suite.Feature) bool {
			return f == suite.FeatureIPv6 || f == suite.FeatureDualStack
		})
	}
	for _, n := range l.Nodes {
		s.Nodes = append(s.Nodes, suite.Node{Name: n.Name, Addresses: n.IPs})
	}
	return s, nil
}

// NodeExec runs commands on the lab's real nodes (lab.Lab.NodeExec).
type NodeExec struct{ Lab *lab.Lab }

// NodeExec implements suite.NodeExec.
func (e NodeExec) NodeExec(ctx context.Context, node string, stdin []byte, argv ...string) ([]byte, error) {
	var out, errb bytes.Buffer
	var in io.Reader
	if stdin != nil {
		in = bytes.NewReader(stdin)
	}
	if err := e.Lab.NodeExec(ctx, node, in, &out, &errb, argv...); err != nil {
		return out.Bytes(), fmt.Errorf("%w: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// ApplyBase creates (or keeps) the pool 203.0.113.0/25 + 2001:db8:ffff::/120, the peer
// (the lab router, graceful restart on by default, short timers) and an advertisement of every
// Service not labelled suite.WeightedLabel.
func ApplyBase(ctx context.Context, c lbclient.Interface) error {
	api := c.BgplbV1alpha1()
	pool := &lbv1.LoadBalancerIPPool{ObjectMeta: metav1.ObjectMeta{Name: "lab"},
		Spec: lbv1.LoadBalancerIPPoolSpec{Blocks: []lbv1.IPBlock{{CIDR: "203.0.113.0/25"}, {CIDR: "2001:db8:ffff::/120"}}}}
	peer := &lbv1.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: "lab-router"},
		Spec: lbv1.BGPPeerSpec{
			LocalASN: lab.NodeASN, PeerASN: lab.RouterASN, PeerAddress: lab.RouterFabricV4.String(),
			Timers: &lbv1.BGPTimers{ConnectRetrySeconds: ptr.To[int32](2), HoldTimeSeconds: ptr.To[int32](9),
				KeepaliveTimeSeconds: ptr.To[int32](3)},
			// Graceful restart is on by default; the suite keeps the default on.
			GracefulRestart: &lbv1.GracefulRestart{RestartTimeSeconds: ptr.To[int32](60)},
		}}
	adv := &lbv1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: "lab"},
		Spec: lbv1.BGPAdvertisementSpec{ServiceSelector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: suite.WeightedLabel, Operator: metav1.LabelSelectorOpDoesNotExist}},
		}}}
	if _, err := api.LoadBalancerIPPools().Create(ctx, pool, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create pool %s: %w", pool.Name, err)
	}
	if _, err := api.BGPPeers().Create(ctx, peer, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create peer %s: %w", peer.Name, err)
	}
	if _, err := api.BGPAdvertisements().Create(ctx, adv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create advertisement %s: %w", adv.Name, err)
	}
	return nil
}

// ApplyDualStack makes the base peer carry both address families (spec.addressFamilies
// [IPv4, IPv6]), which a dual-stack lab needs: one session per node over IPv4 carries the
// IPv6 VIPs too, with the node's IPv6 address as next hop, and the lab router activates
// IPv6 unicast on its IPv4 neighbours. ApplyBase must have created the peer.
func ApplyDualStack(ctx context.Context, c lbclient.Interface) error {
	peers := c.BgplbV1alpha1().BGPPeers()
	want := []lbv1.AddressFamily{lbv1.AddressFamilyIPv4, lbv1.AddressFamilyIPv6}
	for {
		peer, err := peers.Get(ctx, "lab-router", metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("get peer lab-router: %w", err)
		}
		if slices.Equal(peer.Spec.AddressFamilies, want) {
			return nil
		}
		peer.Spec.AddressFamilies = want
		_, err = peers.Update(ctx, peer, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("update peer lab-router: %w", err)
		}
		return nil
	}
}
