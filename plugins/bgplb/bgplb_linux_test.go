package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/vishvananda/netlink"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/registry/api"
)

var allVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

var _ = Describe("bgplb chained plugin", func() {
	var (
		e       *env
		hostIdx int
		prev    *current.Result
	)

	BeforeEach(func() {
		e = newEnv()
		hostIdx = e.veth("veth-h0", "eth0")
		prev = e.prevResult("veth-h0", "eth0", "198.19.1.5/24")
	})

	for _, ver := range allVersions {
		It(fmt.Sprintf("[%s] ADD attaches, records, registers and passes prevResult through; DEL undoes it", ver), func() {
			conf := e.netconf(ver, prev, nil)
			a := e.args("ctr1", "eth0", conf)
			out, err := e.add(a)
			Expect(err).NotTo(HaveOccurred())

			// The printed result is prevResult, unchanged, in the config's version.
			var in map[string]any
			Expect(json.Unmarshal(conf, &in)).To(Succeed())
			var printed map[string]any
			Expect(json.Unmarshal(out, &printed)).To(Succeed())
			Expect(printed).To(Equal(in["prevResult"]))

			// The pod program is attached on tcx ingress of the host veth.
			Expect(e.attachedTo("ctr1", "eth0")).To(Equal(hostIdx))
			linkID, prog := bpftoolLink(e.pin("ctr1", "eth0"))
			Expect(prog).To(Equal("lb_pod"))

			// The durable record and the daemon's registry agree.
			rec, ok := e.record("ctr1", "eth0")
			Expect(ok).To(BeTrue())
			Expect(rec.IPs).To(Equal([]netip.Addr{netip.MustParseAddr("198.19.1.5")}))
			Expect(rec.HostIfName).To(Equal("veth-h0"))
			Expect(rec.HostIfIndex).To(Equal(hostIdx))
			Expect(rec.Netns).To(Equal(e.ctrNS.Path()))
			Expect(rec.PodNamespace).To(Equal("default"))
			Expect(rec.PodName).To(Equal("web-ctr1"))
			Expect(rec.PodUID).To(Equal("uid-ctr1"))
			Expect(rec.LinkPin).To(Equal(e.pin("ctr1", "eth0")))
			ep, ok := e.reg.ByIP(netip.MustParseAddr("198.19.1.5"))
			Expect(ok).To(BeTrue())
			Expect(ep.Key()).To(Equal("ctr1/eth0"))
			Expect(e.reg.ByPod("default", "web-ctr1")).To(HaveLen(1))
			listed, err := api.NewClient(e.sock).List(context.Background())
			Expect(err).NotTo(HaveOccurred())
			Expect(listed).To(HaveLen(1))
			Expect(listed[0]).To(Equal(rec))

			if testutils.SpecVersionHasCHECK(ver) {
				Expect(e.check(e.args("ctr1", "eth0", conf))).To(Succeed())
			}

			Expect(e.del(e.args("ctr1", "eth0", conf))).To(Succeed())
			Expect(e.attachedTo("ctr1", "eth0")).To(Equal(0))
			Expect(linkExists(linkID)).To(BeFalse(), "link %d survived DEL", linkID)
			e.nothingAttached()
		})
	}

	It("records and registers every IP of a dual-stack pod; CHECK notices a changed IP", func() {
		prev.IPs = append(prev.IPs, &current.IPConfig{
			Interface: current.Int(1),
			Address:   *mustIPNet("2001:db8:1:1::5/64"),
		})
		conf := e.netconf("1.0.0", prev, nil)
		_, err := e.add(e.args("ctr1", "eth0", conf))
		Expect(err).NotTo(HaveOccurred())
		rec, ok := e.record("ctr1", "eth0")
		Expect(ok).To(BeTrue())
		Expect(rec.IPs).To(Equal([]netip.Addr{netip.MustParseAddr("198.19.1.5"), netip.MustParseAddr("2001:db8:1:1::5")}))
		for _, ip := range rec.IPs {
			ep, ok := e.reg.ByIP(ip)
			Expect(ok).To(BeTrue(), "%s", ip)
			Expect(ep.Key()).To(Equal("ctr1/eth0"))
		}
		Expect(e.check(e.args("ctr1", "eth0", conf))).To(Succeed())
		prev.IPs = prev.IPs[:1]
		cniErr(e.check(e.args("ctr1", "eth0", e.netconf("1.0.0", prev, nil))), CodeRecordMissing)
	})

	It("ADD twice (a runtime retry) keeps one attachment", func() {
		conf := e.netconf("1.0.0", prev, nil)
		for range 2 {
			_, err := e.add(e.args("ctr1", "eth0", conf))
			Expect(err).NotTo(HaveOccurred())
		}
		Expect(filepath.Glob(filepath.Join(e.pinDir, "links", "*"))).To(HaveLen(1))
		Expect(e.attachedTo("ctr1", "eth0")).To(Equal(hostIdx))
		Expect(e.reg.List()).To(HaveLen(1))
	})

	Describe("ADD never fails the pod because of bgplb's datapath (docs/design.md decision 8)", func() {
		It("passes the result through and leaves nothing attached when the record cannot be written", func() {
			// A non-empty directory where the record file must go makes the rename fail.
			Expect(os.MkdirAll(filepath.Join(e.recordsDir, "ctr1@eth0.json", "x"), 0o700)).To(Succeed())
			out, err := e.add(e.args("ctr1", "eth0", e.netconf("1.0.0", prev, nil)))
			Expect(err).NotTo(HaveOccurred())
			Expect(out).To(ContainSubstring("198.19.1.5"))
			Expect(e.attachedTo("ctr1", "eth0")).To(Equal(0))
			Expect(filepath.Glob(filepath.Join(e.pinDir, "links", "*"))).To(BeEmpty())
			Expect(e.reg.List()).To(BeEmpty())
		})

		It("records and registers the endpoint as not datapath-ready when the attach fails; CHECK reports it", func() {
			notBPFFS := GinkgoT().TempDir() // not on bpffs: loading the programs fails
			conf := e.netconf("1.0.0", prev, map[string]any{"bpfPinDir": notBPFFS})
			out, err := e.add(e.args("ctr1", "eth0", conf))
			Expect(err).NotTo(HaveOccurred())
			Expect(out).To(ContainSubstring("198.19.1.5"))
			rec, ok := e.record("ctr1", "eth0")
			Expect(ok).To(BeTrue())
			Expect(rec.DatapathError).To(ContainSubstring("bpf filesystem"))
			ep, ok := e.reg.Get("ctr1", "eth0")
			Expect(ok).To(BeTrue())
			Expect(ep.DatapathReady()).To(BeFalse())
			Expect(e.reg.Registered("default", "web-ctr1", netip.MustParseAddr("198.19.1.5"))).To(BeFalse())
			reason, notReady := e.reg.DatapathNotReady("default", "web-ctr1", netip.MustParseAddr("198.19.1.5"))
			Expect(notReady).To(BeTrue())
			Expect(reason).To(Equal(rec.DatapathError))
			te := cniErr(e.check(e.args("ctr1", "eth0", conf)), CodeDatapathNotReady)
			Expect(te.Details).To(ContainSubstring("bpf filesystem"))
			// A daemon restart keeps it (no pin to check) until DEL.
			e.stopDaemon()
			res := e.startDaemon()
			Expect(res.Adopted).To(HaveLen(1))
			Expect(e.del(e.args("ctr1", "eth0", conf))).To(Succeed())
			e.nothingAttached()
		})

		It("detaches and records the refusal when the daemon rejects the endpoint", func() {
			sock := filepath.Join(GinkgoT().TempDir(), "rejecting.sock")
			l, err := net.Listen("unix", sock)
			Expect(err).NotTo(HaveOccurred())
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte(`{"error":"no"}`))
			})}
			go func() { _ = srv.Serve(l) }()
			DeferCleanup(srv.Close)
			out, err := e.add(e.args("ctr1", "eth0", e.netconf("1.0.0", prev, map[string]any{"daemonSocket": sock})))
			Expect(err).NotTo(HaveOccurred())
			Expect(out).To(ContainSubstring("198.19.1.5"))
			Expect(e.attachedTo("ctr1", "eth0")).To(Equal(0))
			rec, ok := e.record("ctr1", "eth0")
			Expect(ok).To(BeTrue())
			Expect(rec.DatapathError).To(ContainSubstring("500"))
		})
	})

	Describe("ADD with the daemon down", func() {
		It("succeeds and the daemon adopts the record when it starts (and drops records whose pin is gone)", func() {
			hostIdx2 := e.veth("veth-h1", "eth1")
			prev2 := e.prevResult("veth-h1", "eth1", "198.19.1.6/24")
			e.stopDaemon()
			_, err := e.add(e.args("ctr1", "eth0", e.netconf("1.0.0", prev, nil)))
			Expect(err).NotTo(HaveOccurred())
			_, err = e.add(e.args("ctr2", "eth1", e.netconf("1.0.0", prev2, nil)))
			Expect(err).NotTo(HaveOccurred())
			Expect(e.attachedTo("ctr1", "eth0")).To(Equal(hostIdx))
			Expect(e.attachedTo("ctr2", "eth1")).To(Equal(hostIdx2))
			// ctr2's program goes away while the daemon is down (pin removed by hand).
			Expect(bpf.DetachPod(e.pin("ctr2", "eth1"))).To(Succeed())

			res := e.startDaemon()
			Expect(res.Adopted).To(HaveLen(1))
			Expect(res.Adopted[0].Key()).To(Equal("ctr1/eth0"))
			Expect(res.Dropped).To(HaveLen(1))
			Expect(res.Dropped[0].Key()).To(Equal("ctr2/eth1"))
			Expect(e.registered("ctr1", "eth0")).To(BeTrue())
			Expect(e.registered("ctr2", "eth1")).To(BeFalse())
			_, ok := e.record("ctr2", "eth1")
			Expect(ok).To(BeFalse())
		})
	})

	Describe("DEL (F4)", func() {
		var conf []byte
		BeforeEach(func() { conf = e.netconf("1.0.0", prev, nil) })

		It("succeeds without a prior ADD", func() {
			Expect(e.del(e.args("never", "eth0", conf))).To(Succeed())
			e.nothingAttached()
		})

		It("succeeds twice", func() {
			_, err := e.add(e.args("ctr1", "eth0", conf))
			Expect(err).NotTo(HaveOccurred())
			Expect(e.del(e.args("ctr1", "eth0", conf))).To(Succeed())
			Expect(e.del(e.args("ctr1", "eth0", conf))).To(Succeed())
			e.nothingAttached()
		})

		It("succeeds with CNI_NETNS empty, without prevResult and with the daemon down", func() {
			_, err := e.add(e.args("ctr1", "eth0", conf))
			Expect(err).NotTo(HaveOccurred())
			e.stopDaemon()
			a := e.args("ctr1", "eth0", e.netconf("1.0.0", nil, nil))
			a.Netns = ""
			Expect(e.del(a)).To(Succeed())
			Expect(e.attachedTo("ctr1", "eth0")).To(Equal(0))
			_, ok := e.record("ctr1", "eth0")
			Expect(ok).To(BeFalse())
			// The restarted daemon does not resurrect it.
			e.startDaemon()
			e.nothingAttached()
		})

		It("succeeds when the netns and the veth are gone", func() {
			_, err := e.add(e.args("ctr1", "eth0", conf))
			Expect(err).NotTo(HaveOccurred())
			gone := e.ctrNS.Path()
			Expect(e.hostNS.Do(func(ns.NetNS) error {
				l, err := netlink.LinkByName("veth-h0")
				if err != nil {
					return err
				}
				return netlink.LinkDel(l)
			})).To(Succeed())
			a := e.args("ctr1", "eth0", conf)
			a.Netns = gone + "-removed"
			Expect(e.del(a)).To(Succeed())
			e.nothingAttached()
		})

		It("succeeds with an unusable prevResult", func() {
			_, err := e.add(e.args("ctr1", "eth0", conf))
			Expect(err).NotTo(HaveOccurred())
			bad := e.netconf("1.0.0", nil, map[string]any{"prevResult": map[string]any{"ips": "nonsense"}})
			Expect(e.del(e.args("ctr1", "eth0", bad))).To(Succeed())
			e.nothingAttached()
		})
	})

	Describe("CHECK (F5)", func() {
		var conf []byte
		BeforeEach(func() {
			conf = e.netconf("1.0.0", prev, nil)
			_, err := e.add(e.args("ctr1", "eth0", conf))
			Expect(err).NotTo(HaveOccurred())
			Expect(e.check(e.args("ctr1", "eth0", conf))).To(Succeed())
		})

		It("fails with 110 when the program was detached", func() {
			Expect(bpf.DetachPod(e.pin("ctr1", "eth0"))).To(Succeed())
			te := cniErr(e.check(e.args("ctr1", "eth0", conf)), CodeNotAttached)
			Expect(te.Msg).To(ContainSubstring("not attached to host veth veth-h0"))
		})

		It("fails with 111 when the record is missing", func() {
			Expect(api.RecordStore{Dir: e.recordsDir}.Delete("ctr1", "eth0")).To(Succeed())
			cniErr(e.check(e.args("ctr1", "eth0", conf)), CodeRecordMissing)
		})

		It("fails with 112 when the daemon is unreachable", func() {
			e.stopDaemon()
			te := cniErr(e.check(e.args("ctr1", "eth0", conf)), CodeDaemonUnreachable)
			Expect(te.Msg).To(ContainSubstring("bgplbd unreachable"))
		})

		It("fails with 113 when the daemon does not know the endpoint", func() {
			e.reg.Unregister(context.Background(), "ctr1", "eth0")
			cniErr(e.check(e.args("ctr1", "eth0", conf)), CodeNotRegistered)
		})

		It("fails with 7 without prevResult", func() {
			cniErr(e.check(e.args("ctr1", "eth0", e.netconf("1.0.0", nil, nil))), types.ErrInvalidNetworkConfig)
		})
	})

	Describe("STATUS (F6)", func() {
		It("succeeds with the daemon up and fails with 50 when it is down; ADD and DEL still work", func() {
			conf := e.netconf("1.1.0", nil, nil)
			Expect(testutils.CmdStatus(func() error { return cmdStatus(e.args("", "", conf)) })).To(Succeed())
			out, code := e.runBinary([]string{"CNI_COMMAND=STATUS", "CNI_PATH=/nonexistent"}, conf)
			Expect(code).To(Equal(0), "%s", out)

			e.stopDaemon()
			out, code = e.runBinary([]string{"CNI_COMMAND=STATUS", "CNI_PATH=/nonexistent"}, conf)
			Expect(code).To(Equal(1))
			var te types.Error
			Expect(json.Unmarshal(out, &te)).To(Succeed(), "stdout %q", out)
			Expect(te.Code).To(Equal(types.ErrPluginNotAvailable))

			_, err := e.add(e.args("ctr1", "eth0", e.netconf("1.1.0", prev, nil)))
			Expect(err).NotTo(HaveOccurred())
			Expect(e.del(e.args("ctr1", "eth0", conf))).To(Succeed())
			Expect(e.attachedTo("ctr1", "eth0")).To(Equal(0))
		})
	})

	Describe("GC (F7)", func() {
		for _, key := range []string{"cni.dev/valid-attachments", "cni.dev/attachments"} {
			It("removes attachments not listed in "+key, func() {
				idx := []int{hostIdx, e.veth("veth-h1", "eth1"), e.veth("veth-h2", "eth2")}
				for i := range 3 {
					p := e.prevResult(fmt.Sprintf("veth-h%d", i), fmt.Sprintf("eth%d", i), fmt.Sprintf("198.19.1.%d/24", 10+i))
					_, err := e.add(e.args(fmt.Sprintf("ctr%d", i), fmt.Sprintf("eth%d", i), e.netconf("1.1.0", p, nil)))
					Expect(err).NotTo(HaveOccurred())
				}
				// An orphan pin without a record is collected too.
				Expect(bpf.AttachPod(e.pinDir, idx[2], e.pin("orphan", "eth9"))).To(Succeed())
				gone := []int{}
				for _, pin := range []string{e.pin("ctr2", "eth2"), e.pin("orphan", "eth9")} {
					id, _ := bpftoolLink(pin)
					gone = append(gone, id)
				}

				conf := e.netconf("1.1.0", nil, map[string]any{key: []types.GCAttachment{
					{ContainerID: "ctr0", IfName: "eth0"}, {ContainerID: "ctr1", IfName: "eth1"},
				}})
				out, code := e.runBinary([]string{"CNI_COMMAND=GC", "CNI_PATH=/nonexistent"}, conf)
				Expect(code).To(Equal(0), "%s", out)

				Expect(e.attachedTo("ctr0", "eth0")).To(Equal(idx[0]))
				Expect(e.attachedTo("ctr1", "eth1")).To(Equal(idx[1]))
				Expect(e.attachedTo("ctr2", "eth2")).To(Equal(0))
				Expect(e.attachedTo("orphan", "eth9")).To(Equal(0))
				for _, id := range gone {
					Expect(linkExists(id)).To(BeFalse(), "link %d survived GC", id)
				}
				Expect(e.registered("ctr0", "eth0")).To(BeTrue())
				Expect(e.registered("ctr1", "eth1")).To(BeTrue())
				Expect(e.registered("ctr2", "eth2")).To(BeFalse())
				_, ok := e.record("ctr2", "eth2")
				Expect(ok).To(BeFalse())
				_, ok = e.record("ctr1", "eth1")
				Expect(ok).To(BeTrue())
			})
		}

		It("collects everything when the list is null (libcni's encoding of none)", func() {
			_, err := e.add(e.args("ctr1", "eth0", e.netconf("1.1.0", prev, nil)))
			Expect(err).NotTo(HaveOccurred())
			out, code := e.runBinary([]string{"CNI_COMMAND=GC", "CNI_PATH=/nonexistent"},
				e.netconf("1.1.0", nil, map[string]any{"cni.dev/valid-attachments": nil}))
			Expect(code).To(Equal(0), "%s", out)
			e.nothingAttached()
		})

		It("collects nothing when no attachment list is given", func() {
			_, err := e.add(e.args("ctr1", "eth0", e.netconf("1.1.0", prev, nil)))
			Expect(err).NotTo(HaveOccurred())
			out, code := e.runBinary([]string{"CNI_COMMAND=GC", "CNI_PATH=/nonexistent"}, e.netconf("1.1.0", nil, nil))
			Expect(code).To(Equal(0), "%s", out)
			Expect(e.attachedTo("ctr1", "eth0")).To(Equal(hostIdx))
			Expect(e.registered("ctr1", "eth0")).To(BeTrue())
		})
	})

	It("runs 20 concurrent ADDs (separate processes) with distinct registrations and leaks nothing after DEL (F8)", func() {
		const n = 20
		idx := make([]int, n)
		confs := make([][]byte, n)
		for i := range n {
			idx[i] = e.veth(fmt.Sprintf("veth-c%d", i), fmt.Sprintf("net%d", i))
			p := e.prevResult(fmt.Sprintf("veth-c%d", i), fmt.Sprintf("net%d", i), fmt.Sprintf("198.19.1.%d/24", 100+i))
			confs[i] = e.netconf("1.0.0", p, nil)
		}
		run := func(cmd string) {
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer GinkgoRecover()
					defer wg.Done()
					out, code := e.runBinary([]string{
						"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=" + fmt.Sprintf("c%02d", i), "CNI_NETNS=" + e.ctrNS.Path(),
						"CNI_IFNAME=" + fmt.Sprintf("net%d", i), "CNI_PATH=/nonexistent",
					}, confs[i])
					Expect(code).To(Equal(0), "%s %d: %s", cmd, i, out)
				}()
			}
			wg.Wait()
		}
		run("ADD")
		Expect(e.reg.List()).To(HaveLen(n))
		ids := map[int]bool{}
		for i := range n {
			Expect(e.attachedTo(fmt.Sprintf("c%02d", i), fmt.Sprintf("net%d", i))).To(Equal(idx[i]))
			id, _ := bpftoolLink(e.pin(fmt.Sprintf("c%02d", i), fmt.Sprintf("net%d", i)))
			ids[id] = true
			ep, ok := e.reg.ByIP(netip.MustParseAddr(fmt.Sprintf("198.19.1.%d", 100+i)))
			Expect(ok).To(BeTrue())
			Expect(ep.ContainerID).To(Equal(fmt.Sprintf("c%02d", i)))
		}
		Expect(ids).To(HaveLen(n), "distinct links")
		run("DEL")
		e.nothingAttached()
		for id := range ids {
			Expect(linkExists(id)).To(BeFalse(), "link %d leaked", id)
		}
	})

	Describe("bad input: no side effects (F2, F3, G7)", func() {
		AfterEach(func() { e.nothingAttached() })

		It("F2: not chained gives 7 'must be called as chained plugin'", func() {
			for _, ver := range allVersions {
				_, err := e.add(e.args("ctr1", "eth0", e.netconf(ver, nil, nil)))
				te := cniErr(err, types.ErrInvalidNetworkConfig)
				Expect(te.Msg).To(Equal("must be called as chained plugin"))
			}
		})

		It("F3: prevResult without interfaces, without IPs, or naming an interface not in the netns", func() {
			noIfs := e.prevResult("veth-h0", "eth0", "198.19.1.5/24")
			noIfs.Interfaces = nil
			noIfs.IPs[0].Interface = nil
			_, err := e.add(e.args("ctr1", "eth0", e.netconf("1.0.0", noIfs, nil)))
			Expect(cniErr(err, types.ErrInvalidNetworkConfig).Msg).To(ContainSubstring("no interfaces"))

			noIPs := e.prevResult("veth-h0", "eth0", "198.19.1.5/24")
			noIPs.IPs = nil
			_, err = e.add(e.args("ctr1", "eth0", e.netconf("1.0.0", noIPs, nil)))
			Expect(cniErr(err, types.ErrInvalidNetworkConfig).Msg).To(ContainSubstring("no IPs"))

			// prevResult and CNI_IFNAME name eth7, which does not exist in the netns.
			ghost := e.prevResult("veth-h0", "eth7", "198.19.1.5/24")
			_, err = e.add(e.args("ctr1", "eth7", e.netconf("1.0.0", ghost, nil)))
			Expect(cniErr(err, types.ErrInvalidNetNS).Msg).To(ContainSubstring(`"eth7"`))

			// prevResult lists another interface than CNI_IFNAME.
			_, err = e.add(e.args("ctr1", "eth1", e.netconf("1.0.0", prev, nil)))
			cniErr(err, types.ErrInvalidNetworkConfig)
		})

		It("rejects relative paths in the config with 7", func() {
			_, err := e.add(e.args("ctr1", "eth0", e.netconf("1.0.0", prev, map[string]any{"recordsDir": "rel/dir"})))
			cniErr(err, types.ErrInvalidNetworkConfig)
		})

		type badCase struct {
			name  string
			env   []string
			stdin func() []byte
			code  uint
			msg   string
		}
		good := func(cmd string) []string {
			return []string{"CNI_COMMAND=" + cmd, "CNI_CONTAINERID=ctr1", "CNI_NETNS=" + e.ctrNS.Path(), "CNI_IFNAME=eth0", "CNI_PATH=/nonexistent"}
		}
		without := func(envv []string, names ...string) []string {
			return slices.DeleteFunc(slices.Clone(envv), func(kv string) bool {
				k, _, _ := strings.Cut(kv, "=")
				return slices.Contains(names, k)
			})
		}
		with := func(envv []string, kv string) []string {
			k, _, _ := strings.Cut(kv, "=")
			return append(without(envv, k), kv)
		}
		It("G7: malformed stdin and environment give the spec's codes", func() {
			valid := func() []byte { return e.netconf("1.0.0", prev, nil) }
			cases := []badCase{
				{"invalid JSON", good("ADD"), func() []byte { return []byte(`{"cniVersion":`) }, 6, ""},
				{"bad cniVersion ADD", good("ADD"), func() []byte { return e.netconf("adsfsadf", nil, map[string]any{"prevResult": nil}) }, 6, "adsfsadf"},
				{"bad cniVersion DEL", good("DEL"), func() []byte { return e.netconf("adsfsadf", nil, nil) }, 6, "adsfsadf"},
				{"bad cniVersion CHECK", good("CHECK"), func() []byte { return e.netconf("adsfsadf", nil, nil) }, 6, ""},
				{"bad name", good("ADD"), func() []byte { return e.netconf("1.0.0", prev, map[string]any{"name": "te%%st"}) }, 7, ""},
				{"missing env", without(good("ADD"), "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"), valid, 4,
					"[CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME]"},
				{"ifname .", with(good("ADD"), "CNI_IFNAME=."), valid, 4, ""},
				{"ifname a/b", with(good("ADD"), "CNI_IFNAME=a/b"), valid, 4, ""},
				{"ifname too long", with(good("ADD"), "CNI_IFNAME=abcdefghijklmnop"), valid, 4, ""},
				{"unknown command", good("NOPE"), valid, 4, "NOPE"},
				{"not chained", good("ADD"), func() []byte { return e.netconf("1.0.0", nil, nil) }, 7, "must be called as chained plugin"},
			}
			for _, c := range cases {
				out, code := e.runBinary(c.env, c.stdin())
				Expect(code).To(Equal(1), c.name)
				var te types.Error
				Expect(json.Unmarshal(out, &te)).To(Succeed(), "%s: stdout %q", c.name, out)
				Expect(te.Code).To(Equal(c.code), "%s: %+v", c.name, te)
				Expect(te.Msg+te.Details).To(ContainSubstring(c.msg), c.name)
			}
		})
	})
})

func mustIPNet(cidr string) *net.IPNet {
	ip, n, err := net.ParseCIDR(cidr)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	n.IP = ip
	return n
}
