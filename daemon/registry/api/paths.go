package api

// Default paths of the contract between the CNI plugin and the daemon, the one default
// of the daemon (daemon/config), bgplbctl and the plugin (each configurable).
const (
	// DefaultSocket is the daemon's registry socket.
	DefaultSocket = "/run/bgplb/bgplbd.sock"
	// DefaultRecordsDir holds the plugin's durable endpoint records.
	DefaultRecordsDir = "/var/lib/bgplb/endpoints"
)
