package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
)

// maxBody bounds what /echo, POST /ready and UDP read.
const maxBody = 1 << 20

// server holds the state shared by all listeners.
type server struct {
	name        string
	ready       atomic.Bool // set by POST /ready; starts true
	terminating atomic.Bool // set on SIGTERM; forces not ready
}

func newServer(name string) *server {
	s := &server{name: name}
	s.ready.Store(true)
	return s
}

// isReady is what GET /ready reports.
func (s *server) isReady() bool { return s.ready.Load() && !s.terminating.Load() }

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		writeText(w, http.StatusOK, s.name)
	})
	mux.HandleFunc("/hostname", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, s.name)
	})
	mux.HandleFunc("/clientip", func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			writeText(w, http.StatusInternalServerError, fmt.Sprintf("parse remote address %q: %v", r.RemoteAddr, err))
			return
		}
		writeText(w, http.StatusOK, ap.Addr().Unmap().String())
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err != nil {
			writeText(w, http.StatusBadRequest, fmt.Sprintf("read body: %v", err))
			return
		}
		if len(body) == 0 {
			body = []byte(r.URL.Query().Get("msg"))
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body) // the client may have gone; nothing to do about it
	})
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		s.fetch(w, r)
	})
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead:
		case http.MethodPost, http.MethodPut:
			v := r.URL.Query().Get("ready")
			if v == "" {
				body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
				if err != nil {
					writeText(w, http.StatusBadRequest, fmt.Sprintf("read body: %v", err))
					return
				}
				v = string(body)
			}
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				writeText(w, http.StatusBadRequest, fmt.Sprintf("want true or false, got %q", v))
				return
			}
			s.ready.Store(b)
		default:
			w.Header().Set("Allow", "GET, HEAD, POST, PUT")
			writeText(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		if s.isReady() {
			writeText(w, http.StatusOK, "ready")
		} else {
			writeText(w, http.StatusServiceUnavailable, "not ready")
		}
	})
	return mux
}

// fetchTimeout bounds one /fetch.
const fetchTimeout = 3 * time.Second

// fetch answers GET /fetch?addr=<ip:port>&path=</p>: the server itself fetches
// http://<addr><path> on a new connection and answers the body it got (502 with the
// error when that fails). It lets a test see what a pod sees when it reaches a VIP.
func (s *server) fetch(w http.ResponseWriter, r *http.Request) {
	ap, err := netip.ParseAddrPort(r.URL.Query().Get("addr"))
	if err != nil {
		writeText(w, http.StatusBadRequest, fmt.Sprintf("addr: %v", err))
		return
	}
	path := r.URL.Query().Get("path")
	if !strings.HasPrefix(path, "/") {
		writeText(w, http.StatusBadRequest, fmt.Sprintf("path %q does not start with /", path))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ap.String()+path, nil)
	if err != nil {
		writeText(w, http.StatusBadRequest, err.Error())
		return
	}
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		writeText(w, http.StatusBadGateway, fmt.Sprintf("fetch: %v", err))
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		writeText(w, http.StatusBadGateway, fmt.Sprintf("read: %v", err))
		return
	}
	if resp.StatusCode != http.StatusOK {
		writeText(w, http.StatusBadGateway, fmt.Sprintf("fetch: %s: %s", resp.Status, body))
		return
	}
	writeText(w, http.StatusOK, string(body))
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body) // the client may have gone; nothing to do about it
}

// udpReply is the answer to one datagram.
func (s *server) udpReply(from netip.AddrPort, payload []byte) []byte {
	p := strings.TrimRight(string(payload), "\r\n")
	p = strings.NewReplacer("\n", " ", "\r", " ").Replace(p)
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	return []byte(fmt.Sprintf("hostname=%s client=%s echo=%s", s.name, from, p))
}

// serveUDP answers datagrams until conn is closed.
func (s *server) serveUDP(ctx context.Context, conn *net.UDPConn) {
	logger := klog.FromContext(ctx)
	buf := make([]byte, 65535)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				logger.Error(err, "read UDP", "addr", conn.LocalAddr().String())
			}
			return
		}
		if _, err := conn.WriteToUDPAddrPort(s.udpReply(from, buf[:n]), from); err != nil {
			logger.V(2).Info("UDP reply failed", "client", from.String(), "err", err)
		}
	}
}

// listeners are the bound sockets of one run.
type listeners struct {
	tcp []net.Listener
	udp []*net.UDPConn
}

func (l *listeners) close() {
	for _, t := range l.tcp {
		_ = t.Close() // closing during shutdown; errors mean already closed
	}
	for _, u := range l.udp {
		_ = u.Close() // same
	}
}

// listen binds every port on all addresses (":port" is dual-stack on Linux).
func listen(opts options) (*listeners, error) {
	l := &listeners{}
	for _, p := range opts.tcpPorts {
		t, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			l.close()
			return nil, fmt.Errorf("listen on TCP port %d: %w", p, err)
		}
		l.tcp = append(l.tcp, t)
	}
	for _, p := range opts.udpPorts {
		u, err := net.ListenUDP("udp", &net.UDPAddr{Port: p})
		if err != nil {
			l.close()
			return nil, fmt.Errorf("listen on UDP port %d: %w", p, err)
		}
		l.udp = append(l.udp, u)
	}
	return l, nil
}

// run serves until a signal arrives on sig, then reports not ready, keeps
// serving for opts.shutdownDelay and returns nil. started, when non-nil, is
// called with the bound listeners before serving begins (tests use port 0).
func run(ctx context.Context, opts options, sig <-chan os.Signal, started func(*listeners)) error {
	logger := klog.FromContext(ctx)
	s := newServer(opts.name)
	ls, err := listen(opts)
	if err != nil {
		return err
	}
	defer ls.close()
	if started != nil {
		started(ls)
	}
	srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	errs := make(chan error, len(ls.tcp))
	var wg sync.WaitGroup
	for _, t := range ls.tcp {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(t); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("serve HTTP on %s: %w", t.Addr(), err)
			}
		}()
	}
	for _, u := range ls.udp {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveUDP(ctx, u)
		}()
	}
	logger.Info("podserver serving", "tcpPorts", opts.tcpPorts, "udpPorts", opts.udpPorts, "pid", os.Getpid())

	var runErr error
	select {
	case got := <-sig:
		s.terminating.Store(true)
		logger.Info("signal received; not ready, serving until the shutdown delay ends", "signal", got.String(), "delay", opts.shutdownDelay)
		select {
		case <-time.After(opts.shutdownDelay):
		case got := <-sig:
			logger.Info("second signal; exiting now", "signal", got.String())
		}
	case runErr = <-errs:
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		logger.V(2).Info("HTTP shutdown incomplete", "err", err)
	}
	ls.close()
	wg.Wait()
	logger.Info("podserver stopped")
	return runErr
}
