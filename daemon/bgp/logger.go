package bgp

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// errorTracker remembers the last session error per neighbour address.
type errorTracker struct {
	mu   sync.Mutex
	last map[string]string // neighbour address -> last error in words
}

func newErrorTracker() *errorTracker { return &errorTracker{last: map[string]string{}} }

func (t *errorTracker) set(addr, msg string) {
	t.mu.Lock()
	t.last[addr] = msg
	t.mu.Unlock()
}

func (t *errorTracker) clear(addr string) {
	t.mu.Lock()
	delete(t.last, addr)
	t.mu.Unlock()
}

func (t *errorTracker) get(addr string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last[addr]
}

// klogAdapter implements GoBGP's logger on top of a logr.Logger (klog contextual
// logging) and feeds the errorTracker. Levels: Warn → V(0), Info → V(2), Debug → V(5).
type klogAdapter struct {
	logger  logr.Logger
	tracker *errorTracker
}

var _ gobgplog.Logger = &klogAdapter{}

func kv(fields gobgplog.Fields) []any {
	out := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		out = append(out, k, fmt.Sprint(v))
	}
	return out
}

func (l *klogAdapter) observe(msg string, fields gobgplog.Fields) {
	if fields["Topic"] != "Peer" {
		return
	}
	addr, _ := fields["Key"].(string)
	if addr == "" {
		return
	}
	switch msg {
	case "failed to connect":
		if err, ok := fields["Error"].(error); ok {
			l.tracker.set(addr, connectError(err))
		}
	case "sent notification":
		if e, ok := fields["Data"].(*bgp.MessageError); ok {
			l.tracker.set(addr, "sent notification: "+notificationText(e.TypeCode, e.SubTypeCode))
		}
	case "received notification":
		code, ok1 := fields["Code"].(uint8)
		sub, ok2 := fields["Subcode"].(uint8)
		if ok1 && ok2 {
			l.tracker.set(addr, "received notification: "+notificationText(code, sub))
		}
	case "prefix limit reached":
		if _, warningOnly := fields["Pct"]; !warningOnly {
			family, _ := fields["Family"].(string)
			l.tracker.set(addr, maxPrefixMarker+family)
		}
	case "hold timer expired":
		l.tracker.set(addr, "hold timer expired")
	case "Peer Down":
		if r, ok := fields["Reason"].(string); ok && l.tracker.get(addr) == "" {
			l.tracker.set(addr, "session down: "+r)
		}
	}
}

func (l *klogAdapter) Panic(msg string, fields gobgplog.Fields) {
	l.logger.Error(nil, msg, kv(fields)...)
	panic(msg)
}

func (l *klogAdapter) Fatal(msg string, fields gobgplog.Fields) {
	l.logger.Error(nil, msg, kv(fields)...)
	os.Exit(1)
}

func (l *klogAdapter) Error(msg string, fields gobgplog.Fields) {
	l.observe(msg, fields)
	l.logger.Error(nil, msg, kv(fields)...)
}

func (l *klogAdapter) Warn(msg string, fields gobgplog.Fields) {
	l.observe(msg, fields)
	l.logger.Info(msg, kv(fields)...)
}

func (l *klogAdapter) Info(msg string, fields gobgplog.Fields) {
	l.observe(msg, fields)
	if l.logger.V(2).Enabled() {
		l.logger.V(2).Info(msg, kv(fields)...)
	}
}

func (l *klogAdapter) Debug(msg string, fields gobgplog.Fields) {
	l.observe(msg, fields)
	if l.logger.V(5).Enabled() {
		l.logger.V(5).Info(msg, kv(fields)...)
	}
}

// SetLevel is ignored: verbosity comes from klog's -v.
func (l *klogAdapter) SetLevel(gobgplog.LogLevel) {}

// GetLevel returns Debug so GoBGP emits the connect failures we record.
func (l *klogAdapter) GetLevel() gobgplog.LogLevel { return gobgplog.DebugLevel }

// connectError shortens a dial error to its cause, e.g. "connect: connection refused".
func connectError(err error) string {
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		var sysErr *os.SyscallError
		if errors.As(opErr.Err, &sysErr) {
			return sysErr.Error()
		}
		return opErr.Op + ": " + opErr.Err.Error()
	}
	return err.Error()
}

var openSubcodes = map[uint8]string{
	1:  "unsupported version number",
	2:  "bad peer AS",
	3:  "bad BGP identifier",
	4:  "unsupported optional parameter",
	6:  "unacceptable hold time",
	7:  "unsupported capability",
	11: "role mismatch",
}

var ceaseSubcodes = map[uint8]string{
	1: "maximum number of prefixes reached",
	2: "administrative shutdown",
	3: "peer de-configured",
	4: "administrative reset",
	5: "connection rejected",
	6: "other configuration change",
	7: "connection collision resolution",
	8: "out of resources",
	9: "hard reset",
}

// notificationText renders a NOTIFICATION code/subcode in words.
func notificationText(code, sub uint8) string {
	switch code {
	case bgp.BGP_ERROR_OPEN_MESSAGE_ERROR:
		if s, ok := openSubcodes[sub]; ok {
			return "OPEN: " + s
		}
		return fmt.Sprintf("OPEN: subcode %d", sub)
	case bgp.BGP_ERROR_CEASE:
		if s, ok := ceaseSubcodes[sub]; ok {
			return "cease: " + s
		}
		return fmt.Sprintf("cease: subcode %d", sub)
	case bgp.BGP_ERROR_HOLD_TIMER_EXPIRED:
		return "hold timer expired"
	}
	return bgp.NewNotificationErrorCode(code, sub).String()
}

// maxPrefixMarker starts the tracked error of a peer that exceeded its prefix limit; the
// speaker, which knows the limit, turns it into words (maxPrefixError).
const maxPrefixMarker = "\x00max-prefix:"

// IsMaxPrefixError reports whether a PeerStatus.LastError says the peer exceeded its
// prefix limit (the session is then shut down until its config changes).
func IsMaxPrefixError(lastError string) bool { return strings.HasPrefix(lastError, "max-prefix:") }

// maxPrefixError explains a tracked max-prefix error (marker + family) with the limit.
func maxPrefixError(tracked string, limit uint32) string {
	family := strings.TrimPrefix(tracked, maxPrefixMarker)
	return fmt.Sprintf("max-prefix: the peer sent more than %d %s prefixes (BGPPeer spec.maxPrefixes; nodes import nothing); "+
		"session shut down until the BGPPeer changes or bgplbd restarts", limit, family)
}
