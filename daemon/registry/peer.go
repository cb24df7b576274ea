package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// ErrPeerRefused is wrapped by the errors of requests whose client is not allowed: not
// root (SO_PEERCRED uid ≠ 0), or, with WithClientExecutable, not running the expected
// executable.
var ErrPeerRefused = errors.New("registry client refused")

// WithClientExecutable makes the server accept registrations and removals only from
// processes whose executable (/proc/<pid>/exe, pid from SO_PEERCRED) is the file at path
// (the installed CNI plugin, e.g. /opt/cni/bin/bgplb); files are compared by device and
// inode, so the daemon may see the file under another mount path than the plugin. It
// needs the daemon to see the plugin's PID: in the host PID namespace (hostPID) or, as in
// the lab, a process on the host. Without it SO_PEERCRED reports pid 0 for a peer
// outside the daemon's PID namespace and every registration is refused, which is why it
// is off unless configured (docs/security.md).
func WithClientExecutable(path string) Option {
	return func(r *Registry) { r.clientExe = path }
}

type peerKey struct{}

// peerCred is the credential the kernel recorded for a connection's client when it
// connected (SO_PEERCRED); err is set when it could not be read.
type peerCred struct {
	uid uint32
	pid int32
	err error
}

// connContext stores the connection's peer credentials in its context (http.Server.ConnContext).
func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, peerKey{}, readPeerCred(c))
}

func readPeerCred(c net.Conn) peerCred {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peerCred{err: fmt.Errorf("connection is %T, not a unix socket", c)}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peerCred{err: fmt.Errorf("read peer credentials: %w", err)}
	}
	var (
		cred  *unix.Ucred
		cerr  error
		pcred peerCred
	)
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		cerr = err
	}
	if cerr != nil {
		pcred.err = fmt.Errorf("read SO_PEERCRED: %w", cerr)
		return pcred
	}
	return peerCred{uid: cred.Uid, pid: cred.Pid}
}

// checkPeer returns nil when the request's client may use the API: root, and for
// mutations (mutating true) the expected executable when one is configured. Requests
// without credentials (not from Serve's socket) are refused: the check fails closed.
func (r *Registry) checkPeer(req *http.Request, mutating bool) error {
	pc, ok := req.Context().Value(peerKey{}).(peerCred)
	switch {
	case !ok:
		return fmt.Errorf("%w: no peer credentials", ErrPeerRefused)
	case pc.err != nil:
		return fmt.Errorf("%w: %w", ErrPeerRefused, pc.err)
	case pc.uid != 0:
		return fmt.Errorf("%w: uid %d is not root", ErrPeerRefused, pc.uid)
	}
	if !mutating || r.clientExe == "" {
		return nil
	}
	if pc.pid <= 0 {
		return fmt.Errorf("%w: the client's pid is not visible in the daemon's PID namespace", ErrPeerRefused)
	}
	want, err := os.Stat(r.clientExe)
	if err != nil {
		return fmt.Errorf("%w: stat expected client executable: %w", ErrPeerRefused, err)
	}
	exe := "/proc/" + strconv.Itoa(int(pc.pid)) + "/exe"
	got, err := os.Stat(exe) // follows the magic link to the file the process runs
	if err != nil {
		return fmt.Errorf("%w: stat %s: %w", ErrPeerRefused, exe, err)
	}
	if !os.SameFile(want, got) {
		target, _ := os.Readlink(exe) // for the message only
		return fmt.Errorf("%w: pid %d runs %s, not %s", ErrPeerRefused, pc.pid, target, r.clientExe)
	}
	return nil
}

// withPeerCheck wraps h with checkPeer.
func (r *Registry) withPeerCheck(mutating bool, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if err := r.checkPeer(req, mutating); err != nil {
			klog.FromContext(req.Context()).Info("registry request refused", "method", req.Method,
				"path", req.URL.Path, "err", err, "reason", "peerRefused")
			writeError(w, http.StatusForbidden, err)
			return
		}
		h(w, req)
	}
}
