//go:build lab

package lab_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/types/known/anypb"
)

// helperEnv selects a helper role when the test binary is re-executed inside a lab
// namespace (see TestMain).
const helperEnv = "BGPLB_LAB_TEST_HELPER"

// runSpeakerHelper is a GoBGP speaker (AS HELPER_ASN) peering with the lab router at
// HELPER_PEER that announces the host route HELPER_PREFIX (IPv4 or IPv6) with next hop
// HELPER_NEXTHOP and router ID HELPER_ROUTER_ID. It reads commands from stdin:
// "withdraw" deletes the path; EOF stops the speaker. It prints "announced" and
// "withdrawn" on stdout after each step.
func runSpeakerHelper() int {
	ctx := context.Background()
	prefix, nexthop := os.Getenv("HELPER_PREFIX"), os.Getenv("HELPER_NEXTHOP")
	asn, err := strconv.ParseUint(os.Getenv("HELPER_ASN"), 10, 32)
	if err != nil {
		fmt.Fprintf(os.Stderr, "HELPER_ASN: %v\n", err)
		return 1
	}
	s := server.NewBgpServer()
	go s.Serve()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: uint32(asn), RouterId: os.Getenv("HELPER_ROUTER_ID"), ListenPort: -1,
	}}); err != nil {
		fmt.Fprintf(os.Stderr, "start bgp: %v\n", err)
		return 1
	}
	peer := os.Getenv("HELPER_PEER")
	family := &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	plen := uint32(32)
	if strings.Contains(prefix, ":") {
		family = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
		plen = 128
	}
	if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:     &api.PeerConf{NeighborAddress: peer, PeerAsn: 64512},
		Timers:   &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1, HoldTime: 9, KeepaliveInterval: 3}},
		AfiSafis: []*api.AfiSafi{{Config: &api.AfiSafiConfig{Family: family, Enabled: true}}},
	}}); err != nil {
		fmt.Fprintf(os.Stderr, "add peer: %v\n", err)
		return 1
	}
	nlri, _ := anypb.New(&api.IPAddressPrefix{Prefix: prefix, PrefixLen: plen})
	origin, _ := anypb.New(&api.OriginAttribute{Origin: 0})
	var nh *anypb.Any
	if plen == 32 {
		nh, _ = anypb.New(&api.NextHopAttribute{NextHop: nexthop})
	} else {
		nh, _ = anypb.New(&api.MpReachNLRIAttribute{Family: family, NextHops: []string{nexthop}, Nlris: []*anypb.Any{nlri}})
	}
	path := &api.Path{Family: family, Nlri: nlri, Pattrs: []*anypb.Any{origin, nh}}
	if _, err := s.AddPath(ctx, &api.AddPathRequest{Path: path}); err != nil {
		fmt.Fprintf(os.Stderr, "add path: %v\n", err)
		return 1
	}
	fmt.Println("announced")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "withdraw" {
			if err := s.DeletePath(ctx, &api.DeletePathRequest{Path: path}); err != nil {
				fmt.Fprintf(os.Stderr, "delete path: %v\n", err)
				return 1
			}
			fmt.Println("withdrawn")
		}
	}
	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = s.StopBgp(stopCtx, &api.StopBgpRequest{}) // exiting anyway
	return 0
}
