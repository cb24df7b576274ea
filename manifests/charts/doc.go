// Package charts holds the Helm charts of bgplb (bgplb/) and, behind the `apiserver`
// build tag, their test (make test-chart): helm lint for the shipped values files,
// helm template piped to `kubectl apply --dry-run=server` against a real kube-apiserver
// + etcd (internal/apiservertest), and the rendered DaemonSet compared with the one
// `kubectl kustomize` builds from manifests/base and the k3s/RKE2 overlays.
package charts
