package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

// options are the validated command line inputs.
type options struct {
	name          string
	tcpPorts      []int
	udpPorts      []int
	shutdownDelay time.Duration
}

func main() {
	opts, err := parseOptions(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "podserver: %v\n", err)
		os.Exit(2)
	}
	ctx := klog.NewContext(context.Background(), klog.Background().WithValues("name", opts.name))
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	if err := run(ctx, opts, sig, nil); err != nil {
		klog.FromContext(ctx).Error(err, "podserver failed")
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

// parseOptions parses args; getenv supplies SHUTDOWN_DELAY.
func parseOptions(args []string, getenv func(string) string) (options, error) {
	fs := flag.NewFlagSet("podserver", flag.ContinueOnError)
	name := fs.String("name", "", "name reported by / and /hostname and in UDP replies (default: the host name)")
	tcp := fs.String("tcp", "", "comma-separated TCP ports to serve HTTP on (default 8080 when neither --tcp nor --udp is given)")
	udp := fs.String("udp", "", "comma-separated UDP ports to answer datagrams on")
	delay := fs.Duration("shutdown-delay", 2*time.Second, "how long to keep serving (not ready) after SIGTERM; env SHUTDOWN_DELAY overrides")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	opts := options{name: *name, shutdownDelay: *delay}
	if opts.name == "" {
		h, err := os.Hostname()
		if err != nil {
			return options{}, fmt.Errorf("get hostname: %w", err)
		}
		opts.name = h
	}
	var err error
	if opts.tcpPorts, err = parsePorts(*tcp); err != nil {
		return options{}, fmt.Errorf("parse --tcp: %w", err)
	}
	if opts.udpPorts, err = parsePorts(*udp); err != nil {
		return options{}, fmt.Errorf("parse --udp: %w", err)
	}
	if len(opts.tcpPorts) == 0 && len(opts.udpPorts) == 0 {
		opts.tcpPorts = []int{8080}
	}
	if v := getenv("SHUTDOWN_DELAY"); v != "" {
		d, err := parseDelay(v)
		if err != nil {
			return options{}, fmt.Errorf("parse SHUTDOWN_DELAY %q: %w", v, err)
		}
		opts.shutdownDelay = d
	}
	if opts.shutdownDelay < 0 {
		return options{}, fmt.Errorf("shutdown delay %s is negative", opts.shutdownDelay)
	}
	return opts, nil
}

// parsePorts parses "8080,9090" (empty means none).
func parsePorts(s string) ([]int, error) {
	var ports []int
	seen := map[int]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("invalid port %q", f)
		}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// parseDelay accepts a Go duration ("1500ms") or whole seconds ("5").
func parseDelay(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}
