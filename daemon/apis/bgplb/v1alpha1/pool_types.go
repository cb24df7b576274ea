package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of a LoadBalancerIPPool.
const (
	// PoolConditionReady is True when the pool is valid, not conflicting and not disabled:
	// the allocator may hand out its addresses.
	PoolConditionReady = "Ready"
	// PoolConditionConflicting is True when a block overlaps a block of an older pool (by
	// creationTimestamp, then name); the whole pool is then not used.
	PoolConditionConflicting = "Conflicting"
	// PoolConditionInvalid is True when the pool fails a check that CEL cannot express
	// (for example two of its own blocks overlap); the reason names the field.
	PoolConditionInvalid = "Invalid"
)

// Reasons of the pool conditions (Ready, Conflicting, Invalid).
const (
	PoolReasonReady       = "Ready"
	PoolReasonDisabled    = "Disabled"
	PoolReasonNoConflict  = "NoConflict"
	PoolReasonOverlaps    = "OverlapsPool"
	PoolReasonValid       = "Valid"
	PoolReasonInvalid     = "InvalidSpec"
	PoolReasonConflicting = "Conflicting"
)

// +genclient
// +genclient:nonNamespaced
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=lbpool;lbpools,categories=bgplb
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="CIDRs",type=string,JSONPath=".spec.blocks[*].cidr"
// +kubebuilder:printcolumn:name="Disabled",type=boolean,JSONPath=".spec.disabled"
// +kubebuilder:printcolumn:name="V4 Used",type=integer,JSONPath=".status.ipv4.used"
// +kubebuilder:printcolumn:name="V4 Free",type=integer,JSONPath=".status.ipv4.free"
// +kubebuilder:printcolumn:name="V6 Used",type=integer,JSONPath=".status.ipv6.used"
// +kubebuilder:printcolumn:name="V6 Free",type=integer,JSONPath=".status.ipv6.free"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Conflicting",type=string,JSONPath=".status.conditions[?(@.type==\"Conflicting\")].status"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"

// LoadBalancerIPPool is a set of addresses the LB-IPAM allocator hands out to
// LoadBalancer Services of the bgplb class.
type LoadBalancerIPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec LoadBalancerIPPoolSpec `json:"spec"`
	// +optional
	Status LoadBalancerIPPoolStatus `json:"status,omitempty"`
}

// LoadBalancerIPPoolSpec describes which addresses a pool holds and which Services may use them.
type LoadBalancerIPPoolSpec struct {
	// Blocks are the address ranges of the pool. Blocks of one pool must not overlap each
	// other (the pool is then Invalid) nor blocks of an older pool (the newer pool is then
	// Conflicting); in both cases no address is handed out from the pool.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	Blocks []IPBlock `json:"blocks"`

	// ServiceSelector restricts the pool to Services whose labels match. Empty or absent
	// matches every Service.
	// +optional
	ServiceSelector *metav1.LabelSelector `json:"serviceSelector,omitempty"`

	// NamespaceSelector restricts the pool to Services in namespaces whose labels match.
	// Empty or absent matches every namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// AvoidBuggyIPs skips IPv4 addresses ending in .0 or .255, which some old client
	// stacks mistake for network or broadcast addresses.
	// +optional
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// AutoAssign lets the allocator pick addresses from this pool for Services that
	// request no specific IP or pool. When false, the pool serves only Services that name
	// it (annotation bgplb.io/pool) or request one of its IPs. Defaults to true.
	// +kubebuilder:default=true
	// +optional
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// Disabled stops new allocations from the pool. Addresses already assigned stay with
	// their Services.
	// +optional
	Disabled bool `json:"disabled,omitempty"`

	// Priority orders automatic allocation: pools with a higher priority are tried first,
	// pools of equal priority oldest first. It does not change which of two overlapping
	// pools wins (the older one). Defaults to 0.
	// +kubebuilder:validation:Minimum=-1000
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Priority int32 `json:"priority,omitempty"`
}

// IPBlock is one address range: either a CIDR or an inclusive start/stop range of one family.
//
// CEL has no IP ordering, so "start <= stop" is checked bit by bit: start < stop exactly
// when, at the first prefix length p where they differ, start has a 0 bit and stop a 1
// bit (start/p contains stop, start/(p+1) does not, and start's bit p is 0). The prefix
// lengths are string literals (and p+1 a map lookup) so the cost estimator knows their size.
// +kubebuilder:validation:XValidation:rule="has(self.cidr) != (has(self.start) || has(self.stop))",message="exactly one of cidr or start/stop must be set"
// +kubebuilder:validation:XValidation:rule="has(self.start) == has(self.stop)",message="start and stop must be set together",fieldPath=".stop"
// +kubebuilder:validation:XValidation:rule="!has(self.start) || !has(self.stop) || !isIP(self.start) || !isIP(self.stop) || ip(self.start).family() == ip(self.stop).family()",message="start and stop must be of the same IP family",fieldPath=".stop"
// +kubebuilder:validation:XValidation:rule="!has(self.start) || !has(self.stop) || !isIP(self.start) || !isIP(self.stop) || ip(self.start).family() != 4 || ip(self.stop).family() != 4 || ip(self.start) == ip(self.stop) || ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15', '16', '17', '18', '19', '20', '21', '22', '23', '24', '25', '26', '27', '28', '29', '30', '31'].exists(p, cidr(self.start + '/' + p).containsIP(self.stop) && !cidr(self.start + '/' + {'0': '1', '1': '2', '2': '3', '3': '4', '4': '5', '5': '6', '6': '7', '7': '8', '8': '9', '9': '10', '10': '11', '11': '12', '12': '13', '13': '14', '14': '15', '15': '16', '16': '17', '17': '18', '18': '19', '19': '20', '20': '21', '21': '22', '22': '23', '23': '24', '24': '25', '25': '26', '26': '27', '27': '28', '28': '29', '29': '30', '30': '31', '31': '32'}[p]).containsIP(self.stop) && cidr(self.start + '/' + p).masked().ip() == cidr(self.start + '/' + {'0': '1', '1': '2', '2': '3', '3': '4', '4': '5', '5': '6', '6': '7', '7': '8', '8': '9', '9': '10', '10': '11', '11': '12', '12': '13', '13': '14', '14': '15', '15': '16', '16': '17', '17': '18', '18': '19', '19': '20', '20': '21', '21': '22', '22': '23', '23': '24', '24': '25', '25': '26', '26': '27', '27': '28', '28': '29', '29': '30', '30': '31', '31': '32'}[p]).masked().ip())",message="start must not be greater than stop",fieldPath=".stop"
// +kubebuilder:validation:XValidation:rule="!has(self.start) || !has(self.stop) || !isIP(self.start) || !isIP(self.stop) || ip(self.start).family() != 6 || ip(self.stop).family() != 6 || ip(self.start) == ip(self.stop) || ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '14', '15', '16', '17', '18', '19', '20', '21', '22', '23', '24', '25', '26', '27', '28', '29', '30', '31', '32', '33', '34', '35', '36', '37', '38', '39', '40', '41', '42', '43', '44', '45', '46', '47', '48', '49', '50', '51', '52', '53', '54', '55', '56', '57', '58', '59', '60', '61', '62', '63', '64', '65', '66', '67', '68', '69', '70', '71', '72', '73', '74', '75', '76', '77', '78', '79', '80', '81', '82', '83', '84', '85', '86', '87', '88', '89', '90', '91', '92', '93', '94', '95', '96', '97', '98', '99', '100', '101', '102', '103', '104', '105', '106', '107', '108', '109', '110', '111', '112', '113', '114', '115', '116', '117', '118', '119', '120', '121', '122', '123', '124', '125', '126', '127'].exists(p, cidr(self.start + '/' + p).containsIP(self.stop) && !cidr(self.start + '/' + {'0': '1', '1': '2', '2': '3', '3': '4', '4': '5', '5': '6', '6': '7', '7': '8', '8': '9', '9': '10', '10': '11', '11': '12', '12': '13', '13': '14', '14': '15', '15': '16', '16': '17', '17': '18', '18': '19', '19': '20', '20': '21', '21': '22', '22': '23', '23': '24', '24': '25', '25': '26', '26': '27', '27': '28', '28': '29', '29': '30', '30': '31', '31': '32', '32': '33', '33': '34', '34': '35', '35': '36', '36': '37', '37': '38', '38': '39', '39': '40', '40': '41', '41': '42', '42': '43', '43': '44', '44': '45', '45': '46', '46': '47', '47': '48', '48': '49', '49': '50', '50': '51', '51': '52', '52': '53', '53': '54', '54': '55', '55': '56', '56': '57', '57': '58', '58': '59', '59': '60', '60': '61', '61': '62', '62': '63', '63': '64', '64': '65', '65': '66', '66': '67', '67': '68', '68': '69', '69': '70', '70': '71', '71': '72', '72': '73', '73': '74', '74': '75', '75': '76', '76': '77', '77': '78', '78': '79', '79': '80', '80': '81', '81': '82', '82': '83', '83': '84', '84': '85', '85': '86', '86': '87', '87': '88', '88': '89', '89': '90', '90': '91', '91': '92', '92': '93', '93': '94', '94': '95', '95': '96', '96': '97', '97': '98', '98': '99', '99': '100', '100': '101', '101': '102', '102': '103', '103': '104', '104': '105', '105': '106', '106': '107', '107': '108', '108': '109', '109': '110', '110': '111', '111': '112', '112': '113', '113': '114', '114': '115', '115': '116', '116': '117', '117': '118', '118': '119', '119': '120', '120': '121', '121': '122', '122': '123', '123': '124', '124': '125', '125': '126', '126': '127', '127': '128'}[p]).containsIP(self.stop) && cidr(self.start + '/' + p).masked().ip() == cidr(self.start + '/' + {'0': '1', '1': '2', '2': '3', '3': '4', '4': '5', '5': '6', '6': '7', '7': '8', '8': '9', '9': '10', '10': '11', '11': '12', '12': '13', '13': '14', '14': '15', '15': '16', '16': '17', '17': '18', '18': '19', '19': '20', '20': '21', '21': '22', '22': '23', '23': '24', '24': '25', '25': '26', '26': '27', '27': '28', '28': '29', '29': '30', '30': '31', '31': '32', '32': '33', '33': '34', '34': '35', '35': '36', '36': '37', '37': '38', '38': '39', '39': '40', '40': '41', '41': '42', '42': '43', '43': '44', '44': '45', '45': '46', '46': '47', '47': '48', '48': '49', '49': '50', '50': '51', '51': '52', '52': '53', '53': '54', '54': '55', '55': '56', '56': '57', '57': '58', '58': '59', '59': '60', '60': '61', '61': '62', '62': '63', '63': '64', '64': '65', '65': '66', '66': '67', '67': '68', '68': '69', '69': '70', '70': '71', '71': '72', '72': '73', '73': '74', '74': '75', '75': '76', '76': '77', '77': '78', '78': '79', '79': '80', '80': '81', '81': '82', '82': '83', '83': '84', '84': '85', '85': '86', '86': '87', '87': '88', '88': '89', '89': '90', '90': '91', '91': '92', '92': '93', '93': '94', '94': '95', '95': '96', '96': '97', '97': '98', '98': '99', '99': '100', '100': '101', '101': '102', '102': '103', '103': '104', '104': '105', '105': '106', '106': '107', '107': '108', '108': '109', '109': '110', '110': '111', '111': '112', '112': '113', '113': '114', '114': '115', '115': '116', '116': '117', '117': '118', '118': '119', '119': '120', '120': '121', '121': '122', '122': '123', '123': '124', '124': '125', '125': '126', '126': '127', '127': '128'}[p]).masked().ip())",message="start must not be greater than stop",fieldPath=".stop"
type IPBlock struct {
	// CIDR is a network in CIDR notation without host bits, e.g. 203.0.113.0/24 or
	// 2001:db8:ffff::/112.
	// +kubebuilder:validation:MaxLength=49
	// +kubebuilder:validation:XValidation:rule="isCIDR(self)",message="must be a valid CIDR such as 203.0.113.0/24"
	// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self) == cidr(self).masked()",message="must not have host bits set (use the network address)"
	// +optional
	CIDR string `json:"cidr,omitempty"`

	// Start is the first address of an inclusive range (with Stop).
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be a valid IP address"
	// +optional
	Start string `json:"start,omitempty"`

	// Stop is the last address of an inclusive range (with Start); same family as Start, not below it.
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be a valid IP address"
	// +optional
	Stop string `json:"stop,omitempty"`
}

// LoadBalancerIPPoolStatus is written by the LB-IPAM leader.
type LoadBalancerIPPoolStatus struct {
	// Conditions: Ready, Conflicting, Invalid.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// IPv4 counts the pool's IPv4 addresses; absent when the pool has none.
	// +optional
	IPv4 *PoolCounts `json:"ipv4,omitempty"`

	// IPv6 counts the pool's IPv6 addresses; absent when the pool has none.
	// +optional
	IPv6 *PoolCounts `json:"ipv6,omitempty"`
}

// PoolCounts counts the addresses of one family in a pool. Counts saturate at 2^63-1
// (a /64 holds more addresses than an int64).
type PoolCounts struct {
	// Total is the number of usable addresses (after avoidBuggyIPs).
	Total int64 `json:"total"`
	// Used is the number of addresses assigned to at least one Service.
	Used int64 `json:"used"`
	// Free is Total - Used.
	Free int64 `json:"free"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
// +kubebuilder:object:root=true

// LoadBalancerIPPoolList is a list of LoadBalancerIPPool.
type LoadBalancerIPPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LoadBalancerIPPool `json:"items"`
}
