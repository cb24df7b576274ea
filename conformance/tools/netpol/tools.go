//go:build tools

// Package tools pins kube-network-policies (SIG Network's nftables/NFQUEUE
// NetworkPolicy enforcer, the one kind uses), which `make tools` builds into the
// cache directory for the lab's NetworkPolicy test (bgplb-lab up --network-policy).
// It is a module of its own because its Kubernetes client libraries differ from
// those of the Kubernetes server components in ../ and of the bgplb module.
//
// build.sh builds it with one change in a dependency, github.com/google/nftables'
// expr/queue.go (overlay/queue.go.in): the NFQUEUE verdict is emitted as the xtables
// NFQUEUE target through nft_compat rather than nftables' native queue expression,
// which needs CONFIG_NFT_QUEUE, absent from some kernels (the lab host's). The policy
// logic is upstream's, unchanged.
package tools

import (
	_ "sigs.k8s.io/kube-network-policies/cmd"
)
