#!/usr/bin/env bash
# make demo: bring the lab up (when it is not), deploy manifests/examples/demo and show
# pods, EndpointSlices, the router's BGP sessions and routes, and what the client sees.
# The lab stays up afterwards; `make lab-down` removes it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${BGPLB_BIN_DIR:-$root/bin}
k8s=${BGPLB_K8S_BIN_DIR:-$HOME/.cache/bgplb/bin}
dir=${LAB_DIR:-/run/bgplb-lab}
nodes=${NODES:-3}
if [ ! -x "$bin/bgplb-lab" ]; then
	echo "demo: $bin/bgplb-lab is missing: run 'make build'" >&2
	exit 1
fi
cd "$root"
exec "$bin/bgplb-lab" demo --dir "$dir" --nodes "$nodes" --k8s-bin-dir "$k8s" --bin-dir "$bin" \
	--manifests "$root/manifests/examples/demo" --crds "$root/manifests/base/crds"
