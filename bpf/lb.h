/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * lb.h — the bgplb datapath map ABI.
 *
 * This header is the contract between the eBPF programs in lb.c and the Go
 * side (package bpf, maps.go, which daemon/datapath and bgplbctl use). Every
 * struct here is exported to Go by bpf2go (-type); Go wraps them in typed
 * accessors, so callers never build these bytes by hand.
 *
 * Conventions:
 *  - Addresses are 16 bytes: IPv6 as is, IPv4 as IPv4-mapped IPv6
 *    (::ffff:a.b.c.d), network byte order.
 *  - Ports are network byte order (__be16).
 *  - proto is the IP protocol number (6 TCP, 17 UDP).
 *  - Service ids and backend ids are allocated by the daemon, never 0, and
 *    should not be reused while conntrack entries may still name them.
 *
 * Maps (all pinned by name in the pin directory, LIBBPF_PIN_BY_NAME; hash
 * maps other than the LRU conntrack maps are BPF_F_NO_PREALLOC, so an idle
 * node pays only for the two preallocated LRUs, about 30 MiB):
 *
 *  lb_services    HASH        lb_service_key {vip, port, proto} -> lb_service {id, flags, count}
 *  lb_vips        HASH        lb_vip_key {addr} -> __u32 flags (LB_VIP_F_*); a VIP this node
 *                             announces: ICMP/ICMPv6 echo to it is answered; fragments,
 *                             truncated TCP/UDP, ports/protocols without a service (other
 *                             than ICMP) to it are dropped and counted.
 *  lb_backends    HASH        __u32 backend id -> lb_backend {addr, port, flags, ifindex}
 *  lb_maglev      HASH        __u32 service id -> lb_maglev_table {backend_ids[LB_MAGLEV_M]}
 *                             (consistent-hash table of the backends that take NEW flows;
 *                             computed in Go; valid whenever lb_service.count > 0)
 *  lb_src_ranges  LPM_TRIE    lb_src_range_key {prefixlen, svc id, addr} -> __u8 1
 *                             (loadBalancerSourceRanges; prefixlen = 32 + 96 + v4 len, or
 *                             32 + v6 len; only consulted with LB_SVC_F_SOURCE_RANGES)
 *  lb_ct          LRU_HASH    lb_ct_key {client, vip, client port, vip port, proto}
 *                             -> lb_ct_entry {backend id, svc id, created}
 *  lb_revnat      LRU_HASH    lb_revnat_key {backend, client, backend port, client port, proto}
 *                             -> lb_revnat_entry {vip, vip port, client mac, node mac, ifindex, ...}
 *  lb_svc_stats   PERCPU_HASH __u32 service id -> lb_stats {packets, bytes} (requests)
 *  lb_be_stats    PERCPU_HASH __u32 backend id -> lb_stats {packets, bytes} (requests)
 *  lb_drops       PERCPU_ARRAY __u32 reason (LB_DROP_*) -> __u64 packets
 *  lb_counters    PERCPU_ARRAY __u32 counter (LB_CNT_*) -> __u64 events
 */
#pragma once

/* Size of the per-service Maglev table (prime). Every backend of a service gets
 * floor or ceil of M/N slots, so with N <= 25 local backends the spread is
 * within 2.5%; 4 KiB per service. */
#define LB_MAGLEV_M 1021

#define LB_MAX_SERVICES 65536
#define LB_MAX_BACKENDS 65536
#define LB_MAX_SRC_RANGES 65536
#define LB_MAX_CT 131072

struct lb_service_key {
	__u8 vip[16];
	__be16 port;
	__u8 proto;
	__u8 pad;
};

/* lb_service.flags */
#define LB_SVC_F_LOCAL (1U << 0)         /* externalTrafficPolicy Local: no backend -> drop */
#define LB_SVC_F_SOURCE_RANGES (1U << 1) /* enforce lb_src_ranges for this service */

struct lb_service {
	__u32 id;    /* service id: key of lb_maglev, lb_src_ranges, lb_svc_stats */
	__u32 flags; /* LB_SVC_F_* */
	__u32 count; /* backends in the Maglev table; 0: no local backend takes new flows */
	__u32 pad;
};

struct lb_vip_key {
	__u8 addr[16];
};

/* lb_vips value flags */
#define LB_VIP_F_ECHO (1U << 0) /* answer ICMP/ICMPv6 echo requests */

/* lb_backend.flags */
/* Terminating: new-flow eligibility is the Maglev table; additionally, a TCP
 * SYN (without ACK) whose 5-tuple is still tracked to a terminating backend
 * re-selects among the new-flow backends (client port reuse). */
#define LB_BE_F_TERMINATING (1U << 0)

struct lb_backend {
	__u8 addr[16];  /* pod address (same family as the VIP) */
	__be16 port;    /* target port */
	__u8 flags;     /* LB_BE_F_* */
	__u8 pad;
	__u32 ifindex;  /* host-side veth of the pod (bpf_redirect_peer target) */
};

struct lb_maglev_table {
	__u32 backend_ids[LB_MAGLEV_M];
};

struct lb_src_range_key {
	__u32 prefixlen; /* 32 (svc_id) + prefix bits over addr */
	__u32 svc_id;    /* matched exactly: prefixlen always covers it */
	__u8 addr[16];
};

/* Request direction, as the packet arrives on the uplink. */
struct lb_ct_key {
	__u8 saddr[16]; /* client */
	__u8 daddr[16]; /* VIP */
	__be16 sport;   /* client port */
	__be16 dport;   /* service port */
	__u8 proto;
	__u8 pad[3];
};

struct lb_ct_entry {
	__u32 backend_id;
	__u32 svc_id;
	__u64 created_ns; /* bpf_ktime_get_ns() when the flow was first seen */
};

/* Reply direction, as the packet leaves the pod (arrives on its host veth). */
struct lb_revnat_key {
	__u8 saddr[16]; /* backend */
	__u8 daddr[16]; /* client */
	__be16 sport;   /* backend port */
	__be16 dport;   /* client port */
	__u8 proto;
	__u8 pad[3];
};

/* lb_revnat_entry.flags */
#define LB_RN_F_SYN (1U << 0)    /* syn_seq holds the client's initial sequence number */
#define LB_RN_F_DIRECT (1U << 1) /* the request was redirected into the pod (lb_direct_redirect):
				  * lb_pod rewrites the replies on the host veth and redirects
				  * them to the uplink; without it the replies take the node's
				  * stack and lb_egress rewrites them on the uplink */

/* How long a UDP reverse-NAT entry stays valid without packets either way. */
#define LB_UDP_IDLE_NS (120ULL * 1000000000ULL)

struct lb_revnat_entry {
	__u8 vip[16];
	__be16 vip_port;
	__u8 client_mac[6]; /* source MAC of the request: destination of replies */
	__u8 node_mac[6];   /* destination MAC of the request: source of replies */
	__u16 flags;        /* LB_RN_F_* */
	__u32 ifindex;      /* interface the request arrived on: replies leave through it */
	__u32 svc_id;
	__u32 backend_id;
	/* Staleness guards: the entry outlives its flow (LRU), and a later flow
	 * with the same tuple that does not come through the VIP (client -> pod
	 * IP directly) must not be rewritten. TCP: the backend's SYN-ACK must
	 * acknowledge syn_seq + 1, else the entry is stale and deleted. UDP: the
	 * entry is stale after LB_UDP_IDLE_NS without packets in either direction. */
	__be32 syn_seq;
	__u64 last_ns;      /* bpf_ktime_get_ns(), refreshed at most once a second */
};

struct lb_stats {
	__u64 packets;
	__u64 bytes;
};

/* lb_drops index */
enum lb_drop_reason {
	LB_DROP_NONE = 0,
	LB_DROP_NO_LOCAL_BACKEND = 1, /* Local policy, no eligible local backend */
	LB_DROP_SOURCE_RANGE = 2,     /* client outside loadBalancerSourceRanges */
	LB_DROP_NO_BACKEND = 3,       /* Maglev slot names a missing/unusable backend */
	LB_DROP_FRAGMENT = 4,         /* IPv4 fragment to a VIP */
	LB_DROP_MALFORMED = 5,        /* truncated L4 header to a VIP */
	LB_DROP_CT_FULL = 6,          /* conntrack/revnat entry could not be written */
	LB_DROP_NO_SERVICE = 7,       /* to a VIP in lb_vips, but no service on that port/protocol */
	LB_DROP_MAX = 8,
};

/* lb_counters index: events the daemon turns into LRU eviction estimates
 * (evictions = created - deleted - live entries; see bpf/evictions.go). */
enum lb_counter {
	LB_CNT_CT_CREATED = 0,     /* lb_ct entries inserted for a new tuple */
	LB_CNT_REVNAT_CREATED = 1, /* lb_revnat entries inserted for a new tuple */
	LB_CNT_REVNAT_DELETED = 2, /* stale lb_revnat entries deleted by lb_pod */
	LB_CNT_MAX = 3,
};
