#!/bin/sh
# build.sh OUT builds kube-network-policies (the version in go.mod) into OUT, with
# github.com/google/nftables replaced by a temporary copy whose expr/queue.go is
# overlay/queue.go.in (see there; go build -overlay may not replace module-cache files).
set -eu
cd "$(dirname "$0")"
out=$1
go=${GO:-go}
# go list -m reports no Dir for a module not yet in the module cache (a fresh machine).
$go mod download github.com/google/nftables
nft=$($go list -m -f '{{.Dir}}' github.com/google/nftables)
[ -n "$nft" ] || { echo "build.sh: github.com/google/nftables is not in the module cache" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
cp -R "$nft" "$tmp/nftables"
chmod -R u+w "$tmp/nftables"
cp overlay/queue.go.in "$tmp/nftables/expr/queue.go"
cp go.mod go.sum "$tmp/"
$go mod edit -modfile="$tmp/go.mod" -replace "github.com/google/nftables=$tmp/nftables"
$go build -trimpath -modfile="$tmp/go.mod" -o "$out" sigs.k8s.io/kube-network-policies/cmd
