//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb.c — bgplb's eBPF datapath: three tc programs sharing the maps of lb.h.
 *
 * lb_uplink (ingress on the node's uplink interfaces, attached by the daemon):
 * a TCP/UDP packet to (VIP, port, proto) of a service in lb_services is
 * delivered to a local backend pod: an existing conntrack entry whose backend
 * still exists keeps the flow on its backend; otherwise the backend is chosen
 * from the service's Maglev table by a hash of the 5-tuple and a conntrack
 * entry plus a reverse-NAT entry are written. The destination address and
 * port are rewritten (IPv4/IPv6 L3 and TCP/UDP L4 checksums fixed up
 * incrementally) and, by default, the packet continues into the node's stack,
 * which routes it to the pod through netfilter (FORWARD: NetworkPolicy) and
 * the primary CNI's programs; with lb_direct_redirect it is handed straight
 * to the pod with bpf_redirect_peer() (no second stack pass, NetworkPolicy
 * bypassed). Either way the pod sees the client's real source address.
 *   - a TCP SYN reusing the tuple of a flow tracked to a terminating backend
 *     is treated as a new flow.
 *   - no backend for new flows: LB_SVC_F_LOCAL -> drop (counted), else the
 *     packet continues to the kernel (kube-proxy / the primary CNI).
 *   - LB_SVC_F_SOURCE_RANGES and client outside lb_src_ranges -> drop.
 *   - ICMP/ICMPv6 echo request to a VIP in lb_vips -> answered in place and
 *     sent back out of the interface it came in on.
 *   - ICMP/ICMPv6 errors (frag needed / packet too big, unreachable, time
 *     exceeded) quoting a tracked reply -> translated and delivered to the
 *     flow's backend (path MTU discovery works through the VIP).
 *   - other TCP/UDP ports, other protocols and ICMP that is neither an echo
 *     request nor an error about a tracked flow, to a VIP in lb_vips
 *     -> drop (counted): the kernel does not own the VIP and would route the
 *     packet back to the router (a loop until the TTL expires).
 *   - anything else continues untouched (TC_ACT_UNSPEC = TCX_NEXT, so other
 *     tcx programs, e.g. the primary CNI's, still run).
 *
 * lb_pod (ingress on a pod's host-side veth, attached by the CNI plugin) and
 * lb_egress (egress on the uplinks, attached by the daemon): a reply of a
 * tracked flow (lb_revnat) gets its source rewritten back to VIP:port and
 * leaves through the uplink the request arrived on, with the request's MAC
 * addresses swapped, so the reply goes back to the router that sent the
 * request (symmetric return path, even when the client shares the node's
 * subnet). lb_pod does it for directly redirected flows (and redirects the
 * reply to the uplink), lb_egress for the others after the node's stack
 * forwarded the reply (conntrack sees both directions of the flow).
 * Reverse-NAT entries outlive their flows (LRU), so a TCP SYN-ACK must
 * acknowledge the client ISN the uplink recorded and a UDP entry expires
 * after LB_UDP_IDLE_NS idle; stale entries are deleted, so a later flow with
 * the same tuple that did not come through the VIP is not rewritten.
 * Anti-spoofing: only packets that entered the node on the flow's backend's
 * own host veth from its own address:port are rewritten, and only a new
 * connection (no entry, a new TCP ISN, a UDP flow past its idle expiry) sets
 * where replies go. Everything else continues untouched.
 *
 * Packet headers are read with bpf_skb_load_bytes() and written with
 * bpf_skb_store_bytes()/bpf_l{3,4}_csum_replace(), so non-linear skbs work and
 * no direct packet access bounds have to be proven. IPv6 hop-by-hop, routing
 * and destination options headers (up to LB_IP6_MAX_EXT) are skipped; a
 * packet to a VIP behind any other extension header (fragment, AH, ESP) is
 * dropped and counted, like every packet to a VIP that no service takes.
 * Attached with tcx (Linux >= 6.6) or legacy tc (cls_bpf direct-action);
 * needs Linux >= 5.10 (bpf_redirect_peer); uses no CO-RE.
 */

#include "lb_kernel.h"
#include "bpf_helpers.h"
#include "bpf_endian.h"
#include "lb.h"

char __license[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb_service_key);
	__type(value, struct lb_service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb_vip_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_BACKENDS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct lb_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct lb_maglev_table);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LB_MAX_SRC_RANGES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lb_src_range_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_src_ranges SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_MAX_CT);
	__type(key, struct lb_ct_key);
	__type(value, struct lb_ct_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_ct SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_MAX_CT);
	__type(key, struct lb_revnat_key);
	__type(value, struct lb_revnat_entry);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct lb_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, LB_MAX_BACKENDS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct lb_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_be_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_drops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} lb_counters SEC(".maps");

#define IP4_SADDR_OFF (ETH_HLEN + 12)
#define IP4_DADDR_OFF (ETH_HLEN + 16)
#define IP4_CSUM_OFF (ETH_HLEN + 10)
#define IP6_SADDR_OFF (ETH_HLEN + 8)
#define IP6_DADDR_OFF (ETH_HLEN + 24)
#define IP6_NEXTHDR_FRAGMENT 44

/* A parsed packet: addresses always 16 bytes (IPv4-mapped for IPv4). */
struct pkt {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u32 l4off;
	__u8 proto;
	__u8 v6;
	__u8 frag;
	__u8 tcp_flags;
	__be32 tcp_seq;
	__be32 tcp_ack;
};

#define REFRESH_NS 1000000000ULL

/* IPv6 extension headers parse_l3 skips (hop-by-hop, routing, destination options). */
#define LB_IP6_MAX_EXT 4
#define IP6_NEXTHDR_HOP 0
#define IP6_NEXTHDR_ROUTING 43
#define IP6_NEXTHDR_DEST 60

/* Internal verdict of icmp_error: translated, continue into the stack (returned
 * to the kernel as TC_ACT_UNSPEC; never a tc verdict itself). */
#define LB_ACT_TO_STACK 0x1000

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

static __always_inline void addr_v4mapped(__u8 *dst, __be32 a)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &a, 4);
}

static __always_inline int is_v4mapped(const __u8 *a)
{
	__u32 w0, w1, w2;

	__builtin_memcpy(&w0, a, 4);
	__builtin_memcpy(&w1, a + 4, 4);
	__builtin_memcpy(&w2, a + 8, 4);
	return w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff);
}

static __always_inline int addr_eq(const __u8 *a, const __u8 *b)
{
	__u64 a0, a1, b0, b1;

	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	__builtin_memcpy(&b0, b, 8);
	__builtin_memcpy(&b1, b + 8, 8);
	return a0 == b0 && a1 == b1;
}

/* parse_l3 fills the addresses, protocol, L4 offset and fragment flag.
 * Returns 0 for a well-formed IPv4/IPv6 header, -1 otherwise. */
static __always_inline int parse_l3(struct __sk_buff *skb, __be16 h_proto, struct pkt *p)
{
	if (h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		__u32 ihl;

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
			return -1;
		if ((ip.ver_ihl >> 4) != 4)
			return -1;
		ihl = (__u32)(ip.ver_ihl & 0xf) * 4;
		if (ihl < sizeof(ip))
			return -1;
		p->l4off = ETH_HLEN + ihl;
		p->proto = ip.protocol;
		p->v6 = 0;
		p->frag = (ip.frag_off & bpf_htons(IP_MF | IP_OFFSET)) != 0;
		addr_v4mapped(p->saddr, ip.saddr);
		addr_v4mapped(p->daddr, ip.daddr);
		return 0;
	}
	if (h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		__u8 first;

		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
			return -1;
		__builtin_memcpy(&first, &ip6, 1);
		if ((first >> 4) != 6)
			return -1;
		p->l4off = ETH_HLEN + sizeof(ip6);
		p->proto = ip6.nexthdr;
		p->v6 = 1;
		/* Skip up to LB_IP6_MAX_EXT hop-by-hop, routing and destination
		 * options headers (each: next header, length in 8-octet units
		 * beyond the first 8). A fragment header sets frag; other
		 * extension headers (AH, ESP, more than LB_IP6_MAX_EXT) end the
		 * walk with proto set to them, which no program handles. */
#pragma unroll
		for (int i = 0; i < LB_IP6_MAX_EXT; i++) {
			__u8 ext[2];

			if (p->proto != IP6_NEXTHDR_HOP && p->proto != IP6_NEXTHDR_ROUTING &&
			    p->proto != IP6_NEXTHDR_DEST)
				break;
			if (bpf_skb_load_bytes(skb, p->l4off, ext, 2) < 0)
				return -1;
			p->proto = ext[0];
			p->l4off += ((__u32)ext[1] + 1) * 8;
		}
		p->frag = p->proto == IP6_NEXTHDR_FRAGMENT;
		__builtin_memcpy(p->saddr, ip6.saddr, 16);
		__builtin_memcpy(p->daddr, ip6.daddr, 16);
		return 0;
	}
	return -1;
}

/* parse_ports reads the ports of a TCP/UDP packet, checking that the whole
 * fixed L4 header (with its checksum field) is present. */
static __always_inline int parse_ports(struct __sk_buff *skb, struct pkt *p)
{
	__u8 buf[20];

	if (p->proto == IPPROTO_TCP) {
		if (bpf_skb_load_bytes(skb, p->l4off, buf, 20) < 0)
			return -1;
	} else {
		if (bpf_skb_load_bytes(skb, p->l4off, buf, 8) < 0)
			return -1;
	}
	__builtin_memcpy(&p->sport, buf, 2);
	__builtin_memcpy(&p->dport, buf + 2, 2);
	if (p->proto == IPPROTO_TCP) {
		p->tcp_flags = buf[13];
		__builtin_memcpy(&p->tcp_seq, buf + 4, 4);
		__builtin_memcpy(&p->tcp_ack, buf + 8, 4);
	}
	return 0;
}

static __always_inline int count_drop(__u32 reason)
{
	__u64 *c = bpf_map_lookup_elem(&lb_drops, &reason);

	if (c)
		*c += 1;
	return TC_ACT_SHOT;
}

static __always_inline void count_event(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&lb_counters, &idx);

	if (c)
		*c += 1;
}

static __always_inline void count_stats(void *map, __u32 id, __u64 bytes)
{
	struct lb_stats *s = bpf_map_lookup_elem(map, &id);

	if (s) {
		/* per-CPU value: no atomics needed */
		s->packets += 1;
		s->bytes += bytes;
		return;
	}
	struct lb_stats init = { .packets = 1, .bytes = bytes };
	bpf_map_update_elem(map, &id, &init, BPF_NOEXIST);
}

static __always_inline int is_vip(const __u8 *addr, __u32 need)
{
	struct lb_vip_key k;
	__u32 *flags;

	__builtin_memcpy(k.addr, addr, 16);
	flags = bpf_map_lookup_elem(&lb_vips, &k);
	return flags && (*flags & need) == need;
}

/* lb_hash_seed is the cluster's random seed of tuple_hash, set when the
 * daemon loads lb_uplink (bpf.SetHashSeed; the same on every node, so a flow
 * hashes to the same Maglev slot whichever node the router picks). Without a
 * secret seed a client could choose ports that all land on one backend. */
volatile const __u32 lb_hash_seed = 0;

/* lb_direct_redirect selects how lb_uplink delivers VIP traffic to a local
 * pod (bpf.SetDelivery, set when the daemon loads lb_uplink):
 *   0 (default, "stack"): DNAT in tc, then TC_ACT_UNSPEC: the node's stack
 *     routes the packet to the pod through netfilter (conntrack, FORWARD,
 *     POSTROUTING, so NetworkPolicy enforcers hooked there apply) and the
 *     primary CNI's programs on the pod's veth; the pod's replies take the
 *     stack back (conntrack sees both directions) and lb_egress on the uplink
 *     restores VIP:port after it.
 *   1 ("redirect"): bpf_redirect_peer straight into the pod and lb_pod
 *     redirecting the replies to the uplink: no second stack pass, but it
 *     bypasses netfilter and with it NetworkPolicy. Explicit opt-in only.
 * The choice is recorded per flow (LB_RN_F_DIRECT), so the programs on the
 * pod's veth and the uplink agree whatever the plugin that attached them. */
volatile const __u32 lb_direct_redirect = 0;

/* murmur3-style 32-bit mixing over the 5-tuple (the Maglev slot index). */
static __always_inline __u32 rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static __always_inline __u32 mix32(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = rotl32(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = rotl32(h, 13);
	return h * 5 + 0xe6546b64;
}

static __always_inline __u32 tuple_hash(const struct pkt *p)
{
	__u32 h = 0x62676c62 ^ lb_hash_seed, w;
	int i;

#pragma unroll
	for (i = 0; i < 4; i++) {
		__builtin_memcpy(&w, p->saddr + i * 4, 4);
		h = mix32(h, w);
		__builtin_memcpy(&w, p->daddr + i * 4, 4);
		h = mix32(h, w);
	}
	h = mix32(h, ((__u32)p->sport << 16) | p->dport);
	h = mix32(h, p->proto);
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* nat_rewrite replaces the source (is_src) or destination address and port of
 * a TCP/UDP packet, fixing the IPv4 header checksum and the L4 checksum
 * (including its pseudo-header) incrementally. */
static __always_inline int nat_rewrite(struct __sk_buff *skb, const struct pkt *p, int is_src,
				       const __u8 *new_addr, __be16 new_port)
{
	__u32 csum_off = p->l4off + (p->proto == IPPROTO_TCP ? TCP_CSUM_OFF : UDP_CSUM_OFF);
	__u64 mangled = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__be16 old_port = is_src ? p->sport : p->dport;
	__u32 port_off = p->l4off + (is_src ? 0 : 2);

	if (p->v6) {
		__u8 old_a[16], new_a[16];
		__s64 diff;

		__builtin_memcpy(old_a, is_src ? p->saddr : p->daddr, 16);
		__builtin_memcpy(new_a, new_addr, 16);
		diff = bpf_csum_diff((__be32 *)old_a, 16, (__be32 *)new_a, 16, 0);
		if (bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR | mangled) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, is_src ? IP6_SADDR_OFF : IP6_DADDR_OFF, new_a, 16, 0) < 0)
			return -1;
	} else {
		__be32 old_ip, new_ip;
		__u32 addr_off = is_src ? IP4_SADDR_OFF : IP4_DADDR_OFF;

		__builtin_memcpy(&old_ip, (is_src ? p->saddr : p->daddr) + 12, 4);
		__builtin_memcpy(&new_ip, new_addr + 12, 4);
		if (bpf_l4_csum_replace(skb, csum_off, old_ip, new_ip, BPF_F_PSEUDO_HDR | mangled | 4) < 0)
			return -1;
		if (bpf_l3_csum_replace(skb, IP4_CSUM_OFF, old_ip, new_ip, 4) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, addr_off, &new_ip, 4, 0) < 0)
			return -1;
	}
	if (old_port != new_port) {
		if (bpf_l4_csum_replace(skb, csum_off, old_port, new_port, mangled | 2) < 0)
			return -1;
		if (bpf_skb_store_bytes(skb, port_off, &new_port, 2, 0) < 0)
			return -1;
	}
	return 0;
}

/* echo_reply answers an ICMP/ICMPv6 echo request in place: swap addresses
 * (neither checksum changes: the IPv4 header sum and the ICMPv6 pseudo-header
 * sum are order-independent), set the reply type, swap MACs and send it back
 * out of the interface it arrived on. */
static __always_inline int echo_reply(struct __sk_buff *skb, const struct ethhdr *eth,
				      const struct pkt *p, struct icmphdr_min ic)
{
	__u8 rep = p->v6 ? ICMPV6_ECHO_REPLY : ICMP_ECHOREPLY;
	__be16 old_w, new_w;
	__u8 macs[12];

	if (ic.code != 0 || !is_vip(p->daddr, LB_VIP_F_ECHO))
		return TC_ACT_UNSPEC;

	__builtin_memcpy(&old_w, &ic, 2);
	ic.type = rep;
	__builtin_memcpy(&new_w, &ic, 2);
	if (bpf_l4_csum_replace(skb, p->l4off + 2, old_w, new_w, 2) < 0)
		return count_drop(LB_DROP_MALFORMED);
	if (bpf_skb_store_bytes(skb, p->l4off, &rep, 1, 0) < 0)
		return count_drop(LB_DROP_MALFORMED);

	if (p->v6) {
		if (bpf_skb_store_bytes(skb, IP6_SADDR_OFF, p->daddr, 16, 0) < 0 ||
		    bpf_skb_store_bytes(skb, IP6_DADDR_OFF, p->saddr, 16, 0) < 0)
			return count_drop(LB_DROP_MALFORMED);
	} else {
		if (bpf_skb_store_bytes(skb, IP4_SADDR_OFF, p->daddr + 12, 4, 0) < 0 ||
		    bpf_skb_store_bytes(skb, IP4_DADDR_OFF, p->saddr + 12, 4, 0) < 0)
			return count_drop(LB_DROP_MALFORMED);
	}

	__builtin_memcpy(macs, eth->h_source, 6);
	__builtin_memcpy(macs + 6, eth->h_dest, 6);
	if (bpf_skb_store_bytes(skb, 0, macs, 12, 0) < 0)
		return count_drop(LB_DROP_MALFORMED);
	return bpf_redirect(skb->ifindex, 0);
}

/* icmp_error delivers an ICMP/ICMPv6 error about a reply we sent from a VIP
 * (fragmentation needed / packet too big, unreachable, time exceeded) to the
 * backend of the tracked flow, translated as if the backend had sent the
 * quoted packet itself: outer destination VIP -> backend, quoted source
 * VIP:port -> backend:port, with the ICMP checksum (and for IPv4 the quoted
 * header's checksum) fixed up. Without this, path MTU discovery toward the
 * pod black-holes. Untracked errors continue untouched. */
static __always_inline int icmp_error(struct __sk_buff *skb, const struct pkt *p)
{
	__u32 inner_off = p->l4off + 8;
	__u32 csum_off = p->l4off + 2;
	struct lb_ct_key ck = {};
	struct lb_ct_entry *ct;
	struct lb_backend *bp, be;
	__u32 inner_l4off, inner_saddr_off, be_id;
	__u8 inner_proto;
	__be16 iports[2];

	if (!is_vip(p->daddr, 0))
		return TC_ACT_UNSPEC;
	if (p->v6) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, inner_off, &ip6, sizeof(ip6)) < 0)
			return TC_ACT_UNSPEC;
		inner_proto = ip6.nexthdr;
		inner_l4off = inner_off + sizeof(ip6);
		inner_saddr_off = inner_off + 8;
		__builtin_memcpy(ck.daddr, ip6.saddr, 16);
		__builtin_memcpy(ck.saddr, ip6.daddr, 16);
	} else {
		struct iphdr ip;
		__u32 ihl;

		if (bpf_skb_load_bytes(skb, inner_off, &ip, sizeof(ip)) < 0)
			return TC_ACT_UNSPEC;
		ihl = (__u32)(ip.ver_ihl & 0xf) * 4;
		if ((ip.ver_ihl >> 4) != 4 || ihl < sizeof(ip))
			return TC_ACT_UNSPEC;
		inner_proto = ip.protocol;
		inner_l4off = inner_off + ihl;
		inner_saddr_off = inner_off + 12;
		addr_v4mapped(ck.daddr, ip.saddr);
		addr_v4mapped(ck.saddr, ip.daddr);
	}
	if (inner_proto != IPPROTO_TCP && inner_proto != IPPROTO_UDP)
		return TC_ACT_UNSPEC;
	if (bpf_skb_load_bytes(skb, inner_l4off, iports, 4) < 0)
		return TC_ACT_UNSPEC;
	/* The quoted packet is a reply: VIP:port -> client:port. */
	ck.sport = iports[1];
	ck.dport = iports[0];
	ck.proto = inner_proto;
	ct = bpf_map_lookup_elem(&lb_ct, &ck);
	if (!ct)
		return TC_ACT_UNSPEC;
	be_id = ct->backend_id;
	bp = bpf_map_lookup_elem(&lb_backends, &be_id);
	if (!bp)
		return TC_ACT_UNSPEC;
	be = *bp;
	if (is_v4mapped(be.addr) == p->v6)
		return TC_ACT_UNSPEC;

	if (p->v6) {
		__u8 vip[16], dst[16];
		__s64 diff;

		__builtin_memcpy(vip, ck.daddr, 16);
		__builtin_memcpy(dst, be.addr, 16);
		diff = bpf_csum_diff((__be32 *)vip, 16, (__be32 *)dst, 16, 0);
		/* outer destination: in the ICMPv6 pseudo-header */
		if (bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR) < 0 ||
		    bpf_skb_store_bytes(skb, IP6_DADDR_OFF, dst, 16, 0) < 0)
			return count_drop(LB_DROP_MALFORMED);
		/* quoted source: in the ICMPv6 payload */
		if (bpf_l4_csum_replace(skb, csum_off, 0, diff, 0) < 0 ||
		    bpf_skb_store_bytes(skb, inner_saddr_off, dst, 16, 0) < 0)
			return count_drop(LB_DROP_MALFORMED);
	} else {
		__be32 old_ip, new_ip;
		__sum16 old_ic, new_ic;

		__builtin_memcpy(&old_ip, p->daddr + 12, 4);
		__builtin_memcpy(&new_ip, be.addr + 12, 4);
		if (bpf_l3_csum_replace(skb, IP4_CSUM_OFF, old_ip, new_ip, 4) < 0 ||
		    bpf_skb_store_bytes(skb, IP4_DADDR_OFF, &new_ip, 4, 0) < 0)
			return count_drop(LB_DROP_MALFORMED);
		__builtin_memcpy(&old_ip, ck.daddr + 12, 4);
		if (bpf_skb_load_bytes(skb, inner_off + 10, &old_ic, 2) < 0 ||
		    bpf_l3_csum_replace(skb, inner_off + 10, old_ip, new_ip, 4) < 0 ||
		    bpf_skb_load_bytes(skb, inner_off + 10, &new_ic, 2) < 0 ||
		    bpf_skb_store_bytes(skb, inner_saddr_off, &new_ip, 4, 0) < 0)
			return count_drop(LB_DROP_MALFORMED);
		/* the ICMP checksum covers the quoted address and checksum */
		if (bpf_l4_csum_replace(skb, csum_off, old_ip, new_ip, 4) < 0 ||
		    bpf_l4_csum_replace(skb, csum_off, old_ic, new_ic, 2) < 0)
			return count_drop(LB_DROP_MALFORMED);
	}
	if (iports[0] != be.port) {
		if (bpf_l4_csum_replace(skb, csum_off, iports[0], be.port, 2) < 0 ||
		    bpf_skb_store_bytes(skb, inner_l4off, &be.port, 2, 0) < 0)
			return count_drop(LB_DROP_MALFORMED);
	}
	if (lb_direct_redirect)
		return bpf_redirect_peer(be.ifindex, 0);
	return LB_ACT_TO_STACK; /* the stack routes it to the pod (conntrack: RELATED) */
}

/* handle_icmp_to: echo requests to a VIP are answered, errors about tracked
 * flows go to their backend, everything else continues untouched. */
static __always_inline int handle_icmp_to(struct __sk_buff *skb, const struct ethhdr *eth,
					  const struct pkt *p)
{
	struct icmphdr_min ic;

	if (p->frag)
		return TC_ACT_UNSPEC;
	if (bpf_skb_load_bytes(skb, p->l4off, &ic, sizeof(ic)) < 0)
		return TC_ACT_UNSPEC;
	if (p->v6) {
		if (ic.type == ICMPV6_ECHO_REQUEST)
			return echo_reply(skb, eth, p, ic);
		if (ic.type == ICMPV6_DEST_UNREACH || ic.type == ICMPV6_PKT_TOOBIG ||
		    ic.type == ICMPV6_TIME_EXCEED)
			return icmp_error(skb, p);
		return TC_ACT_UNSPEC;
	}
	if (ic.type == ICMP_ECHO)
		return echo_reply(skb, eth, p, ic);
	if (ic.type == ICMP_DEST_UNREACH || ic.type == ICMP_TIME_EXCEEDED)
		return icmp_error(skb, p);
	return TC_ACT_UNSPEC;
}

/* handle_icmp is handle_icmp_to, except that ICMP to a VIP it does not handle
 * (an echo to a VIP without LB_VIP_F_ECHO, an error about no tracked flow, e.g.
 * one quoting a VIP port without a service, other types, fragments) is dropped
 * and counted as LB_DROP_NO_SERVICE: the kernel does not own the VIP and would
 * route it back to the router, which sends it here again until the TTL runs out. */
static __always_inline int handle_icmp(struct __sk_buff *skb, const struct ethhdr *eth,
				       const struct pkt *p)
{
	int ret = handle_icmp_to(skb, eth, p);

	if (ret == LB_ACT_TO_STACK)
		return TC_ACT_UNSPEC;
	if (ret == TC_ACT_UNSPEC && is_vip(p->daddr, 0))
		return count_drop(LB_DROP_NO_SERVICE);
	return ret;
}

/* src_allowed looks the client up in the service's loadBalancerSourceRanges. */
static __always_inline int src_allowed(__u32 svc_id, const struct pkt *p)
{
	struct lb_src_range_key k;

	k.prefixlen = 32 + 128;
	k.svc_id = svc_id;
	__builtin_memcpy(k.addr, p->saddr, 16);
	return bpf_map_lookup_elem(&lb_src_ranges, &k) != NULL;
}

SEC("tc")
int lb_uplink(struct __sk_buff *skb)
{
	struct ethhdr eth;
	struct pkt p = {};
	struct lb_service_key sk = {};
	struct lb_service *svcp, svc;
	struct lb_ct_key ck = {};
	struct lb_ct_entry *ct;
	struct lb_backend *bp, be;
	struct lb_revnat_key rk = {};
	struct lb_revnat_entry *rn;
	__u32 be_id = 0;
	__u16 direct_flag = lb_direct_redirect ? LB_RN_F_DIRECT : 0;
	__u64 now;
	int found = 0, syn;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return TC_ACT_UNSPEC;
	if (parse_l3(skb, eth.h_proto, &p) < 0)
		return TC_ACT_UNSPEC;

	if ((!p.v6 && p.proto == IPPROTO_ICMP) || (p.v6 && p.proto == IPPROTO_ICMPV6))
		return handle_icmp(skb, &eth, &p);
	if (p.frag) {
		if (is_vip(p.daddr, 0))
			return count_drop(LB_DROP_FRAGMENT);
		return TC_ACT_UNSPEC;
	}
	if (p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP) {
		if (is_vip(p.daddr, 0))
			return count_drop(LB_DROP_NO_SERVICE);
		return TC_ACT_UNSPEC;
	}
	if (parse_ports(skb, &p) < 0) {
		if (is_vip(p.daddr, 0))
			return count_drop(LB_DROP_MALFORMED);
		return TC_ACT_UNSPEC;
	}

	__builtin_memcpy(sk.vip, p.daddr, 16);
	sk.port = p.dport;
	sk.proto = p.proto;
	svcp = bpf_map_lookup_elem(&lb_services, &sk);
	if (!svcp) {
		/* A VIP we announce but no service on this port/protocol: the
		 * kernel does not own the VIP and would route the packet back to
		 * the router, which sends it here again until the TTL runs out. */
		if (is_vip(p.daddr, 0))
			return count_drop(LB_DROP_NO_SERVICE);
		return TC_ACT_UNSPEC;
	}
	svc = *svcp;

	if ((svc.flags & LB_SVC_F_SOURCE_RANGES) && !src_allowed(svc.id, &p))
		return count_drop(LB_DROP_SOURCE_RANGE);

	__builtin_memcpy(ck.saddr, p.saddr, 16);
	__builtin_memcpy(ck.daddr, p.daddr, 16);
	ck.sport = p.sport;
	ck.dport = p.dport;
	ck.proto = p.proto;
	ct = bpf_map_lookup_elem(&lb_ct, &ck);
	if (ct && ct->svc_id == svc.id) {
		be_id = ct->backend_id;
		bp = bpf_map_lookup_elem(&lb_backends, &be_id);
		/* A new TCP connection (SYN without ACK) that reuses the 5-tuple of
		 * a flow tracked to a terminating backend is a new flow: it goes to
		 * a new-flow backend when there is one (client port reuse during a
		 * rolling update must not land on a pod that is shutting down). */
		if (bp && !((bp->flags & LB_BE_F_TERMINATING) && svc.count > 0 &&
			    (p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)) {
			be = *bp;
			found = 1;
		}
	}
	if (!found) {
		struct lb_maglev_table *mt;
		struct lb_ct_entry ne = {};
		__u32 slot;

		if (svc.count == 0) {
			if (svc.flags & LB_SVC_F_LOCAL)
				return count_drop(LB_DROP_NO_LOCAL_BACKEND);
			return TC_ACT_UNSPEC;
		}
		mt = bpf_map_lookup_elem(&lb_maglev, &svc.id);
		if (!mt)
			return count_drop(LB_DROP_NO_BACKEND);
		slot = tuple_hash(&p) % LB_MAGLEV_M;
		/* The verifier does not track the range of a modulo: re-check it
		 * behind a barrier the compiler cannot see through. */
		asm volatile("" : "+r"(slot));
		if (slot >= LB_MAGLEV_M)
			return count_drop(LB_DROP_NO_BACKEND);
		be_id = mt->backend_ids[slot];
		bp = bpf_map_lookup_elem(&lb_backends, &be_id);
		if (!bp)
			return count_drop(LB_DROP_NO_BACKEND);
		be = *bp;
		ne.backend_id = be_id;
		ne.svc_id = svc.id;
		ne.created_ns = bpf_ktime_get_ns();
		if (bpf_map_update_elem(&lb_ct, &ck, &ne, BPF_ANY) < 0)
			return count_drop(LB_DROP_CT_FULL);
		if (!ct)
			count_event(LB_CNT_CT_CREATED);
	}
	if (is_v4mapped(be.addr) == p.v6)
		return count_drop(LB_DROP_NO_BACKEND);

	/* Reverse-NAT state for the replies; refreshed when the flow now arrives
	 * through another interface or router (or the LRU evicted it). */
	__builtin_memcpy(rk.saddr, be.addr, 16);
	__builtin_memcpy(rk.daddr, p.saddr, 16);
	rk.sport = be.port;
	rk.dport = p.sport;
	rk.proto = p.proto;
	now = bpf_ktime_get_ns();
	syn = p.proto == IPPROTO_TCP && (p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
	rn = bpf_map_lookup_elem(&lb_revnat, &rk);
	/* Where replies go (MACs, interface) is set by a new connection only: no
	 * entry, a TCP SYN with a new ISN, or a UDP flow idle past its expiry.
	 * A packet of a known flow from another MAC or interface (a spoofer who
	 * knows the 5-tuple) must not re-point the flow's replies. */
	if (!rn || (syn && (!(rn->flags & LB_RN_F_SYN) || rn->syn_seq != p.tcp_seq)) ||
	    (p.proto == IPPROTO_UDP && now - rn->last_ns > LB_UDP_IDLE_NS)) {
		struct lb_revnat_entry nv = {};

		__builtin_memcpy(nv.vip, p.daddr, 16);
		nv.vip_port = p.dport;
		__builtin_memcpy(nv.client_mac, eth.h_source, 6);
		__builtin_memcpy(nv.node_mac, eth.h_dest, 6);
		nv.ifindex = skb->ifindex;
		nv.svc_id = svc.id;
		nv.backend_id = be_id;
		nv.last_ns = now;
		if (syn) {
			nv.flags = LB_RN_F_SYN;
			nv.syn_seq = p.tcp_seq;
		} else if (rn) {
			nv.flags = rn->flags & LB_RN_F_SYN;
			nv.syn_seq = rn->syn_seq;
		}
		nv.flags |= direct_flag;
		if (bpf_map_update_elem(&lb_revnat, &rk, &nv, BPF_ANY) < 0)
			return count_drop(LB_DROP_CT_FULL);
		if (!rn)
			count_event(LB_CNT_REVNAT_CREATED);
	} else {
		if (rn->svc_id != svc.id || rn->backend_id != be_id) {
			/* Same flow, backend re-picked (service recreated, conntrack
			 * evicted): follow the backend, keep the reply path. */
			rn->svc_id = svc.id;
			rn->backend_id = be_id;
		}
		if ((rn->flags & LB_RN_F_DIRECT) != direct_flag)
			rn->flags = (rn->flags & ~LB_RN_F_DIRECT) | direct_flag;
		if (now - rn->last_ns > REFRESH_NS)
			rn->last_ns = now;
	}

	if (nat_rewrite(skb, &p, 0, be.addr, be.port) < 0)
		return count_drop(LB_DROP_MALFORMED);

	count_stats(&lb_svc_stats, svc.id, skb->len);
	count_stats(&lb_be_stats, be_id, skb->len);
	if (lb_direct_redirect)
		return bpf_redirect_peer(be.ifindex, 0);
	/* The stack routes the DNATed packet to the pod: netfilter (conntrack,
	 * FORWARD, NetworkPolicy) and the primary CNI's programs see it. */
	return TC_ACT_UNSPEC;
}

/* reply_nat is the reverse NAT of a reply leaving a backend pod: a packet that
 * matches lb_revnat (a reply of a tracked flow) gets its source rewritten back
 * to VIP:port and the request's MAC addresses swapped, and leaves through the
 * uplink the request came in on. from_ifindex is the interface the packet
 * entered the node on (lb_pod: the host veth it runs on; lb_egress:
 * skb->ingress_ifindex, the host veth of a forwarded packet). direct selects
 * the flows: lb_pod takes those delivered with bpf_redirect_peer
 * (LB_RN_F_DIRECT) and redirects their replies itself; lb_egress takes the
 * others, whose requests and replies went through the node's stack (netfilter
 * FORWARD, conntrack, the primary CNI's programs), after that stack. Anything
 * else returns TC_ACT_UNSPEC untouched. */
static __always_inline int reply_nat(struct __sk_buff *skb, __u32 from_ifindex, int direct)
{
	struct ethhdr eth;
	struct pkt p = {};
	struct lb_revnat_key rk = {};
	struct lb_revnat_entry *rnp, rn;
	struct lb_backend *bp;
	__u32 be_id;
	__u8 macs[12];
	__u64 now;

	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return TC_ACT_UNSPEC;
	if (parse_l3(skb, eth.h_proto, &p) < 0)
		return TC_ACT_UNSPEC;
	if (p.frag || (p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP))
		return TC_ACT_UNSPEC;
	if (parse_ports(skb, &p) < 0)
		return TC_ACT_UNSPEC;

	__builtin_memcpy(rk.saddr, p.saddr, 16);
	__builtin_memcpy(rk.daddr, p.daddr, 16);
	rk.sport = p.sport;
	rk.dport = p.dport;
	rk.proto = p.proto;
	rnp = bpf_map_lookup_elem(&lb_revnat, &rk);
	if (!rnp)
		return TC_ACT_UNSPEC;
	rn = *rnp;
	if (is_v4mapped(rn.vip) == p.v6)
		return TC_ACT_UNSPEC;
	if (((rn.flags & LB_RN_F_DIRECT) != 0) != (direct != 0))
		return TC_ACT_UNSPEC;
	/* Only the flow's backend may send its replies: the packet must enter on
	 * the backend's own host veth, from the backend's address and port. A
	 * neighbouring pod forging the tuple is left alone (not rewritten). */
	be_id = rn.backend_id;
	bp = bpf_map_lookup_elem(&lb_backends, &be_id);
	if (!bp || bp->ifindex != from_ifindex || bp->port != p.sport || !addr_eq(bp->addr, p.saddr))
		return TC_ACT_UNSPEC;

	/* A stale entry (its flow is over, this is a flow that did not come
	 * through the VIP) is deleted and the packet left alone. */
	now = bpf_ktime_get_ns();
	if (p.proto == IPPROTO_TCP) {
		if ((p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == (TCP_FLAG_SYN | TCP_FLAG_ACK) &&
		    (!(rn.flags & LB_RN_F_SYN) ||
		     bpf_ntohl(p.tcp_ack) != bpf_ntohl(rn.syn_seq) + 1)) {
			if (bpf_map_delete_elem(&lb_revnat, &rk) == 0)
				count_event(LB_CNT_REVNAT_DELETED);
			return TC_ACT_UNSPEC;
		}
	} else {
		if (now - rn.last_ns > LB_UDP_IDLE_NS) {
			if (bpf_map_delete_elem(&lb_revnat, &rk) == 0)
				count_event(LB_CNT_REVNAT_DELETED);
			return TC_ACT_UNSPEC;
		}
		if (now - rn.last_ns > REFRESH_NS)
			rnp->last_ns = now;
	}

	if (nat_rewrite(skb, &p, 1, rn.vip, rn.vip_port) < 0)
		return count_drop(LB_DROP_MALFORMED);
	__builtin_memcpy(macs, rn.client_mac, 6);
	__builtin_memcpy(macs + 6, rn.node_mac, 6);
	if (bpf_skb_store_bytes(skb, 0, macs, 12, 0) < 0)
		return count_drop(LB_DROP_MALFORMED);
	if (direct || rn.ifindex != skb->ifindex)
		return bpf_redirect(rn.ifindex, 0);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int lb_pod(struct __sk_buff *skb)
{
	return reply_nat(skb, skb->ifindex, 1);
}

SEC("tc")
int lb_egress(struct __sk_buff *skb)
{
	return reply_nat(skb, skb->ingress_ifindex, 0);
}
