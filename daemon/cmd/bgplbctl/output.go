package main

import (
	"context"
	"fmt"
	"io"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/bpf"
	"github.com/bgplb/bgplb/daemon/apis/bgplb/v1alpha1"
	"github.com/bgplb/bgplb/daemon/clusterview"
	"github.com/bgplb/bgplb/daemon/registry/api"
)

// NodeStatus is `status -o json|yaml`: what the table shows, as data.
type NodeStatus struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Node       string `json:"node"`
	// BGPNodeState is the node's status object (sessions, counts, errors).
	BGPNodeState *v1alpha1.BGPNodeStateStatus `json:"bgpNodeState,omitempty"`
	// Routes are the prefixes the node's speaker originates and the peers each goes to.
	Routes []api.Route `json:"routes"`
	// Endpoints are the pod attachments the CNI plugin registered.
	Endpoints []api.Endpoint `json:"endpoints"`
	// DatapathVIPs are the VIPs marked in the datapath.
	DatapathVIPs []string `json:"datapathVIPs"`
	// Errors name the parts that could not be read.
	Errors []string `json:"errors,omitempty"`
}

// collectStatus gathers NodeStatus; the error is the first part that failed (the
// datapath's pins missing is not one: --datapath=false has none).
func collectStatus(ctx context.Context, g *globals) (*NodeStatus, error) {
	st := &NodeStatus{Kind: "NodeStatus", APIVersion: clusterview.APIVersion, Node: g.nodeName,
		Routes: []api.Route{}, Endpoints: []api.Endpoint{}, DatapathVIPs: []string{}}
	var firstErr error
	fail := func(what string, err error) {
		st.Errors = append(st.Errors, fmt.Sprintf("%s: %v", what, err))
		if firstErr == nil {
			firstErr = err
		}
	}
	if _, crd, err := g.clients(); err != nil {
		fail("BGPNodeState", err)
	} else if ns, err := crd.BgplbV1alpha1().BGPNodeStates().Get(ctx, g.nodeName, metav1.GetOptions{}); err != nil {
		fail("BGPNodeState", err)
	} else {
		st.BGPNodeState = &ns.Status
	}
	client := api.NewClient(g.socket)
	if routes, err := client.Routes(ctx); err != nil {
		fail("routes (socket "+g.socket+")", err)
	} else if routes != nil {
		st.Routes = routes
	}
	if eps, err := client.List(ctx); err != nil {
		fail("endpoints (socket "+g.socket+")", err)
	} else if eps != nil {
		st.Endpoints = eps
	}
	if vips, err := datapathVIPs(g.pinDir); err == nil {
		for _, v := range vips {
			st.DatapathVIPs = append(st.DatapathVIPs, v.String())
		}
	} else if !os.IsNotExist(err) {
		fail("datapath ("+g.pinDir+")", err)
	}
	return st, firstErr
}

// Frontend is one frontend of `lb list -o json|yaml` with its backends.
type Frontend struct {
	Frontend string    `json:"frontend"` // VIP:port/protocol
	ID       uint32    `json:"id"`
	Local    bool      `json:"local"` // externalTrafficPolicy Local
	Ranges   bool      `json:"sourceRanges"`
	Packets  uint64    `json:"packets"`
	Bytes    uint64    `json:"bytes"`
	Backends []Backend `json:"backends"`
}

// Backend is one datapath backend with its counters.
type Backend struct {
	ID          uint32 `json:"id"`
	Address     string `json:"address"` // pod IP:port; empty when the id is missing from the map
	Ifindex     int    `json:"ifindex"`
	Terminating bool   `json:"terminating"`
	Packets     uint64 `json:"packets"`
	Bytes       uint64 `json:"bytes"`
}

// LBList is `lb list -o json|yaml`.
type LBList struct {
	Kind       string     `json:"kind"`
	APIVersion string     `json:"apiVersion"`
	Frontends  []Frontend `json:"frontends"`
	// Draining are backends that keep established flows only.
	Draining []Backend `json:"draining"`
	// Drops are the uplink program's drop counters by reason (zeros omitted).
	Drops map[string]uint64 `json:"drops"`
}

func backendOf(b bpf.BackendEntry) Backend {
	return Backend{ID: b.ID, Address: b.Backend.Addr.String(), Ifindex: b.Backend.Ifindex, Terminating: b.Backend.Terminating,
		Packets: b.Stats.Packets, Bytes: b.Stats.Bytes}
}

// readLBList reads the datapath tables once, for the table and for -o json|yaml.
func readLBList(pinDir string) (*LBList, error) {
	m, err := openMaps(pinDir)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	svcs, err := m.Services()
	if err != nil {
		return nil, err
	}
	bes, err := m.Backends()
	if err != nil {
		return nil, err
	}
	drops, err := m.Drops()
	if err != nil {
		return nil, err
	}
	l := &LBList{Kind: "LBList", APIVersion: clusterview.APIVersion, Frontends: []Frontend{}, Draining: []Backend{}, Drops: map[string]uint64{}}
	byID := map[uint32]bpf.BackendEntry{}
	for _, b := range bes {
		byID[b.ID] = b
	}
	inSet := map[uint32]bool{}
	for _, s := range svcs {
		f := Frontend{Frontend: s.Key.String(), ID: s.Service.ID, Local: s.Service.Local, Ranges: s.Service.SourceRanges,
			Packets: s.Stats.Packets, Bytes: s.Stats.Bytes, Backends: []Backend{}}
		for _, id := range s.Backends {
			inSet[id] = true
			if b, ok := byID[id]; ok {
				f.Backends = append(f.Backends, backendOf(b))
			} else {
				f.Backends = append(f.Backends, Backend{ID: id})
			}
		}
		l.Frontends = append(l.Frontends, f)
	}
	for _, b := range bes {
		if !inSet[b.ID] {
			l.Draining = append(l.Draining, backendOf(b))
		}
	}
	for r, n := range drops {
		l.Drops[r.String()] = n
	}
	return l, nil
}

// printLBList prints the datapath tables as data.
func printLBList(pinDir string, p clusterview.Printer, out io.Writer) error {
	l, err := readLBList(pinDir)
	if err != nil {
		return err
	}
	return p.Print(out, l)
}
