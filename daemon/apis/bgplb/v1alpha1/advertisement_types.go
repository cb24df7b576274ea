package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=bgpadv,categories=bgplb
// +kubebuilder:printcolumn:name="Weighted ECMP",type=boolean,JSONPath=".spec.weightedECMP"
// +kubebuilder:printcolumn:name="Local Pref",type=integer,JSONPath=".spec.localPreference"
// +kubebuilder:printcolumn:name="Communities",type=string,JSONPath=".spec.communities"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"

// BGPAdvertisement says which VIPs are announced from which nodes to which peers, and
// with which path attributes. A VIP is announced only when at least one advertisement
// selects it (by Service and pool), the node and the peer.
type BGPAdvertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec BGPAdvertisementSpec `json:"spec"`
}

// BGPAdvertisementSpec selects Services, pools, nodes and peers and sets path attributes.
// Every absent or empty selector matches everything.
type BGPAdvertisementSpec struct {
	// ServiceSelector selects Services by label.
	// +optional
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`
	// PoolSelector selects the LoadBalancerIPPools whose addresses are announced.
	// +optional
	PoolSelector *metav1.LabelSelector `json:"poolSelector,omitempty"`
	// NodeSelector selects the nodes that announce.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
	// PeerSelector selects, by label, the BGPPeers the routes are sent to (absent or empty:
	// every peer). A peer receives a VIP only when at least one advertisement selecting
	// the VIP also selects the peer, and it gets the attributes of those advertisements
	// only, so two advertisements with different communities and different peerSelectors
	// send different communities to their peers. Changing a selector or a BGPPeer's labels
	// announces and withdraws routes on the affected sessions without resetting any.
	// +optional
	PeerSelector *metav1.LabelSelector `json:"peerSelector,omitempty"`

	// Communities (RFC 1997) attached to the routes: "AS:VALUE" with both parts 0–65535,
	// or a well-known name: no-export, no-advertise, no-export-subconfed (alias local-as),
	// no-peer, blackhole, graceful-shutdown, accept-own, llgr-stale, no-llgr.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Communities []Community `json:"communities,omitempty"`

	// LargeCommunities (RFC 8092) attached to the routes: "GLOBAL:LOCAL1:LOCAL2", each part 0–4294967295.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	LargeCommunities []LargeCommunity `json:"largeCommunities,omitempty"`

	// LocalPreference sets LOCAL_PREF on routes sent to iBGP peers (ignored for eBGP).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	// +optional
	LocalPreference *int64 `json:"localPreference,omitempty"`

	// WeightedECMP attaches the BGP link-bandwidth extended community proportional to the
	// number of eligible local endpoints, so a router with UCMP spreads traffic per pod.
	// +optional
	WeightedECMP bool `json:"weightedECMP,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// BGPAdvertisementList is a list of BGPAdvertisement.
type BGPAdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAdvertisement `json:"items"`
}

// Community is an RFC 1997 community: "AS:VALUE" (both parts 0-65535) or a well-known name.
// +kubebuilder:validation:MaxLength=24
// +kubebuilder:validation:XValidation:rule="self in ['no-export', 'no-advertise', 'no-export-subconfed', 'local-as', 'no-peer', 'blackhole', 'graceful-shutdown', 'accept-own', 'llgr-stale', 'no-llgr'] || (self.matches('^[0-9]{1,5}:[0-9]{1,5}$') && int(self.split(':')[0]) <= 65535 && int(self.split(':')[1]) <= 65535)",message="must be AS:VALUE with both parts 0-65535, or a well-known community name"
type Community string

// LargeCommunity is an RFC 8092 large community: "GLOBAL:LOCAL1:LOCAL2", each part 0-4294967295.
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && self.split(':').all(p, int(p) <= 4294967295)",message="must be GLOBAL:LOCAL1:LOCAL2 with each part 0-4294967295"
type LargeCommunity string
