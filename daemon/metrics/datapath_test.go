package metrics

import (
	"strings"
	"testing"

	"k8s.io/component-base/metrics/testutil"
)

func TestDatapathCollector(t *testing.T) {
	c := &datapathCollector{src: func() (DatapathSample, error) {
		return DatapathSample{
			Frontends: []FrontendSample{{Service: "web/frontend", VIP: "203.0.113.1", Port: "80", Protocol: "TCP", Packets: 7, Bytes: 900}},
			Drops:     map[string]uint64{"noLocalBackend": 3},
		}, nil
	}}
	want := `
# HELP bgplb_datapath_drops_total [ALPHA] Packets to a VIP the eBPF datapath dropped, by reason (noLocalBackend, sourceRange, noBackend, fragment, malformed, conntrackFull, noService).
# TYPE bgplb_datapath_drops_total counter
bgplb_datapath_drops_total{reason="noLocalBackend"} 3
# HELP bgplb_datapath_service_bytes_total [ALPHA] Bytes the eBPF datapath delivered to local backends of the Service's frontend (VIP, port, protocol), request direction.
# TYPE bgplb_datapath_service_bytes_total counter
bgplb_datapath_service_bytes_total{port="80",protocol="TCP",service="web/frontend",vip="203.0.113.1"} 900
# HELP bgplb_datapath_service_packets_total [ALPHA] Packets the eBPF datapath delivered to local backends of the Service's frontend (VIP, port, protocol), request direction.
# TYPE bgplb_datapath_service_packets_total counter
bgplb_datapath_service_packets_total{port="80",protocol="TCP",service="web/frontend",vip="203.0.113.1"} 7
`
	if err := testutil.CustomCollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if err := testutil.CustomCollectAndCompare(&datapathCollector{}, strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
}
