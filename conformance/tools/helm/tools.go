//go:build tools

// Package tools pins helm, which `make tools` builds into the cache directory for
// `make test-chart` (helm lint / helm template of manifests/charts/bgplb). It is a
// module of its own so helm's Kubernetes and OCI dependencies do not constrain the
// versions of the bgplb module or of the Kubernetes server components in ../.
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
