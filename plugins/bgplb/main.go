package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/registry/api"
)

// pluginName is the CNI type.
const pluginName = "bgplb"

// buildVersion is set at build time: -ldflags "-X main.buildVersion=v0.1.0".
var buildVersion = "version unknown"

// daemonTimeout bounds every call to bgplbd, so a hung daemon cannot hang pod setup.
const daemonTimeout = 2 * time.Second

func main() {
	funcs := skel.CNIFuncs{
		Add:    cmdAdd,
		Check:  cmdCheck,
		Del:    cmdDel,
		Status: cmdStatus,
		GC:     cmdGC,
	}
	versions := version.VersionsStartingFrom("0.3.0")
	about := fmt.Sprintf("CNI %s plugin %s", pluginName, buildVersion)
	cmd := os.Getenv("CNI_COMMAND")
	if cmd != "ADD" && cmd != "DEL" {
		skel.PluginMainFuncs(funcs, versions, about)
		return
	}
	// skel reports an unparseable cniVersion as a decoding failure (6) for CHECK, GC and
	// STATUS, but as an incompatible version (1) for ADD and DEL. Report 6 for every
	// command (docs/conformance.md G7): keep a copy of stdin to tell the two cases apart.
	stdin, err := io.ReadAll(os.Stdin)
	if err != nil {
		exitWith(cniError(types.ErrIOFailure, "read stdin", err))
	}
	if err := replaceStdin(stdin); err != nil {
		exitWith(cniError(types.ErrIOFailure, "replace stdin", err))
	}
	if e := skel.PluginMainFuncsWithError(funcs, versions, about); e != nil {
		if e.Code == types.ErrIncompatibleCNIVersion {
			if v, err := create.DecodeVersion(stdin); err == nil {
				if _, _, _, err := version.ParseVersion(v); err != nil {
					e = cniError(types.ErrDecodingFailure, fmt.Sprintf("invalid cniVersion %q", v), err)
				}
			}
		}
		exitWith(e)
	}
}

// exitWith prints e as the CNI error result and exits non-zero, like skel.PluginMainFuncs.
func exitWith(e *types.Error) {
	if err := e.Print(); err != nil {
		log.Print("write error JSON to stdout: ", err)
	}
	os.Exit(1)
}

// replaceStdin makes os.Stdin a pipe that yields data, for skel to read again.
func replaceStdin(data []byte) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	go func() {
		_, _ = w.Write(data) // the reader (skel) reads it all or the process exits
		_ = w.Close()
	}()
	os.Stdin = r
	return nil
}

func cmdAdd(args *skel.CmdArgs) error {
	conf, err := parseConfig(args.StdinData, false)
	if err != nil {
		return err
	}
	logger, closeLog := openLog(conf.LogFile, "ADD", args.ContainerID, args.IfName)
	defer closeLog()
	if conf.result == nil {
		return cniError(types.ErrInvalidNetworkConfig, ErrNotChained.Error(), nil)
	}
	// An unusable prevResult or sandbox interface is bad input (F3): an error, as before.
	pl, err := inspectPod(conf.result, args.Netns, args.IfName)
	if err != nil {
		logger.Printf("unusable attachment: %v", err)
		return err
	}
	// From here on nothing fails the pod's setup (docs/design.md decision 8): whatever goes
	// wrong is recorded on the endpoint (DatapathError), the node does not announce its
	// Services, and the primary plugin's result is passed through.
	addEndpoint(conf, logger, args, pl)
	// Pass the previous result through unchanged, in the version it came in.
	return types.PrintResult(conf.PrevResult, conf.CNIVersion)
}

// addEndpoint attaches the pod program, records the endpoint and registers it with
// bgplbd. A failure leaves the endpoint recorded (and registered when possible) with
// DatapathError set, so the daemon knows why the pod is not served; only when even that
// is impossible (records dir unusable) nothing is recorded, and the pod has no endpoint
// on this node (DatapathReady counts it as unregistered).
func addEndpoint(conf *PluginConf, logger *log.Logger, args *skel.CmdArgs, pl podLink) {
	unlock, err := lockRecords(conf.RecordsDir, false)
	if err != nil {
		logger.Printf("not served by bgplb: %v", err)
		return
	}
	defer unlock()

	linkPin := bpf.PodLinkPin(conf.BPFPinDir, args.ContainerID, args.IfName)
	pod := parsePodArgs(args.Args)
	ep := api.Endpoint{
		ContainerID:  args.ContainerID,
		IfName:       args.IfName,
		Netns:        args.Netns,
		PodNamespace: pod.Namespace,
		PodName:      pod.Name,
		PodUID:       pod.UID,
		IPs:          pl.ips,
		HostIfName:   pl.hostIfName,
		HostIfIndex:  pl.hostIfIndex,
		LinkPin:      linkPin,
		Created:      time.Now().UTC(),
	}
	if err := attachPod(conf, pl.hostIfIndex, linkPin); err != nil {
		logger.Printf("attach to %s (ifindex %d) failed, recording the endpoint as not datapath-ready: %v", pl.hostIfName, pl.hostIfIndex, err)
		ep.DatapathError = fmt.Sprintf("attach pod program to host veth %s: %v", pl.hostIfName, err)
		_ = bpf.DetachPod(linkPin) // best effort: nothing half-attached stays behind
	}
	store := api.RecordStore{Dir: conf.RecordsDir}
	if err := store.Put(ep); err != nil {
		logger.Printf("write endpoint record failed, not served by bgplb: %v", err)
		if err := bpf.DetachPod(linkPin); err != nil {
			logger.Printf("undo: detach %s: %v", linkPin, err)
		}
		return
	}

	ctx, cancel := context.WithTimeout(context.Background(), daemonTimeout)
	defer cancel()
	client := api.NewClient(conf.DaemonSocket)
	switch err := client.Register(ctx, ep); {
	case err == nil:
		logger.Printf("attached to %s (ifindex %d), ips %v, registered (datapath error: %q)", pl.hostIfName, pl.hostIfIndex, pl.ips, ep.DatapathError)
	case api.IsUnreachable(err):
		// The record is durable: bgplbd adopts it when it (re)starts.
		logger.Printf("attached to %s (ifindex %d), ips %v; daemon unreachable, it adopts the record on start: %v",
			pl.hostIfName, pl.hostIfIndex, pl.ips, err)
	default:
		// Refused: the pod must not be served (the daemon does not know it), but the node
		// must say why. Detach, record the refusal and register that (best effort; the
		// daemon adopts the record on its next rebuild otherwise).
		logger.Printf("bgplbd rejected the endpoint, recording it as not datapath-ready: %v", err)
		if derr := bpf.DetachPod(linkPin); derr != nil {
			logger.Printf("undo: detach %s: %v", linkPin, derr)
		}
		ep.DatapathError = fmt.Sprintf("bgplbd rejected the registration: %v", err)
		if perr := store.Put(ep); perr != nil {
			logger.Printf("record the refusal: %v", perr)
		}
		if rerr := client.Register(ctx, ep); rerr != nil {
			logger.Printf("register the not-ready endpoint (best effort): %v", rerr)
		}
	}
}

func cmdDel(args *skel.CmdArgs) error {
	conf, err := parseConfig(args.StdinData, true)
	if err != nil {
		return err
	}
	logger, closeLog := openLog(conf.LogFile, "DEL", args.ContainerID, args.IfName)
	defer closeLog()
	unlock, err := lockRecords(conf.RecordsDir, false)
	if err != nil {
		return err
	}
	defer unlock()
	if err := removeAttachment(conf, logger, args.ContainerID, args.IfName); err != nil {
		return err
	}
	logger.Printf("deleted")
	return nil
}

// removeAttachment detaches, deletes the record and unregisters one attachment. Everything
// already gone is fine; the daemon is best effort (it forgets endpoints without a record
// when it restarts).
func removeAttachment(conf *PluginConf, logger *log.Logger, containerID, ifName string) error {
	store := api.RecordStore{Dir: conf.RecordsDir}
	pins := []string{bpf.PodLinkPin(conf.BPFPinDir, containerID, ifName)}
	rec, ok, err := store.Get(containerID, ifName)
	if err != nil {
		logger.Printf("unreadable record is deleted anyway: %v", err)
	}
	// A record written with another bpfPinDir names its own pin; only follow it to a pod
	// link pin, never to an arbitrary path.
	if ok && rec.LinkPin != pins[0] && isPodLinkPin(rec.LinkPin) {
		pins = append(pins, rec.LinkPin)
	}
	for _, pin := range pins {
		if err := bpf.DetachPod(pin); err != nil {
			return cniError(CodeDetachFailed, fmt.Sprintf("detach pod program pinned at %s", pin), err)
		}
	}
	if err := store.Delete(containerID, ifName); err != nil {
		return cniError(CodeRecordFailed, "delete endpoint record", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), daemonTimeout)
	defer cancel()
	if err := api.NewClient(conf.DaemonSocket).Unregister(ctx, containerID, ifName); err != nil {
		logger.Printf("unregister (best effort): %v", err)
	}
	return nil
}

func isPodLinkPin(p string) bool {
	return filepath.IsAbs(p) && filepath.Base(filepath.Dir(p)) == "links" && strings.HasPrefix(filepath.Base(p), "pod_")
}

func cmdCheck(args *skel.CmdArgs) error {
	conf, err := parseConfig(args.StdinData, false)
	if err != nil {
		return err
	}
	logger, closeLog := openLog(conf.LogFile, "CHECK", args.ContainerID, args.IfName)
	defer closeLog()
	if conf.result == nil {
		return cniError(types.ErrInvalidNetworkConfig, ErrNotChained.Error(), nil)
	}
	pl, err := inspectPod(conf.result, args.Netns, args.IfName)
	if err != nil {
		return err
	}
	rec, ok, err := api.RecordStore{Dir: conf.RecordsDir}.Get(args.ContainerID, args.IfName)
	if err != nil {
		return cniError(CodeRecordFailed, "read endpoint record", err)
	}
	if !ok {
		return cniError(CodeRecordMissing, fmt.Sprintf("no endpoint record for %s/%s in %s", args.ContainerID, args.IfName, conf.RecordsDir), nil)
	}
	if !rec.DatapathReady() {
		return cniError(CodeDatapathNotReady, fmt.Sprintf("endpoint %s/%s is not datapath-ready", args.ContainerID, args.IfName), errors.New(rec.DatapathError))
	}
	if !slices.Equal(rec.IPs, pl.ips) {
		return cniError(CodeRecordMissing, fmt.Sprintf("endpoint record has IPs %v, prevResult has %v", rec.IPs, pl.ips), nil)
	}
	if rec.HostIfIndex != pl.hostIfIndex {
		return cniError(CodeRecordMissing, fmt.Sprintf("endpoint record names host ifindex %d, the pod's host veth %s is ifindex %d",
			rec.HostIfIndex, pl.hostIfName, pl.hostIfIndex), nil)
	}
	linkPin := bpf.PodLinkPin(conf.BPFPinDir, args.ContainerID, args.IfName)
	attached, ifindex, err := bpf.PodAttached(linkPin)
	if err != nil {
		return cniError(CodeNotAttached, fmt.Sprintf("inspect pod program link %s", linkPin), err)
	}
	if !attached {
		return cniError(CodeNotAttached, fmt.Sprintf("pod program is not attached to host veth %s (no live link pinned at %s)", pl.hostIfName, linkPin), nil)
	}
	if ifindex != pl.hostIfIndex {
		return cniError(CodeNotAttached, fmt.Sprintf("pod program link %s is attached to ifindex %d, not to host veth %s (ifindex %d)",
			linkPin, ifindex, pl.hostIfName, pl.hostIfIndex), nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), daemonTimeout)
	defer cancel()
	eps, err := api.NewClient(conf.DaemonSocket).List(ctx)
	if err != nil {
		return cniError(CodeDaemonUnreachable, fmt.Sprintf("bgplbd unreachable at %s", conf.DaemonSocket), err)
	}
	for _, ep := range eps {
		if ep.ContainerID == args.ContainerID && ep.IfName == args.IfName {
			logger.Printf("ok: attached to %s (ifindex %d), recorded, registered", pl.hostIfName, ifindex)
			return nil
		}
	}
	return cniError(CodeNotRegistered, fmt.Sprintf("bgplbd does not know endpoint %s/%s", args.ContainerID, args.IfName), nil)
}

func cmdStatus(args *skel.CmdArgs) error {
	conf, err := parseConfig(args.StdinData, true)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), daemonTimeout)
	defer cancel()
	if err := api.NewClient(conf.DaemonSocket).Ping(ctx); err != nil {
		return cniError(types.ErrPluginNotAvailable, fmt.Sprintf("bgplbd unreachable at %s", conf.DaemonSocket), err)
	}
	return nil
}

func cmdGC(args *skel.CmdArgs) error {
	conf, err := parseConfig(args.StdinData, true)
	if err != nil {
		return err
	}
	logger, closeLog := openLog(conf.LogFile, "GC", "", "")
	defer closeLog()
	if !conf.gcListGiven {
		// Without the list we cannot tell valid from stale; removing everything would
		// break every pod on the node.
		logger.Printf("no cni.dev/valid-attachments given: nothing collected")
		return nil
	}
	valid := map[string]bool{}     // "<containerID>/<ifName>" -> true
	validPins := map[string]bool{} // pod link pin path -> true
	for _, a := range append(append([]types.GCAttachment(nil), conf.ValidAttachments...), conf.LegacyAttachments...) {
		valid[a.ContainerID+"/"+a.IfName] = true
		validPins[bpf.PodLinkPin(conf.BPFPinDir, a.ContainerID, a.IfName)] = true
	}
	unlock, err := lockRecords(conf.RecordsDir, true)
	if err != nil {
		return err
	}
	defer unlock()

	var errs []error
	store := api.RecordStore{Dir: conf.RecordsDir}
	records, err := store.List()
	if err != nil {
		logger.Printf("list records: %v", err) // corrupt files are reported; the rest are listed
	}
	for _, rec := range records {
		if valid[rec.Key()] {
			continue
		}
		logger.Printf("collecting %s", rec.Key())
		if err := removeAttachment(conf, logger, rec.ContainerID, rec.IfName); err != nil {
			errs = append(errs, err)
		}
	}
	// Pins without a record (e.g. an ADD that failed half way, or a lost record).
	linksDir := filepath.Join(conf.BPFPinDir, "links")
	entries, err := os.ReadDir(linksDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("list link pins in %s: %w", linksDir, err))
	}
	for _, de := range entries {
		pin := filepath.Join(linksDir, de.Name())
		if !strings.HasPrefix(de.Name(), "pod_") || validPins[pin] {
			continue
		}
		logger.Printf("collecting orphan pin %s", pin)
		if err := bpf.DetachPod(pin); err != nil {
			errs = append(errs, fmt.Errorf("detach orphan pin %s: %w", pin, err))
		}
	}
	// Registrations without a record (best effort, like DEL).
	ctx, cancel := context.WithTimeout(context.Background(), daemonTimeout)
	defer cancel()
	client := api.NewClient(conf.DaemonSocket)
	if eps, err := client.List(ctx); err != nil {
		logger.Printf("list daemon endpoints (best effort): %v", err)
	} else {
		for _, ep := range eps {
			if !valid[ep.Key()] {
				if err := client.Unregister(ctx, ep.ContainerID, ep.IfName); err != nil {
					logger.Printf("unregister %s (best effort): %v", ep.Key(), err)
				}
			}
		}
	}
	if len(errs) > 0 {
		return cniError(CodeDetachFailed, "garbage collection incomplete", errors.Join(errs...))
	}
	return nil
}

// attachPod runs bpf.AttachPod under an exclusive lock. Loading the collection creates the
// pinned maps on first use, and 20 plugin processes racing to create them exhausted
// bpf's retries ("pin map ...: file exists"); attaching takes milliseconds, so serialising
// it costs little and leaves the rest of ADD parallel.
func attachPod(conf *PluginConf, hostIfIndex int, linkPin string) error {
	unlock, err := api.LockFile(filepath.Join(conf.RecordsDir, ".attach.lock"), true)
	if err != nil {
		return cniError(CodeRecordFailed, "lock eBPF attach", err)
	}
	defer unlock()
	_, err = bpf.AttachPodMode(conf.BPFPinDir, hostIfIndex, linkPin, conf.attachMode)
	return err
}

// lockRecords takes the record store's flock (api.RecordStore.Lock): shared for ADD and
// DEL, exclusive for GC. bgplbd's Rebuild takes it exclusively too.
func lockRecords(dir string, exclusive bool) (func(), error) {
	unlock, err := api.RecordStore{Dir: dir}.Lock(exclusive)
	if err != nil {
		return nil, cniError(CodeRecordFailed, "lock endpoint records", err)
	}
	return unlock, nil
}

// openLog returns a logger writing to logFile (appending), or discarding when it is empty
// or cannot be opened: logging must never fail or pollute a CNI call.
func openLog(logFile, cmd, containerID, ifName string) (*log.Logger, func()) {
	prefix := fmt.Sprintf("bgplb %s %s/%s pid=%d: ", cmd, containerID, ifName, os.Getpid())
	if logFile == "" {
		return log.New(io.Discard, "", 0), func() {}
	}
	f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return log.New(io.Discard, "", 0), func() {}
	}
	return log.New(f, prefix, log.LstdFlags|log.Lmicroseconds|log.LUTC), func() { _ = f.Close() }
}
