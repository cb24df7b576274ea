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

// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bgpstate,categories=bgplb
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=".status.peers[*].address"
// +kubebuilder:printcolumn:name="States",type=string,JSONPath=".status.peers[*].state"
// +kubebuilder:printcolumn:name="Prefixes",type=string,JSONPath=".status.prefixes[*].prefix",priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"

// BGPNodeState is the BGP state of one node, named after the node and written only by
// that node's daemon.
type BGPNodeState struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Status BGPNodeStateStatus `json:"status,omitempty"`
}

// BGPNodeStateStatus lists the node's sessions and what it announces.
type BGPNodeStateStatus struct {
	// Peers holds one entry per BGPPeer selecting this node.
	// +listType=map
	// +listMapKey=name
	// +optional
	Peers []BGPPeerState `json:"peers,omitempty"`

	// Prefixes holds one entry per announced prefix.
	// +listType=map
	// +listMapKey=prefix
	// +optional
	Prefixes []AnnouncedPrefix `json:"prefixes,omitempty"`
}

// BGPPeerState is the state of this node's session with one BGPPeer.
type BGPPeerState struct {
	// Name of the BGPPeer.
	Name string `json:"name"`
	// Address of the peer.
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
}

// AnnouncedPrefix is one prefix this node announces.
type AnnouncedPrefix struct {
	// Prefix is the announced route, e.g. 203.0.113.10/32.
	Prefix string `json:"prefix"`
	// Services behind the prefix as namespace/name (more than one when the VIP is shared).
	// +listType=set
	// +optional
	Services []string `json:"services,omitempty"`
	// Peers (BGPPeer names) the prefix is announced to.
	// +listType=set
	// +optional
	Peers []string `json:"peers,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// BGPNodeStateList is a list of BGPNodeState.
type BGPNodeStateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPNodeState `json:"items"`
}
