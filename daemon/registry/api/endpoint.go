package api

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Endpoint is one CNI attachment of a pod on this node: the network interface IfName in the
// sandbox of container ContainerID. It is identified by Key.
type Endpoint struct {
	ContainerID  string       `json:"containerID"`
	IfName       string       `json:"ifName"`
	Netns        string       `json:"netns"`
	PodNamespace string       `json:"podNamespace,omitempty"` // from CNI_ARGS K8S_POD_NAMESPACE
	PodName      string       `json:"podName,omitempty"`      // from CNI_ARGS K8S_POD_NAME
	PodUID       string       `json:"podUID,omitempty"`       // from CNI_ARGS K8S_POD_UID
	IPs          []netip.Addr `json:"ips"`
	HostIfName   string       `json:"hostIfName"`  // host-side veth of the pod
	HostIfIndex  int          `json:"hostIfIndex"` // its ifindex in the host network namespace
	LinkPin      string       `json:"linkPin"`     // bpffs pin of the pod program's attachment
	Created      time.Time    `json:"created"`
	// DatapathError says why the datapath cannot serve this endpoint (the pod program could
	// not be attached, or the daemon refused the registration); empty when it can. The CNI
	// plugin records such endpoints instead of failing the pod's setup: they never count
	// as eligible (DatapathReady), and the reason reaches the Service's Announced
	// condition, a Pod event and the bgplb_endpoints_not_datapath_ready metric.
	DatapathError string `json:"datapathError,omitempty"`
}

// DatapathReady reports whether the datapath can serve the endpoint.
func (e Endpoint) DatapathReady() bool { return e.DatapathError == "" }

// Key identifies the attachment: "<containerID>/<ifName>". Container IDs never contain '/'
// and interface names cannot, so the key is unambiguous.
func (e Endpoint) Key() string {
	return e.ContainerID + "/" + e.IfName
}

// ErrInvalidEndpoint is wrapped by Validate's errors.
var ErrInvalidEndpoint = errors.New("invalid endpoint")

// Validate checks the fields that identify an endpoint and its addresses.
func (e Endpoint) Validate() error {
	switch {
	case e.ContainerID == "":
		return fmt.Errorf("%w: empty containerID", ErrInvalidEndpoint)
	case e.IfName == "":
		return fmt.Errorf("%w %s: empty ifName", ErrInvalidEndpoint, e.ContainerID)
	case strings.Contains(e.ContainerID, "/") || strings.Contains(e.IfName, "/"):
		return fmt.Errorf("%w %s: '/' in containerID or ifName", ErrInvalidEndpoint, e.Key())
	}
	for _, ip := range e.IPs {
		if !ip.IsValid() {
			return fmt.Errorf("%w %s: invalid IP", ErrInvalidEndpoint, e.Key())
		}
	}
	return nil
}
