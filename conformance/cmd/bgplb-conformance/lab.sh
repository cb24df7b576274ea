#!/usr/bin/env bash
# make conformance: bring up a fresh lab, give it the suite's base configuration and run
# bgplb-conformance against it as against any cluster (kubeconfig; router CLI, clients
# and faults through command prefixes), then tear the lab down. Extra arguments go to
# bgplb-conformance (e.g. --profiles LB-IPAM, -test.run 'TestConformance/DatapathLocalTCP').
#
# Environment: BIN_DIR (bgplbd, the CNI plugin, podserver, bgplbctl: the image's),
# CMD_DIR (bgplb-lab, bgplb-conformance), K8S_BIN_DIR, LAB_DIR, REPORT; optional
# BGPLB_LAB_PREFIX, BGPLB_LAB_ROUTER (frr|bird), BGPLB_DATAPATH_ATTACH, KEEP_LAB=1,
# BGPLB_LAB_IPV6=1|0 (a dual-stack lab: its one BGPPeer carries both families, and the IPv6
# and DualStack tests run; the default with FRR on lab-kubelet nodes, ~25 s more than
# single stack).
set -euo pipefail
: "${BIN_DIR:?}" "${CMD_DIR:?}" "${K8S_BIN_DIR:?}" "${LAB_DIR:?}" "${REPORT:?}"
prefix=${BGPLB_LAB_PREFIX:-bgplb}
router=${BGPLB_LAB_ROUTER:-frr}
lab=("$CMD_DIR/bgplb-lab" --dir "$LAB_DIR")
stack=() conf_stack=()
ipv6=${BGPLB_LAB_IPV6:-}
if [[ -z "$ipv6" ]]; then
	ipv6=0
	[[ "$router" == frr && "${BGPLB_LAB_RUNTIME:-lab}" == lab ]] && ipv6=1
fi
if [[ "$ipv6" == 1 ]]; then
	stack=(--ipv6) conf_stack=(--ipv6)
fi

if [[ "${KEEP_LAB:-}" != 1 ]]; then
	trap '"${lab[@]}" down >/dev/null || echo "lab.sh: tearing down $LAB_DIR failed" >&2' EXIT
fi
"${lab[@]}" up --recreate --nodes 3 --export-pod-cidr --router "$router" "${stack[@]}" \
	--bin-dir "$BIN_DIR" --k8s-bin-dir "$K8S_BIN_DIR"
"${lab[@]}" suite-base

originate=() # FRR is configured through vtysh; BIRD through a file bird.conf includes
case "$router" in
frr) cli="vtysh --vty_socket $LAB_DIR/frr" ;;
bird) cli="birdc -s $LAB_DIR/bird/bird.ctl" originate=(--router-originate-file "$LAB_DIR/bird/originate.conf") ;;
*) echo "lab.sh: unknown router $router" >&2; exit 2 ;;
esac
setup="bgplb-lab, 3 nodes, kube-proxy nftables, pod CIDRs over BGP"
[[ -n "${BGPLB_DATAPATH_ATTACH:-}" ]] && setup+=", datapath attach $BGPLB_DATAPATH_ATTACH"
[[ ${#stack[@]} -gt 0 ]] && setup+=", dual stack (one BGPPeer carrying IPv4 and IPv6)"
podimage=bgplb.io/podserver:lab # the lab kubelet runs the pod server whatever the image
if [[ "${BGPLB_LAB_RUNTIME:-lab}" == containerd ]]; then
	# Real nodes run the podserver image of `make image`, imported into every node.
	podimage=$(jq -r '.manifests[0].annotations["io.containerd.image.name"]' "${BGPLB_IMAGE_DIR:?}/podserver/index.json")
	setup+=", containerd + kubelet nodes, bgplb installed from manifests/base and its image"
fi

profiles=()
if [[ "${BGPLB_LAB_RUNTIME:-lab}" != containerd && " $* " != *" --profiles"* ]]; then
	# Lab-kubelet nodes have no container runtime and no node adapter: the CNI-CHAINED
	# profile (the runtime's ADD/CHECK/DEL seen on the node) runs on real nodes
	# (RUNTIME=containerd); here it would only be reported partial.
	profiles=(--profiles LB-IPAM,LB-BGP,LB-DATAPATH)
fi

mkdir -p "$(dirname "$REPORT")"
"$CMD_DIR/bgplb-conformance" \
	--kubeconfig "$LAB_DIR/kubeconfig" \
	--router "$router" --router-exec "ip netns exec $prefix-router" --router-cli "$cli" "${originate[@]}" \
	--client-exec "ip netns exec $prefix-client" --client-address 198.51.100.10 \
	--subnet-client-exec "ip netns exec $prefix-fabclient" --subnet-client-address 198.18.0.250 \
	--faults-exec "$CMD_DIR/bgplb-lab fault --dir $LAB_DIR" \
	--podserver-image "$podimage" --peer lab-router --vip-range 203.0.113.0/24 \
	--implementation-version "$("$BIN_DIR/bgplbd" --version 2>/dev/null || echo unknown)" \
	--kubernetes-version "v1.36.3 (lab)" --setup "$setup" \
	--report "$REPORT" "${conf_stack[@]}" "${profiles[@]}" "$@"
