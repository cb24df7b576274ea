package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of a BGPPeer (aggregated by the leader from the nodes' BGPNodeState).
const (
	// PeerConditionEstablished is True when every selected node has the session Established;
	// the message counts nodes.
	PeerConditionEstablished = "Established"
	// PeerConditionInvalid is True when the peer references something that does not work
	// (for example a missing password Secret); the reason names the field.
	PeerConditionInvalid = "Invalid"
)

// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bgppeer,categories=bgplb
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=".spec.peerAddress"
// +kubebuilder:printcolumn:name="Port",type=integer,JSONPath=".spec.peerPort",priority=1
// +kubebuilder:printcolumn:name="Peer ASN",type=integer,JSONPath=".spec.peerASN"
// +kubebuilder:printcolumn:name="Local ASN",type=integer,JSONPath=".spec.localASN"
// +kubebuilder:printcolumn:name="Established",type=string,JSONPath=".status.conditions[?(@.type==\"Established\")].status"
// +kubebuilder:printcolumn:name="Sessions",type=string,JSONPath=".status.conditions[?(@.type==\"Established\")].message",priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"

// BGPPeer is a BGP neighbour that the daemons of the selected nodes peer with.
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec BGPPeerSpec `json:"spec"`
	// +optional
	Status BGPPeerStatus `json:"status,omitempty"`
}

// BGPPeerSpec describes one BGP session per selected node.
// +kubebuilder:validation:XValidation:rule="!(has(self.ttlSecurityHops) && has(self.ebgpMultihopTTL))",message="ttlSecurityHops and ebgpMultihopTTL are mutually exclusive"
type BGPPeerSpec struct {
	// NodeSelector selects the nodes that open a session to this peer. Empty or absent
	// selects every node.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`

	// LocalASN is the AS number the nodes use on this session (4-byte ASNs allowed).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +required
	LocalASN int64 `json:"localASN"`

	// PeerASN is the AS number of the peer. Equal to LocalASN makes an iBGP session.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +required
	PeerASN int64 `json:"peerASN"`

	// PeerAddress is the peer's IPv4 or IPv6 address.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be a valid IP address"
	// +required
	PeerAddress string `json:"peerAddress"`

	// AddressFamilies are the address families this one session carries (multiprotocol
	// BGP, RFC 4760): the VIPs (and pod CIDRs) of every listed family are sent over it.
	// Absent: only the family of peerAddress, one session per family as before. List both,
	// [IPv4, IPv6], for one session per router in a dual-stack cluster (the router must
	// activate the other family on the neighbour too; see bgplbctl router-config).
	// Routes of the family that is not peerAddress's get the node's own address of that
	// family as next hop: its first InternalIP of the family (else ExternalIP) in the
	// Node's status. IPv6 over an IPv4 session needs one; a node without an IPv6 address
	// reports the peer as not configured. IPv4 over an IPv6 session uses the node's IPv4
	// address when it has one and otherwise the session's IPv6 address as an RFC 8950
	// extended next hop (the router must accept it).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=2
	// +listType=set
	// +optional
	AddressFamilies []AddressFamily `json:"addressFamilies,omitempty"`

	// PeerPort is the peer's TCP port. Defaults to 179.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=179
	// +optional
	PeerPort *int32 `json:"peerPort,omitempty"`

	// SourceAddress is the local address the session is opened from; absent lets the
	// kernel choose (the node's address towards the peer). It is also the next hop of
	// the announced routes.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be a valid IP address"
	// +optional
	SourceAddress string `json:"sourceAddress,omitempty"`

	// EBGPMultihopTTL allows an eBGP peer that is not directly connected, this many hops away.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
	// +optional
	EBGPMultihopTTL *int32 `json:"ebgpMultihopTTL,omitempty"`

	// TTLSecurityHops turns on GTSM (RFC 5082, "TTL security"): the nodes send with TTL
	// 255 and accept only packets of the session whose TTL is at least 256 minus this
	// many hops, so a spoofed packet from farther away than the peer is dropped by the
	// kernel. 1 is a directly connected peer. The router must do the same (bgplbctl
	// router-config --ttl-security-hops). Cannot be combined with ebgpMultihopTTL.
	// Absent: off.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=254
	// +optional
	TTLSecurityHops *int32 `json:"ttlSecurityHops,omitempty"`

	// MaxPrefixes is how many prefixes the peer may send before the node resets the
	// session (BGP Cease, "maximum number of prefixes reached") and reports it in its
	// BGPNodeState. Nodes import nothing, so a router should send none: the limit bounds
	// the memory a misconfigured router (e.g. one leaking a full table) can take.
	// Defaults to 100.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +kubebuilder:default=100
	// +optional
	MaxPrefixes *int32 `json:"maxPrefixes,omitempty"`

	// Timers of the session; absent fields take the defaults documented on each field.
	// +optional
	Timers *BGPTimers `json:"timers,omitempty"`

	// GracefulRestart (RFC 4724) lets the peer keep our routes while the daemon restarts
	// (an upgrade, a crash): on by default with a restart time of 120 s; turn it off
	// with `enabled: false`.
	// +optional
	GracefulRestart *GracefulRestart `json:"gracefulRestart,omitempty"`

	// BFD runs Bidirectional Forwarding Detection (RFC 5880/5881, single hop) with the
	// peer: when it detects the path is down (after minRxMs × multiplier without a
	// packet) the node shuts the BGP session down at once, so a router running BFD too
	// drops the node's routes in under a second instead of the hold time. Absent: no BFD.
	// +optional
	BFD *BFD `json:"bfd,omitempty"`

	// PasswordSecretRef names a key of a Secret in the daemon's namespace that holds the
	// TCP MD5 password of the session.
	// +optional
	PasswordSecretRef *SecretKeyRef `json:"passwordSecretRef,omitempty"`
}

// AddressFamily is an address family a BGP session carries (unicast).
// +kubebuilder:validation:Enum=IPv4;IPv6
type AddressFamily string

// Address families of BGPPeerSpec.AddressFamilies.
const (
	AddressFamilyIPv4 AddressFamily = "IPv4"
	AddressFamilyIPv6 AddressFamily = "IPv6"
)

// BGPTimers are the session timers in seconds.
// +kubebuilder:validation:XValidation:rule="!has(self.keepaliveTimeSeconds) || ((has(self.holdTimeSeconds) ? self.holdTimeSeconds : 90) == 0 ? self.keepaliveTimeSeconds == 0 : self.keepaliveTimeSeconds < (has(self.holdTimeSeconds) ? self.holdTimeSeconds : 90))",message="keepaliveTimeSeconds must be less than holdTimeSeconds (and 0 when holdTimeSeconds is 0)",fieldPath=".keepaliveTimeSeconds"
type BGPTimers struct {
	// ConnectRetrySeconds is the time between connection attempts. Defaults to 120.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=120
	// +optional
	ConnectRetrySeconds *int32 `json:"connectRetrySeconds,omitempty"`

	// HoldTimeSeconds is the proposed hold time: 0 (no keepalives) or 3–65535. Defaults to 90.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:validation:XValidation:rule="self == 0 || self >= 3",message="must be 0 or at least 3"
	// +kubebuilder:default=90
	// +optional
	HoldTimeSeconds *int32 `json:"holdTimeSeconds,omitempty"`

	// KeepaliveTimeSeconds is the keepalive interval, below HoldTimeSeconds. Absent means
	// HoldTimeSeconds/3 (0 when HoldTimeSeconds is 0).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=21845
	// +optional
	KeepaliveTimeSeconds *int32 `json:"keepaliveTimeSeconds,omitempty"`
}

// GracefulRestart configures the graceful restart capability. An absent
// gracefulRestart means enabled with the defaults.
type GracefulRestart struct {
	// Enabled advertises the graceful restart capability. Defaults to true.
	// +kubebuilder:default=true
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// RestartTimeSeconds is how long the peer keeps our routes after the session drops.
	// Defaults to 120.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4095
	// +kubebuilder:default=120
	// +optional
	RestartTimeSeconds *int32 `json:"restartTimeSeconds,omitempty"`
}

// BFD are the BFD session's timers (RFC 5880 section 6.8.2, 6.8.4).
type BFD struct {
	// MinRxMs is the fastest rate in milliseconds at which the node accepts BFD
	// packets (Required Min RX Interval). Defaults to 300.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +kubebuilder:default=300
	// +optional
	MinRxMs *int32 `json:"minRxMs,omitempty"`

	// MinTxMs is how often in milliseconds the node would like to send (Desired Min TX
	// Interval); the peer's minRx may slow it down. Defaults to 300.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	// +kubebuilder:default=300
	// +optional
	MinTxMs *int32 `json:"minTxMs,omitempty"`

	// Multiplier is how many packets may be missed before the session is declared
	// down (Detect Mult). Defaults to 3.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=255
	// +kubebuilder:default=3
	// +optional
	Multiplier *int32 `json:"multiplier,omitempty"`
}

// SecretKeyRef names one key of a Secret in the daemon's namespace.
type SecretKeyRef struct {
	// Name of the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// Key inside the Secret's data.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Key string `json:"key"`
}

// BGPPeerStatus is written by the LB-IPAM leader from the nodes' BGPNodeState.
type BGPPeerStatus struct {
	// Conditions: Established, Invalid.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// BGPPeerList is a list of BGPPeer.
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}
