// Package config loads the node daemon's configuration file, a versioned
// DaemonConfiguration (apiVersion bgplb.io/v1alpha1; a plain Go struct decoded strictly
// with sigs.k8s.io/yaml, not a CRD), and validates all of it into an immutable Config in
// one function (Load / Parse), like MetalLB's config.For. Every error names the field,
// e.g. `plugins.filter.enabled[2].name: unknown plugin "Foo"`; all errors are reported
// at once.
//
// Example (every field optional; these are the defaults):
//
//	apiVersion: bgplb.io/v1alpha1
//	kind: DaemonConfiguration
//	class: bgplb.io/bgp          # spec.loadBalancerClass we handle
//	defaultClass: false          # also claim LoadBalancer Services without a class
//	bgp:
//	  asn: 64513                 # local ASN when a BGPPeer names none
//	  routerID: ""               # IPv4, the same on every node; empty: per node (Node annotation bgplb.io/router-id, else its IPv4 InternalIP, else the low 32 bits of its IPv6 one)
//	  listenPort: -1             # -1: never accept sessions, only initiate them
//	paths:
//	  socket: /run/bgplb/bgplbd.sock
//	  recordsDir: /var/lib/bgplb/endpoints
//	  bpfPinDir: /sys/fs/bpf/bgplb
//	plugins:                     # merged into the defaults like kube-scheduler profiles
//	  preFilter: {enabled: [], disabled: []}   # disabled: [{name: DatapathReady}] = kube-proxy datapath mode
//	  filter:    {enabled: [], disabled: []}
//	  score:     {enabled: [{name: EndpointWeight, weight: 1}]}
//	pluginConfig: []             # [{name: X, args: {...}}]; ServiceClass takes class/defaultClass above
//
// Callers: daemon/app (flag --config) builds the eligibility Runner from
// Config.EligibilityProfile() and the BGP speaker's Global from Config.BGP.
package config
