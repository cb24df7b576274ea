package bpf

// DefaultPinDir is the production bpffs directory for the pinned maps and links, the one
// default of the daemon (daemon/config), bgplbctl and the CNI plugin.
const DefaultPinDir = "/sys/fs/bpf/bgplb"
