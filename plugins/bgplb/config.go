package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/registry/api"
)

// Production defaults; every path is configurable so the lab can give each node its own.
const ()

// PluginConf is the plugin's network configuration (one entry of a conflist).
type PluginConf struct {
	types.NetConf

	// DaemonSocket is bgplbd's unix socket. Default /run/bgplb/bgplbd.sock.
	DaemonSocket string `json:"daemonSocket,omitempty"`
	// RecordsDir holds the durable endpoint records. Default /var/lib/bgplb/endpoints.
	RecordsDir string `json:"recordsDir,omitempty"`
	// BPFPinDir is the bpffs directory of the pinned maps and links. Default /sys/fs/bpf/bgplb.
	BPFPinDir string `json:"bpfPinDir,omitempty"`
	// DatapathAttach is how the pod program is attached: "auto" (default: tcx, legacy tc
	// where the kernel refuses tcx), "tcx" or "tc". Keep it equal to bgplbd's
	// --datapath-attach.
	DatapathAttach string `json:"datapathAttach,omitempty"`
	// LogFile, when set, receives debug logs (appended). The plugin never logs to stdout.
	LogFile string `json:"logFile,omitempty"`

	// LegacyAttachments is the pre-1.1.0-final name of cni.dev/valid-attachments (GC).
	LegacyAttachments []types.GCAttachment `json:"cni.dev/attachments,omitempty"`

	// gcListGiven is true when stdin has cni.dev/valid-attachments or cni.dev/attachments,
	// even as null: libcni sends null for "no valid attachments".
	gcListGiven bool

	// attachMode is DatapathAttach parsed.
	attachMode bpf.AttachMode

	// result is PrevResult converted to the current result version (nil when not chained).
	result *current.Result
}

// parseConfig decodes stdin, applies defaults, validates the paths and converts prevResult.
// Errors are *types.Error with the spec's codes: 6 for undecodable JSON or prevResult,
// 7 for invalid values.
// With ignorePrevResult (DEL), an unusable prevResult is dropped instead of failing, because
// DEL must clean up whatever the previous plugins returned.
func parseConfig(stdin []byte, ignorePrevResult bool) (*PluginConf, error) {
	conf := &PluginConf{}
	if err := json.Unmarshal(stdin, conf); err != nil {
		return nil, cniError(types.ErrDecodingFailure, "decode network configuration", err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(stdin, &keys); err != nil {
		return nil, cniError(types.ErrDecodingFailure, "decode network configuration", err)
	}
	_, valid := keys["cni.dev/valid-attachments"]
	_, legacy := keys["cni.dev/attachments"]
	conf.gcListGiven = valid || legacy
	if conf.DaemonSocket == "" {
		conf.DaemonSocket = api.DefaultSocket
	}
	if conf.RecordsDir == "" {
		conf.RecordsDir = api.DefaultRecordsDir
	}
	if conf.BPFPinDir == "" {
		conf.BPFPinDir = bpf.DefaultPinDir
	}
	for field, p := range map[string]string{
		"daemonSocket": conf.DaemonSocket,
		"recordsDir":   conf.RecordsDir,
		"bpfPinDir":    conf.BPFPinDir,
	} {
		if !filepath.IsAbs(p) {
			return nil, cniError(types.ErrInvalidNetworkConfig, fmt.Sprintf("%s %q must be an absolute path", field, p), nil)
		}
	}
	if conf.LogFile != "" && !filepath.IsAbs(conf.LogFile) {
		return nil, cniError(types.ErrInvalidNetworkConfig, fmt.Sprintf("logFile %q must be an absolute path", conf.LogFile), nil)
	}

	mode, err := bpf.ParseAttachMode(conf.DatapathAttach)
	if err != nil {
		return nil, cniError(types.ErrInvalidNetworkConfig, "datapathAttach", err)
	}
	conf.attachMode = mode

	if err := conf.parsePrevResult(); err != nil {
		if !ignorePrevResult {
			return nil, err
		}
		conf.PrevResult, conf.RawPrevResult, conf.result = nil, nil, nil
	}
	return conf, nil
}

func (conf *PluginConf) parsePrevResult() error {
	if err := version.ParsePrevResult(&conf.NetConf); err != nil {
		return cniError(types.ErrDecodingFailure, "parse prevResult", err)
	}
	if conf.PrevResult != nil {
		res, err := current.NewResultFromResult(conf.PrevResult)
		if err != nil {
			return cniError(types.ErrDecodingFailure, "convert prevResult to the current version", err)
		}
		conf.result = res
	}
	return nil
}

// podArgs are the Kubernetes pod identifiers runtimes put into CNI_ARGS.
type podArgs struct {
	Namespace, Name, UID string
}

// parsePodArgs reads K8S_POD_NAMESPACE, K8S_POD_NAME and K8S_POD_UID from CNI_ARGS
// ("K=V;K=V"). Other keys are ignored; a malformed pair is ignored too, because pod
// metadata is informational and must not fail an ADD.
func parsePodArgs(args string) podArgs {
	var p podArgs
	for _, kv := range strings.Split(args, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch k {
		case "K8S_POD_NAMESPACE":
			p.Namespace = v
		case "K8S_POD_NAME":
			p.Name = v
		case "K8S_POD_UID":
			p.UID = v
		}
	}
	return p
}
