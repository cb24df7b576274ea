#!/usr/bin/env bash
# Regenerates everything derived from the API types in daemon/apis:
#   deepcopy (zz_generated.deepcopy.go), the typed clientset, listers and informers under
#   daemon/client, and the CRD manifests under manifests/base/crds (copied into the Helm
#   chart's manifests/charts/bgplb/crds).
# Tools come from the `tool` directives of go.mod (k8s.io/code-generator, controller-tools),
# so the versions are pinned by go.mod. Run from anywhere; `go generate ./...` calls it.
# Running it twice leaves no diff.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

MODULE="github.com/bgplb/bgplb"
APIS_PKG="${MODULE}/daemon/apis"
GROUP_VERSIONS=("bgplb/v1alpha1")
CLIENT_DIR="daemon/client"
CLIENT_PKG="${MODULE}/${CLIENT_DIR}"
BOILERPLATE="${ROOT}/hack/boilerplate.go.txt"

input_pkgs=()
for gv in "${GROUP_VERSIONS[@]}"; do
	input_pkgs+=("${APIS_PKG}/${gv}")
done

echo "deepcopy-gen"
go tool deepcopy-gen \
	--go-header-file "${BOILERPLATE}" \
	--output-file zz_generated.deepcopy.go \
	"${input_pkgs[@]}"

# Generated client code is replaced wholesale so a removed kind leaves no stale file.
rm -rf "${CLIENT_DIR}/clientset" "${CLIENT_DIR}/listers" "${CLIENT_DIR}/informers"

echo "client-gen"
go tool client-gen \
	--go-header-file "${BOILERPLATE}" \
	--clientset-name versioned \
	--input-base "${APIS_PKG}" \
	--input "$(IFS=,; echo "${GROUP_VERSIONS[*]}")" \
	--output-dir "${CLIENT_DIR}/clientset" \
	--output-pkg "${CLIENT_PKG}/clientset"

echo "lister-gen"
go tool lister-gen \
	--go-header-file "${BOILERPLATE}" \
	--output-dir "${CLIENT_DIR}/listers" \
	--output-pkg "${CLIENT_PKG}/listers" \
	"${input_pkgs[@]}"

echo "informer-gen"
go tool informer-gen \
	--go-header-file "${BOILERPLATE}" \
	--versioned-clientset-package "${CLIENT_PKG}/clientset/versioned" \
	--listers-package "${CLIENT_PKG}/listers" \
	--output-dir "${CLIENT_DIR}/informers" \
	--output-pkg "${CLIENT_PKG}/informers" \
	"${input_pkgs[@]}"

echo "controller-gen crd"
rm -f manifests/base/crds/bgplb.io_*.yaml
go tool controller-gen crd paths=./daemon/apis/... output:crd:dir=manifests/base/crds

# The Helm chart ships the same CRDs in its crds/ directory (Helm installs them before
# the templates and never templates them); manifests/crds_test.go checks they are
# byte-identical.
echo "chart crds"
rm -f manifests/charts/bgplb/crds/bgplb.io_*.yaml
cp manifests/base/crds/bgplb.io_*.yaml manifests/charts/bgplb/crds/
