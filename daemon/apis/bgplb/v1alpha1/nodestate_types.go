package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Session states reported in BGPPeerState.State (the BGP FSM states of RFC 4271).
const (
	SessionIdle        = "Idle"
	SessionConnect     = "Connect"
	SessionActive      = "Active"
	SessionOpenSent    = "OpenSent"
	SessionOpenConfirm = "OpenConfirm"
	SessionEstablished = "Established"
)

// Bounds of a BGPNodeState: its size grows with the node's sessions, never with the
// number of Services.
const (
	// MaxNodeStateErrors bounds BGPNodeStateStatus.Errors.
	MaxNodeStateErrors = 8
	// MaxNotReadyPods bounds DatapathSummary.NotReadyPods.
	MaxNotReadyPods = 32
)

// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bgpstate,categories=bgplb
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=".status.peers[*].address"
// +kubebuilder:printcolumn:name="States",type=string,JSONPath=".status.peers[*].state"
// +kubebuilder:printcolumn:name="Sent",type=string,JSONPath=".status.peers[*].prefixesSent"
// +kubebuilder:printcolumn:name="IPv4",type=integer,JSONPath=".status.announced.ipv4"
// +kubebuilder:printcolumn:name="IPv6",type=integer,JSONPath=".status.announced.ipv6"
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=".status.version",priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"

// BGPNodeState is the BGP state of one node, named after the node and written only by
// that node's daemon. It holds the node's sessions, counts and errors only, so its size
// does not depend on the number of Services: which nodes announce a Service is the
// Service's bgplb.io/Announced condition, and which peer gets which prefix is answered by
// the node's speaker (`bgplbctl status` on the node).
type BGPNodeState struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Status BGPNodeStateStatus `json:"status,omitempty"`
}

// BGPNodeStateStatus is the node's sessions, counts and errors.
type BGPNodeStateStatus struct {
	// Version of the daemon that wrote the status.
	// +optional
	Version string `json:"version,omitempty"`

	// Peers holds one entry per BGPPeer selecting this node.
	// +listType=map
	// +listMapKey=name
	// +optional
	Peers []BGPPeerState `json:"peers,omitempty"`

	// Announced counts the prefixes this node originates.
	// +optional
	Announced PrefixCounts `json:"announced"`

	// Datapath summarizes the node's eBPF datapath; absent when it is disabled.
	// +optional
	Datapath *DatapathSummary `json:"datapath,omitempty"`

	// Errors are the node's current problems in words (at most 8; the daemon's log has
	// the rest), e.g. a Service whose announcement failed.
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	// +optional
	Errors []string `json:"errors,omitempty"`
}

// PrefixCounts counts prefixes by family.
type PrefixCounts struct {
	// IPv4 prefixes.
	IPv4 int32 `json:"ipv4"`
	// IPv6 prefixes.
	IPv6 int32 `json:"ipv6"`
}

// DatapathSummary is the node's datapath in numbers.
type DatapathSummary struct {
	// Endpoints counts the pod attachments the CNI plugin registered on the node.
	Endpoints int32 `json:"endpoints"`
	// NotReady counts the local endpoints of Services that the node cannot serve because
	// the CNI plugin did not register their pod.
	NotReady int32 `json:"notReady"`
	// NotReadyPods names up to 32 of them as namespace/name.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	NotReadyPods []string `json:"notReadyPods,omitempty"`
	// Reason is why the CNI plugin could not set up the datapath of the first of
	// NotReadyPods that it registered (the attach or registration error), for the
	// Service's Announced condition; empty when none was registered.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Reason string `json:"reason,omitempty"`
}

// BGPPeerState is the state of this node's session with one BGPPeer.
type BGPPeerState struct {
	// Name of the BGPPeer.
	Name string `json:"name"`
	// Address of the peer; empty when the node could not configure the BGPPeer
	// (LastError says why).
	Address string `json:"address"`
	// PeerASN of the session.
	PeerASN int64 `json:"peerASN"`
	// LocalASN of the session.
	LocalASN int64 `json:"localASN"`
	// State is the BGP FSM state: Idle, Connect, Active, OpenSent, OpenConfirm, Established.
	State string `json:"state"`
	// EstablishedSince is when the session last reached Established; absent when it is not.
	// +optional
	EstablishedSince *metav1.Time `json:"establishedSince,omitempty"`
	// LastError explains in words why the session last went down or failed to come up,
	// e.g. "connect: connection refused" or "OPEN: bad peer AS".
	// +optional
	LastError string `json:"lastError,omitempty"`
	// PrefixesSent counts the prefixes announced to the peer.
	// +optional
	PrefixesSent int64 `json:"prefixesSent"`
	// PrefixesReceived counts the prefixes the peer sent (all rejected by import policy).
	// +optional
	PrefixesReceived int64 `json:"prefixesReceived"`
	// BFD is the state of the BFD session with the peer; absent when the BGPPeer has no bfd.
	// +optional
	BFD *BFDState `json:"bfd,omitempty"`
}

// BFDState is a BFD session in numbers.
type BFDState struct {
	// State is Down, Init, Up or AdminDown.
	State string `json:"state"`
	// Diag says why the session last left Up, e.g. ControlDetectionTimeExpired.
	// +optional
	Diag string `json:"diag,omitempty"`
	// Ups counts transitions to Up; Downs counts transitions from Up. (Packet counts
	// change several times a second and are metrics, not status.)
	Ups   int64 `json:"ups"`
	Downs int64 `json:"downs"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// BGPNodeStateList is a list of BGPNodeState.
type BGPNodeStateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPNodeState `json:"items"`
}
