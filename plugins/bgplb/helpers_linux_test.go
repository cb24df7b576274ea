package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/vishvananda/netlink"
	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/registry"
	"github.com/bgplb/bgplb/daemon/registry/api"
)

// env is one test's world: a "host" netns (where the plugin runs and the host-side veths
// live), a container netns, a private pin dir under /sys/fs/bpf, a records dir and an
// in-process bgplbd registry on a temporary socket. Everything is removed at cleanup.
type env struct {
	hostNS, ctrNS ns.NetNS
	pinDir        string
	recordsDir    string
	sock          string
	reg           *registry.Registry
	stopDaemon    func()
}

func newEnv() *env {
	e := &env{}
	var err error
	e.hostNS, err = testutils.NewNS()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		Expect(e.hostNS.Close()).To(Succeed())
		Expect(testutils.UnmountNS(e.hostNS)).To(Succeed())
	})
	e.ctrNS, err = testutils.NewNS()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		Expect(e.ctrNS.Close()).To(Succeed())
		Expect(testutils.UnmountNS(e.ctrNS)).To(Succeed())
	})
	e.pinDir, err = os.MkdirTemp(bpffsRoot, "bgplb-cnitest-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		// Unpin whatever a failed test left, then remove the directory tree.
		links, _ := filepath.Glob(filepath.Join(e.pinDir, "links", "*"))
		for _, l := range links {
			_ = bpf.DetachPod(l)
		}
		Expect(os.RemoveAll(e.pinDir)).To(Succeed())
	})
	tmp := GinkgoT().TempDir()
	e.recordsDir = filepath.Join(tmp, "endpoints")
	e.sock = filepath.Join(tmp, "run", "bgplbd.sock")
	e.startDaemon()
	DeferCleanup(func() { e.stopDaemon() })
	return e
}

// startDaemon runs a fresh registry (like bgplbd on start: Rebuild, then Serve).
func (e *env) startDaemon() registry.RebuildResult {
	e.reg = registry.New()
	ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), klog.Background()))
	res, err := e.reg.Rebuild(ctx, api.RecordStore{Dir: e.recordsDir})
	Expect(err).NotTo(HaveOccurred())
	done := make(chan error, 1)
	go func() { done <- e.reg.Serve(ctx, e.sock) }()
	stopped := false
	e.stopDaemon = func() {
		if !stopped {
			stopped = true
			cancel()
			Expect(<-done).To(Succeed())
		}
	}
	Eventually(func() error {
		return api.NewClient(e.sock).Ping(context.Background())
	}).WithTimeout(10 * time.Second).WithPolling(20 * time.Millisecond).Should(Succeed())
	return res
}

// veth creates a veth pair: hostName in the host netns, ctrName in the container netns,
// both up. It returns the host side's ifindex.
func (e *env) veth(hostName, ctrName string) int {
	var idx int
	Expect(e.hostNS.Do(func(ns.NetNS) error {
		la := netlink.NewLinkAttrs()
		la.Name = hostName
		v := &netlink.Veth{LinkAttrs: la, PeerName: ctrName, PeerNamespace: netlink.NsFd(int(e.ctrNS.Fd()))}
		if err := netlink.LinkAdd(v); err != nil {
			return fmt.Errorf("add veth %s: %w", hostName, err)
		}
		l, err := netlink.LinkByName(hostName)
		if err != nil {
			return err
		}
		idx = l.Attrs().Index
		return netlink.LinkSetUp(l)
	})).To(Succeed())
	Expect(e.ctrNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName(ctrName)
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	})).To(Succeed())
	return idx
}

// prevResult is what a ptp-like primary plugin returns for the veth pair.
func (e *env) prevResult(hostName, ctrName, ip string) *current.Result {
	ipn := netip.MustParsePrefix(ip)
	return &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: hostName, Mac: "02:00:00:00:00:01"},
			{Name: ctrName, Mac: "02:00:00:00:00:02", Sandbox: e.ctrNS.Path()},
		},
		IPs: []*current.IPConfig{{
			Interface: current.Int(1),
			Address:   net.IPNet{IP: ipn.Addr().AsSlice(), Mask: net.CIDRMask(ipn.Bits(), ipn.Addr().BitLen())},
			Gateway:   net.ParseIP("198.19.1.1"),
		}},
		Routes: []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, GW: net.ParseIP("198.19.1.1")}},
	}
}

// netconf renders the plugin's config for cniVersion with prevResult (nil: none) and
// extra top-level fields.
func (e *env) netconf(cniVersion string, prev types.Result, extra map[string]any) []byte {
	conf := map[string]any{
		"cniVersion":   cniVersion,
		"name":         "bgplb-test",
		"type":         "bgplb",
		"daemonSocket": e.sock,
		"recordsDir":   e.recordsDir,
		"bpfPinDir":    e.pinDir,
	}
	if prev != nil {
		r, err := prev.GetAsVersion(cniVersion)
		Expect(err).NotTo(HaveOccurred())
		var buf bytes.Buffer
		Expect(r.PrintTo(&buf)).To(Succeed())
		var m map[string]any
		Expect(json.Unmarshal(buf.Bytes(), &m)).To(Succeed())
		conf["prevResult"] = m
	}
	for k, v := range extra {
		conf[k] = v
	}
	b, err := json.Marshal(conf)
	Expect(err).NotTo(HaveOccurred())
	return b
}

func (e *env) args(containerID, ifName string, conf []byte) *skel.CmdArgs {
	return &skel.CmdArgs{
		ContainerID: containerID,
		Netns:       e.ctrNS.Path(),
		IfName:      ifName,
		Args:        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-" + containerID + ";K8S_POD_UID=uid-" + containerID,
		StdinData:   conf,
	}
}

// add runs cmdAdd in the host netns and returns the printed result bytes.
func (e *env) add(a *skel.CmdArgs) ([]byte, error) {
	var out []byte
	err := e.hostNS.Do(func(ns.NetNS) error {
		var err error
		_, out, err = testutils.CmdAddWithArgs(a, func() error { return cmdAdd(a) })
		return err
	})
	return out, err
}

func (e *env) del(a *skel.CmdArgs) error {
	return e.hostNS.Do(func(ns.NetNS) error {
		return testutils.CmdDelWithArgs(a, func() error { return cmdDel(a) })
	})
}

func (e *env) check(a *skel.CmdArgs) error {
	return e.hostNS.Do(func(ns.NetNS) error {
		return testutils.CmdCheckWithArgs(a, func() error { return cmdCheck(a) })
	})
}

func (e *env) pin(containerID, ifName string) string {
	return bpf.PodLinkPin(e.pinDir, containerID, ifName)
}

// attachedTo returns the ifindex the pod program of the attachment is attached to (0: none).
func (e *env) attachedTo(containerID, ifName string) int {
	ok, idx, err := bpf.PodAttached(e.pin(containerID, ifName))
	Expect(err).NotTo(HaveOccurred())
	if !ok {
		return 0
	}
	return idx
}

// bpftoolLink returns the kernel link ID pinned at pin and the name of its program, as
// bpftool sees them (bpftool 7.1 does not decode tcx links further; bpf.PodAttached
// reports the ifindex).
func bpftoolLink(pin string) (id int, progName string) {
	out, err := exec.Command("bpftool", "-j", "link", "show", "pinned", pin).Output()
	ExpectWithOffset(1, err).NotTo(HaveOccurred(), "bpftool link show pinned %s", pin)
	var l struct {
		ID     int `json:"id"`
		ProgID int `json:"prog_id"`
	}
	ExpectWithOffset(1, json.Unmarshal(out, &l)).To(Succeed(), "%s", out)
	out, err = exec.Command("bpftool", "-j", "prog", "show", "id", fmt.Sprint(l.ProgID)).Output()
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	var p struct {
		Name string `json:"name"`
	}
	ExpectWithOffset(1, json.Unmarshal(out, &p)).To(Succeed(), "%s", out)
	return l.ID, p.Name
}

// linkExists reports whether the kernel still has link id.
func linkExists(id int) bool {
	return exec.Command("bpftool", "link", "show", "id", fmt.Sprint(id)).Run() == nil
}

func (e *env) record(containerID, ifName string) (api.Endpoint, bool) {
	ep, ok, err := api.RecordStore{Dir: e.recordsDir}.Get(containerID, ifName)
	Expect(err).NotTo(HaveOccurred())
	return ep, ok
}

func (e *env) registered(containerID, ifName string) bool {
	_, ok := e.reg.Get(containerID, ifName)
	return ok
}

// nothingAttached asserts the "no side effects" state: no pins, no records, no registrations.
func (e *env) nothingAttached() {
	links, _ := filepath.Glob(filepath.Join(e.pinDir, "links", "*"))
	ExpectWithOffset(1, links).To(BeEmpty(), "link pins")
	recs, err := api.RecordStore{Dir: e.recordsDir}.List()
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	ExpectWithOffset(1, recs).To(BeEmpty(), "records")
	ExpectWithOffset(1, e.reg.List()).To(BeEmpty(), "registrations")
}

// cniErr asserts err is a CNI error with code and returns it.
func cniErr(err error, code uint) *types.Error {
	var te *types.Error
	ExpectWithOffset(1, err).To(HaveOccurred())
	ExpectWithOffset(1, err).To(BeAssignableToTypeOf(te))
	te = err.(*types.Error)
	ExpectWithOffset(1, te.Code).To(Equal(code), "error %v", te)
	return te
}

// runBinary runs the built plugin in the host netns with exactly the given environment
// (plus CNI_PATH unless set) and stdin; it returns stdout and the exit code.
func (e *env) runBinary(envv []string, stdin []byte) ([]byte, int) {
	var (
		out  []byte
		code int
	)
	Expect(e.hostNS.Do(func(ns.NetNS) error {
		cmd := exec.Command(filepath.Join(binDir, "bgplb"))
		cmd.Env = envv
		cmd.Stdin = bytes.NewReader(stdin)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		err := cmd.Run()
		out = stdout.Bytes()
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
			return nil
		}
		return err
	})).To(Succeed())
	return out, code
}
