package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/sys/unix"
)

func TestBgplb(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "plugins/bgplb suite")
}

const bpffsRoot = "/sys/fs/bpf"

// binDir holds the built plugin (bgplb) and the reference plugins (ptp, host-local).
var binDir string

var _ = BeforeSuite(func() {
	if os.Geteuid() != 0 {
		Skip("the bgplb plugin tests need root (network namespaces, bpf(2), bpffs)")
	}
	// bpffs is not mounted on a fresh machine (see the Makefile's deps target).
	var st unix.Statfs_t
	Expect(unix.Statfs(bpffsRoot, &st)).To(Succeed())
	if uint32(st.Type) != unix.BPF_FS_MAGIC {
		Expect(unix.Mount("bpf", bpffsRoot, "bpf", 0, "")).To(Succeed())
	}

	binDir = GinkgoT().TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(binDir, "bgplb"),
		"-ldflags", "-X main.buildVersion=test", ".")
	out, err := build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "go build plugin: %s", out)
	build = exec.Command("go", "build", "-o", binDir+"/",
		"github.com/containernetworking/plugins/plugins/main/ptp",
		"github.com/containernetworking/plugins/plugins/ipam/host-local")
	out, err = build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "go build ptp, host-local: %s", out)
})
