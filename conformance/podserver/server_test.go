package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseOptions(t *testing.T) {
	noEnv := func(string) string { return "" }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    options
		wantErr string
	}{
		{name: "defaults", args: []string{"--name", "p"}, want: options{name: "p", tcpPorts: []int{8080}, shutdownDelay: 2 * time.Second}},
		{name: "udp only keeps tcp empty", args: []string{"--name", "p", "--udp", "5353"}, want: options{name: "p", udpPorts: []int{5353}, shutdownDelay: 2 * time.Second}},
		{name: "lists", args: []string{"--name", "p", "--tcp", "8080, 9090,8080", "--udp", "53", "--shutdown-delay", "5s"}, want: options{name: "p", tcpPorts: []int{8080, 9090}, udpPorts: []int{53}, shutdownDelay: 5 * time.Second}},
		{name: "env seconds overrides flag", args: []string{"--name", "p", "--shutdown-delay", "5s"}, env: map[string]string{"SHUTDOWN_DELAY": "7"}, want: options{name: "p", tcpPorts: []int{8080}, shutdownDelay: 7 * time.Second}},
		{name: "env duration", args: []string{"--name", "p"}, env: map[string]string{"SHUTDOWN_DELAY": "150ms"}, want: options{name: "p", tcpPorts: []int{8080}, shutdownDelay: 150 * time.Millisecond}},
		{name: "bad port", args: []string{"--tcp", "70000"}, wantErr: "invalid port"},
		{name: "bad env", args: []string{"--name", "p"}, env: map[string]string{"SHUTDOWN_DELAY": "soon"}, wantErr: "SHUTDOWN_DELAY"},
		{name: "extra args", args: []string{"--name", "p", "x"}, wantErr: "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			getenv := noEnv
			if tc.env != nil {
				getenv = func(k string) string { return tc.env[k] }
			}
			got, err := parseOptions(tc.args, getenv)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// startInProcess runs the server on ephemeral ports and returns its TCP and UDP ports.
func startInProcess(t *testing.T, name string) (tcpPort, udpPort int, sig chan os.Signal, done chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sig = make(chan os.Signal, 1)
	done = make(chan error, 1)
	bound := make(chan *listeners, 1)
	go func() {
		done <- run(ctx, options{name: name, tcpPorts: []int{0}, udpPorts: []int{0}, shutdownDelay: 300 * time.Millisecond}, sig, func(l *listeners) { bound <- l })
	}()
	var l *listeners
	select {
	case l = <-bound:
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return l.tcp[0].Addr().(*net.TCPAddr).Port, l.udp[0].LocalAddr().(*net.UDPAddr).Port, sig, done
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestHTTPHandlers(t *testing.T) {
	port, _, _, _ := startInProcess(t, "pod-a")
	v4 := fmt.Sprintf("http://127.0.0.1:%d", port)
	v6 := fmt.Sprintf("http://[::1]:%d", port)
	checks := []struct {
		method, url, body string
		wantCode          int
		wantBody          string
	}{
		{"GET", v4 + "/", "", 200, "pod-a"},
		{"GET", v4 + "/hostname", "", 200, "pod-a"},
		{"GET", v4 + "/nope", "", 404, "404 page not found\n"},
		{"GET", v4 + "/clientip", "", 200, "127.0.0.1"},
		{"GET", v6 + "/clientip", "", 200, "::1"},
		{"POST", v4 + "/echo", "hello body", 200, "hello body"},
		{"GET", v4 + "/echo?msg=hi+there", "", 200, "hi there"},
		{"GET", v4 + "/ready", "", 200, "ready"},
		{"POST", v4 + "/ready", "false", 503, "not ready"},
		{"GET", v6 + "/ready", "", 503, "not ready"},
		{"POST", v4 + "/ready", "maybe", 400, `want true or false, got "maybe"`},
		{"POST", v4 + "/ready?ready=true", "", 200, "ready"},
		{"GET", v4 + "/ready", "", 200, "ready"},
		{"POST", v4 + "/ready", "false\n", 503, "not ready"},
		{"POST", v4 + "/ready", "true", 200, "ready"},
		{"DELETE", v4 + "/ready", "", 405, "method not allowed"},
		{"GET", v4 + fmt.Sprintf("/fetch?addr=127.0.0.1:%d&path=/hostname", port), "", 200, "pod-a"},
		{"GET", v4 + fmt.Sprintf("/fetch?addr=[::1]:%d&path=/clientip", port), "", 200, "::1"},
		{"GET", v4 + fmt.Sprintf("/fetch?addr=127.0.0.1:%d&path=/nope", port), "", 502, "fetch: 404 Not Found: 404 page not found\n"},
		{"GET", v4 + "/fetch?addr=nohost&path=/", "", 400, "addr: not an ip:port"},
		{"GET", v4 + fmt.Sprintf("/fetch?addr=127.0.0.1:%d&path=x", port), "", 400, `path "x" does not start with /`},
	}
	for _, c := range checks {
		code, body := do(t, c.method, c.url, c.body)
		if code != c.wantCode || body != c.wantBody {
			t.Errorf("%s %s (%q) = %d %q, want %d %q", c.method, c.url, c.body, code, body, c.wantCode, c.wantBody)
		}
	}
}

func TestUDPEcho(t *testing.T) {
	_, port, _, _ := startInProcess(t, "pod-u")
	for _, network := range []string{"127.0.0.1", "::1"} {
		conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(mustAddrPort(t, network, port)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		if err := conn.SetReadDeadline(time.Now().Add(3 * time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("read UDP reply via %s: %v", network, err)
		}
		local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
		want := fmt.Sprintf("hostname=pod-u client=%s echo=ping", local)
		if got := string(buf[:n]); got != want {
			t.Errorf("reply via %s = %q, want %q", network, got, want)
		}
	}
}

func TestSignalKeepsServingNotReady(t *testing.T) {
	port, _, sig, done := startInProcess(t, "pod-s")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	sig <- os.Interrupt
	deadline := time.Now().Add(time.Second)
	for {
		code, _ := do(t, "GET", base+"/ready", "")
		if code == 503 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still ready after the signal")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := do(t, "POST", base+"/ready", "true"); code != 503 || body != "not ready" {
		t.Errorf("POST ready=true while terminating = %d %q, want 503 not ready", code, body)
	}
	if code, body := do(t, "GET", base+"/hostname", ""); code != 200 || body != "pod-s" {
		t.Errorf("hostname while terminating = %d %q", code, body)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
		done <- nil // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop after the shutdown delay")
	}
}
