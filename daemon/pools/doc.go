// Package pools reads what the LoadBalancerIPPools and the BGP objects' label selectors
// say, once, for the LB-IPAM allocator (daemon/ipam), the announcer (daemon/announce), the
// Announced aggregator (daemon/status) and bgplbctl.
//
// A pool block is a CIDR or an inclusive start..stop range of one family. ParseBlock is
// the one parser (strict: no host bits, no zone, no IPv4-mapped IPv6 — what the CRD's CEL
// rules admit); BlockPrefixes and Prefixes give the prefixes covering blocks exactly (the
// speaker's allowed set), Containing the pools an address is in.
//
// Selectors follow the API: a nil or empty selector selects everything; an invalid one
// is an error the caller turns into "selects nothing" or a condition.
package pools
