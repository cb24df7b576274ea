// Package registry is bgplbd's set of local endpoints: the CNI attachments (containerID,
// ifName) on this node to which the bgplb plugin attached the pod program. The eligibility
// plugins ask it whether a Service endpoint (by pod IP, or by pod namespace/name) can be
// reached by the datapath on this node.
//
// Who writes it:
//   - the CNI plugin, through the HTTP/JSON API served by Serve on a unix socket
//     (see package api for the wire protocol); Register and Unregister are idempotent;
//   - Rebuild, on daemon start, from the plugin's durable records (api.RecordStore): a
//     record whose bpffs link pin is live is adopted, a record whose pin is gone (the pod was
//     deleted, or the node rebooted, while the daemon was down) is dropped and its file
//     removed. The plugin writes records; the daemon only reads them, except for removing
//     stale ones in Rebuild.
//
// Who reads it: the daemon's informer loop subscribes to changes (Subscribe) and enqueues
// the affected Services; eligibility plugins call ByIP / ByPod / List.
//
// Invariants: at most one endpoint per Key; mutations are serialised and their
// notifications are delivered in mutation order, after the change is visible to readers.
package registry
