#!/bin/sh
# bgplbd with exactly the capabilities the DaemonSet grants (manifests/base/daemonset.yaml,
# docs/security.md): root, every other capability dropped (inheritable, ambient, bounding).
# Use it through a bin dir whose bgplbd is a copy of this script (it runs
# ../../bin/bgplbd from there, or $BGPLB_BGPLBD), e.g.
#   mkdir -p _output/capbin && ln -sf "$PWD"/bin/* _output/capbin/ && rm _output/capbin/bgplbd
#   cp hack/bgplbd-caps.sh _output/capbin/bgplbd
#   BGPLB_BIN_DIR=$PWD/_output/capbin go test -tags lab -run TestConformance ./conformance/
set -eu
bgplbd=${BGPLB_BGPLBD:-$(dirname "$(readlink -f "$0")")/../../bin/bgplbd}
caps=-all,+bpf,+perfmon,+net_admin
exec setpriv --inh-caps="$caps" --ambient-caps="$caps" --bounding-set="$caps" -- "$bgplbd" "$@"
