package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/vishvananda/netlink"
)

// chain is a conflist [ptp + host-local, bgplb] run through libcni exactly as a runtime
// does. The plugins in cniPath are wrappers that append "<CNI_COMMAND> <plugin>" to a
// command log and keep ptp's own stdout, so tests can compare results and call order.
type chain struct {
	e        *env
	cniPath  string
	cmdLog   string
	ptpOut   string // ptp's last ADD stdout
	cacheDir string
}

func newChain(e *env) *chain {
	tmp := GinkgoT().TempDir()
	c := &chain{
		e:        e,
		cniPath:  filepath.Join(tmp, "bin"),
		cmdLog:   filepath.Join(tmp, "commands.log"),
		ptpOut:   filepath.Join(tmp, "ptp-add.json"),
		cacheDir: filepath.Join(tmp, "cache"),
	}
	Expect(os.MkdirAll(c.cniPath, 0o755)).To(Succeed())
	Expect(os.Symlink(filepath.Join(binDir, "host-local"), filepath.Join(c.cniPath, "host-local"))).To(Succeed())
	wrap := func(name, body string) {
		script := fmt.Sprintf("#!/bin/sh\necho \"$CNI_COMMAND %s\" >> %s\n%s\n", name, c.cmdLog, body)
		Expect(os.WriteFile(filepath.Join(c.cniPath, name), []byte(script), 0o755)).To(Succeed())
	}
	wrap("bgplb", "exec "+filepath.Join(binDir, "bgplb"))
	wrap("ptp", fmt.Sprintf(`out=$(%s); rc=$?
[ "$CNI_COMMAND" = ADD ] && printf '%%s' "$out" > %s
printf '%%s' "$out"
exit $rc`, filepath.Join(binDir, "ptp"), c.ptpOut))
	return c
}

func (c *chain) conflist(ver string, extra map[string]any) *libcni.NetworkConfigList {
	list := map[string]any{
		"cniVersion": ver,
		"name":       "bgplb-chain",
		"plugins": []any{
			map[string]any{
				"type":   "ptp",
				"ipMasq": false,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": "198.19.1.0/24"}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": filepath.Join(filepath.Dir(c.cmdLog), "host-local"),
				},
			},
			map[string]any{
				"type":         "bgplb",
				"daemonSocket": c.e.sock,
				"recordsDir":   c.e.recordsDir,
				"bpfPinDir":    c.e.pinDir,
			},
		},
	}
	for k, v := range extra {
		list[k] = v
	}
	b, err := json.Marshal(list)
	Expect(err).NotTo(HaveOccurred())
	l, err := libcni.NetworkConfFromBytes(b)
	Expect(err).NotTo(HaveOccurred())
	return l
}

func (c *chain) rt(containerID string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: containerID,
		NetNS:       c.e.ctrNS.Path(),
		IfName:      "eth0",
		Args:        [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "web-0"}},
	}
}

// in runs f in the host netns: libcni forks the plugins from this thread, so they run there.
func (c *chain) in(f func(cfg *libcni.CNIConfig) error) error {
	cfg := libcni.NewCNIConfigWithCacheDir([]string{c.cniPath}, c.cacheDir, nil)
	return c.e.hostNS.Do(func(ns.NetNS) error { return f(cfg) })
}

func (c *chain) commands() []string {
	b, err := os.ReadFile(c.cmdLog)
	if os.IsNotExist(err) {
		return nil
	}
	Expect(err).NotTo(HaveOccurred())
	return strings.Fields(strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_"))
}

func (c *chain) resetLog() { Expect(os.RemoveAll(c.cmdLog)).To(Succeed()) }

var _ = Describe("bgplb chained after ptp through libcni", func() {
	var (
		e *env
		c *chain
	)
	BeforeEach(func() {
		e = newEnv()
		c = newChain(e)
	})

	for _, ver := range allVersions {
		It(fmt.Sprintf("[%s] ADD returns ptp's result, attaches and registers; DEL calls bgplb before ptp (F1, F5, F6, F7, F8)", ver), func() {
			list := c.conflist(ver, nil)
			rt := c.rt("lib-" + strings.ReplaceAll(ver, ".", ""))
			var res types.Result
			Expect(c.in(func(cfg *libcni.CNIConfig) error {
				var err error
				res, err = cfg.AddNetworkList(context.Background(), list, rt)
				return err
			})).To(Succeed())
			Expect(c.commands()).To(Equal([]string{"ADD_ptp", "ADD_bgplb"}))

			// F1: the chain's result is ptp's result, in the same version.
			Expect(res.Version()).To(Equal(ver))
			ours, err := json.Marshal(res)
			Expect(err).NotTo(HaveOccurred())
			ptpRaw, err := os.ReadFile(c.ptpOut)
			Expect(err).NotTo(HaveOccurred())
			var a, b map[string]any
			Expect(json.Unmarshal(ours, &a)).To(Succeed())
			Expect(json.Unmarshal(ptpRaw, &b)).To(Succeed())
			Expect(a).To(Equal(b))

			cur, err := current.NewResultFromResult(res)
			Expect(err).NotTo(HaveOccurred())
			var hostIf string
			for _, i := range cur.Interfaces {
				if i.Sandbox == "" {
					hostIf = i.Name
				}
			}
			Expect(hostIf).NotTo(BeEmpty())
			podIP, ok := netip.AddrFromSlice(cur.IPs[0].Address.IP)
			Expect(ok).To(BeTrue())
			podIP = podIP.Unmap()

			var hostIdx int
			Expect(e.hostNS.Do(func(ns.NetNS) error {
				l, err := netlink.LinkByName(hostIf)
				if err != nil {
					return err
				}
				hostIdx = l.Attrs().Index
				return nil
			})).To(Succeed())
			Expect(e.attachedTo(rt.ContainerID, "eth0")).To(Equal(hostIdx))
			linkID, prog := bpftoolLink(e.pin(rt.ContainerID, "eth0"))
			Expect(prog).To(Equal("lb_pod"))
			ep, ok := e.reg.ByIP(podIP)
			Expect(ok).To(BeTrue(), "registry knows %s", podIP)
			Expect(ep.Key()).To(Equal(rt.ContainerID + "/eth0"))
			Expect(ep.PodName).To(Equal("web-0"))

			c.resetLog()
			checkErr := c.in(func(cfg *libcni.CNIConfig) error { return cfg.CheckNetworkList(context.Background(), list, rt) })
			if ver == "0.4.0" || ver == "1.0.0" || ver == "1.1.0" {
				Expect(checkErr).NotTo(HaveOccurred())
				Expect(c.commands()).To(ContainElement("CHECK_bgplb"))
			} else {
				Expect(checkErr).To(HaveOccurred()) // libcni refuses CHECK before 0.4.0
				Expect(c.commands()).To(BeEmpty())
			}
			if ver == "1.1.0" {
				Expect(c.in(func(cfg *libcni.CNIConfig) error { return cfg.GetStatusNetworkList(context.Background(), list) })).To(Succeed())
				Expect(c.in(func(cfg *libcni.CNIConfig) error {
					return cfg.GCNetworkList(context.Background(), list, &libcni.GCArgs{
						ValidAttachments: []types.GCAttachment{{ContainerID: rt.ContainerID, IfName: "eth0"}},
					})
				})).To(Succeed())
				Expect(c.commands()).To(ContainElements("STATUS_bgplb", "GC_bgplb"))
				Expect(e.attachedTo(rt.ContainerID, "eth0")).To(Equal(hostIdx), "GC kept the valid attachment")
			}

			c.resetLog()
			Expect(c.in(func(cfg *libcni.CNIConfig) error { return cfg.DelNetworkList(context.Background(), list, rt) })).To(Succeed())
			Expect(c.commands()).To(Equal([]string{"DEL_bgplb", "DEL_ptp"}))
			Expect(linkExists(linkID)).To(BeFalse())
			e.nothingAttached()
		})
	}

	It("never calls bgplb for CHECK with disableCheck or for GC with disableGC (F5, F7)", func() {
		list := c.conflist("1.1.0", map[string]any{"disableCheck": true, "disableGC": true})
		rt := c.rt("lib-disabled")
		Expect(c.in(func(cfg *libcni.CNIConfig) error {
			_, err := cfg.AddNetworkList(context.Background(), list, rt)
			return err
		})).To(Succeed())
		c.resetLog()
		Expect(c.in(func(cfg *libcni.CNIConfig) error { return cfg.CheckNetworkList(context.Background(), list, rt) })).To(Succeed())
		Expect(c.in(func(cfg *libcni.CNIConfig) error {
			return cfg.GCNetworkList(context.Background(), list, &libcni.GCArgs{})
		})).To(Succeed())
		Expect(c.commands()).To(BeEmpty())
		Expect(e.registered(rt.ContainerID, "eth0")).To(BeTrue(), "GC did not run")
		Expect(c.in(func(cfg *libcni.CNIConfig) error { return cfg.DelNetworkList(context.Background(), list, rt) })).To(Succeed())
		e.nothingAttached()
	})

	It("CHECK with cniVersion 0.3.1 is refused by skel with code 1 (F5)", func() {
		out, code := e.runBinary([]string{"CNI_COMMAND=CHECK", "CNI_CONTAINERID=x", "CNI_NETNS=" + e.ctrNS.Path(),
			"CNI_IFNAME=eth0", "CNI_PATH=/nonexistent"}, e.netconf("0.3.1", e.prevResult("h", "eth0", "198.19.1.5/24"), nil))
		Expect(code).To(Equal(1))
		var te types.Error
		Expect(json.Unmarshal(out, &te)).To(Succeed())
		Expect(te.Code).To(Equal(types.ErrIncompatibleCNIVersion))
	})
})
