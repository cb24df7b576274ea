//go:build linux

package bpf

// The compiler is clang 14 (Debian 12 `clang`; override with BPF2GO_CC) and
// the flags are fixed here so that `go generate ./bpf/` reproduces the
// committed lb_bpfel.{go,o} and lb_bpfeb.{go,o} byte for byte.
//go:generate go tool bpf2go -tags linux -target bpfel,bpfeb -type lb_service_key -type lb_service -type lb_vip_key -type lb_backend -type lb_maglev_table -type lb_src_range_key -type lb_ct_key -type lb_ct_entry -type lb_revnat_key -type lb_revnat_entry -type lb_stats lb lb.c -- -I./include -O2 -g -Wall -Werror -mcpu=v3
