// Package v1alpha1 holds the bgplb.io/v1alpha1 API: the cluster-scoped kinds
// LoadBalancerIPPool, BGPPeer, BGPAdvertisement and BGPNodeState, plus the
// Service annotations and condition types bgplb reads and writes.
//
// Who uses it: the LB-IPAM allocator (daemon/ipam) reads pools, the node daemon
// reads peers and advertisements and writes its own BGPNodeState, and bgplbctl
// reads all of them. The typed clientset, listers and informers in daemon/client
// and the CRD manifests in manifests/base/crds are generated from these types by
// hack/update-codegen.sh (run it through `go generate ./...`); never edit them.
//
// Validation: everything a single object can check (address syntax, ranges,
// ASN bounds, timer relations, community syntax) is in OpenAPI + CEL markers, so
// the API server rejects it at create/update time. What needs other objects
// (overlapping pools, references to Secrets) is reported in status conditions.
//
// +k8s:deepcopy-gen=package
// +groupName=bgplb.io
package v1alpha1

//go:generate bash ../../../../hack/update-codegen.sh
