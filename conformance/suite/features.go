package suite

// Feature is one capability a test needs. An implementation declares the features it
// supports; a test whose features are not all supported is skipped (and reported).
type Feature string

// Features of the LB-IPAM profile.
const (
	FeatureIPv4Pool       Feature = "IPv4Pool"
	FeatureSpecificIP     Feature = "SpecificIP"
	FeatureIPRelease      Feature = "IPRelease"
	FeatureIPv6           Feature = "IPv6"
	FeatureDualStack      Feature = "DualStack"
	FeatureSharedIP       Feature = "SharedIP"
	FeaturePoolSelectors  Feature = "PoolSelectors"
	FeatureClassSelection Feature = "ClassSelection"
)

// Features of the LB-BGP profile.
const (
	FeatureETPCluster       Feature = "ETPCluster"
	FeatureETPLocal         Feature = "ETPLocal"
	FeatureWithdrawNoEP     Feature = "WithdrawWithoutEndpoints"
	FeatureNoInboundRoutes  Feature = "NoInboundRoutes"
	FeatureNoSessionFlaps   Feature = "NoSessionFlaps"
	FeatureGracefulRestart  Feature = "GracefulRestart"
	FeatureWeightedECMP     Feature = "WeightedECMP"
	FeatureCommunities      Feature = "CommunitiesLocalPref"
	FeaturePeerSelector     Feature = "PeerSelector"
	FeatureNodeSelector     Feature = "NodeSelector"
	FeatureDaemonRestart    Feature = "DaemonRestart"
	FeaturePodCIDRExport    Feature = "PodCIDRExport"
	FeatureEndpointReadines Feature = "EndpointReadiness"
	// FeatureBFD: BGPPeer spec.bfd runs BFD with the router, which withdraws a lost node
	// within the detection time.
	FeatureBFD Feature = "BFD"
)

// Features of the LB-DATAPATH profile.
const (
	FeatureTCPViaVIP        Feature = "TCPViaVIP"
	FeatureSourcePreserve   Feature = "SourcePreservation"
	FeatureZeroEndpoints    Feature = "ZeroEndpointsUnreachable"
	FeatureUDP              Feature = "UDP"
	FeaturePingVIP          Feature = "PingVIP"
	FeatureSymmetricReturn  Feature = "SymmetricReturn"
	FeatureFlowsSurviveRest Feature = "FlowsSurviveRestart"
)

// Features of the CNI-CHAINED profile: the chained plugin as the node's runtime runs
// it, observed on the node (suite.NodeExec).
const (
	FeatureCNIAddDel   Feature = "CNIAddDel"
	FeatureCNICheck    Feature = "CNICheck"
	FeatureCNIBadInput Feature = "CNIBadInput"
)

// Profile groups features; Core features must all pass for a profile to pass.
type Profile struct {
	Name     string
	Core     []Feature
	Extended []Feature
}

// Profiles of the suite (docs/conformance.md).
var Profiles = []Profile{
	{Name: "LB-IPAM",
		Core:     []Feature{FeatureIPv4Pool, FeatureSpecificIP, FeatureIPRelease, FeatureClassSelection},
		Extended: []Feature{FeatureIPv6, FeatureDualStack, FeatureSharedIP, FeaturePoolSelectors}},
	{Name: "LB-BGP",
		Core: []Feature{FeatureClassSelection, FeatureETPCluster, FeatureETPLocal, FeatureWithdrawNoEP,
			FeatureNoInboundRoutes, FeatureNoSessionFlaps, FeatureEndpointReadines, FeatureDaemonRestart},
		Extended: []Feature{FeatureGracefulRestart, FeatureWeightedECMP, FeatureCommunities,
			FeaturePeerSelector, FeatureNodeSelector, FeaturePodCIDRExport, FeatureBFD}},
	{Name: "LB-DATAPATH",
		Core:     []Feature{FeatureTCPViaVIP, FeatureSourcePreserve, FeatureZeroEndpoints},
		Extended: []Feature{FeatureUDP, FeaturePingVIP, FeatureSymmetricReturn, FeatureFlowsSurviveRest}},
	{Name: "CNI-CHAINED",
		Core: []Feature{FeatureCNIAddDel, FeatureCNICheck, FeatureCNIBadInput}},
}

// AllFeatures returns every feature of every profile.
func AllFeatures() []Feature {
	var out []Feature
	seen := map[Feature]bool{}
	for _, p := range Profiles {
		for _, f := range append(append([]Feature{}, p.Core...), p.Extended...) {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return out
}
