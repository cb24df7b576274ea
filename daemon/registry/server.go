package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/bgplb/bgplb/daemon/registry/api"
)

// shutdownTimeout bounds how long Serve waits for in-flight requests after ctx is done.
const shutdownTimeout = 5 * time.Second

// maxBodyBytes bounds a request body (one Endpoint).
const maxBodyBytes = 1 << 20

// Serve serves the registry API (see package api) on a unix socket at socketPath until ctx
// is done, then shuts down gracefully (in-flight requests get shutdownTimeout) and removes
// the socket. The socket is created with mode 0600 (root only); its directory is created
// with mode 0750 when missing. A stale socket file left by a dead daemon is removed; if
// another process is still serving on socketPath, or the path is not a socket, Serve fails
// instead of taking it over. Serve returns nil after a shutdown caused by ctx.
func (r *Registry) Serve(ctx context.Context, socketPath string) error {
	logger := klog.FromContext(ctx).WithValues("socket", socketPath)
	l, err := listenUnix(ctx, socketPath)
	if err != nil {
		return err
	}
	// Connections that have not sent a request yet (a client's spare dial) count as busy
	// for http.Server.Shutdown for 5 s; track them so shutdown can close them at once.
	var mu sync.Mutex
	fresh := map[net.Conn]struct{}{}
	srv := &http.Server{
		Handler:           r.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ConnContext:       connContext,
		ConnState: func(c net.Conn, st http.ConnState) {
			mu.Lock()
			defer mu.Unlock()
			if st == http.StateNew {
				fresh[c] = struct{}{}
			} else {
				delete(fresh, c)
			}
		},
	}
	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve(l) }()
	logger.Info("endpoint registry serving")

	select {
	case err := <-errCh:
		return fmt.Errorf("serve registry on %s: %w", socketPath, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(sctx) }() // closes the listener, which unlinks the socket
	var shutdownErr error
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
wait:
	for {
		select {
		case shutdownErr = <-done:
			break wait
		case <-tick.C:
			mu.Lock()
			for c := range fresh {
				_ = c.Close() // no request on it: nothing in flight to lose
				delete(fresh, c)
			}
			mu.Unlock()
		}
	}
	if err := <-errCh; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve registry on %s: %w", socketPath, err)
	}
	if shutdownErr != nil {
		_ = srv.Close() // force-close the connections that did not finish in time
		return fmt.Errorf("shut down registry server on %s: %w", socketPath, shutdownErr)
	}
	logger.Info("endpoint registry stopped")
	return nil
}

// listenUnix listens on socketPath with mode 0600, removing a stale socket first.
func listenUnix(ctx context.Context, socketPath string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(socketPath), 0o750); err != nil {
		return nil, fmt.Errorf("create socket dir for %s: %w", socketPath, err)
	}
	fi, err := os.Lstat(socketPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("stat socket %s: %w", socketPath, err)
	case fi.Mode()&fs.ModeSocket == 0:
		return nil, fmt.Errorf("listen on %s: path exists and is not a socket", socketPath)
	default:
		d := net.Dialer{Timeout: time.Second}
		if c, err := d.DialContext(ctx, "unix", socketPath); err == nil {
			_ = c.Close() // only probing
			return nil, fmt.Errorf("listen on %s: another process is serving on it", socketPath)
		}
		if err := os.Remove(socketPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove stale socket %s: %w", socketPath, err)
		}
		klog.FromContext(ctx).Info("removed stale socket", "socket", socketPath)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", socketPath)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", socketPath, err)
	}
	if err := os.Chmod(socketPath, 0o600); err != nil {
		_ = l.Close() // unusable without the right mode
		return nil, fmt.Errorf("chmod socket %s: %w", socketPath, err)
	}
	return l, nil
}

// Handler returns the HTTP handler of the registry API, for Serve. Requests that did not
// come through Serve's socket carry no peer credentials and are refused.
func (r *Registry) Handler() http.Handler {
	mux := http.NewServeMux()
	// Every client must be root (SO_PEERCRED); registrations and removals also the CNI
	// plugin's executable when WithClientExecutable is set (peer.go).
	mux.HandleFunc("PUT "+api.PathEndpoints, r.withPeerCheck(true, r.handleRegister))
	mux.HandleFunc("DELETE "+api.PathEndpoints+"/{containerID}/{ifName}", r.withPeerCheck(true, r.handleUnregister))
	mux.HandleFunc("GET "+api.PathEndpoints, r.withPeerCheck(false, r.handleList))
	mux.HandleFunc("GET "+api.PathRoutes, r.withPeerCheck(false, r.handleRoutes))
	mux.HandleFunc("GET "+api.PathPing, r.withPeerCheck(false, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	return mux
}

func (r *Registry) handleRegister(w http.ResponseWriter, req *http.Request) {
	var ep api.Endpoint
	dec := json.NewDecoder(http.MaxBytesReader(w, req.Body, maxBodyBytes))
	if err := dec.Decode(&ep); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("decode endpoint: %w", err))
		return
	}
	if err := r.Register(req.Context(), ep); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, ErrIPInUse) {
			code = http.StatusConflict
		}
		writeError(w, code, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (r *Registry) handleUnregister(w http.ResponseWriter, req *http.Request) {
	r.Unregister(req.Context(), req.PathValue("containerID"), req.PathValue("ifName"))
	w.WriteHeader(http.StatusNoContent)
}

func (r *Registry) handleList(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, r.List())
}

func (r *Registry) handleRoutes(w http.ResponseWriter, req *http.Request) {
	fn := r.routes.Load()
	if fn == nil {
		writeError(w, http.StatusNotFound, errors.New("routes not served"))
		return
	}
	rs, err := (*fn)(req.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, rs)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, api.ErrorBody{Error: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the client is gone if this fails; nothing to do
}
