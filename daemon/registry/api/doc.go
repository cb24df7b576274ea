// Package api is the contract between the bgplb CNI plugin (plugins/bgplb) and the node
// daemon bgplbd (daemon/registry). It is the only daemon package the plugin imports, so it
// depends on nothing but the standard library.
//
// It holds three things:
//
//   - Endpoint, one CNI attachment (containerID, ifName) of a pod on this node, with the
//     pod IPs, the host-side veth and the bpffs pin of the pod program's link.
//
//   - RecordStore, a directory with one JSON file per attachment. The plugin writes a record
//     on ADD (after the program is attached) and deletes it on DEL (after the program is
//     detached); the daemon reads the directory on start so it adopts attachments made while
//     it was down and forgets the ones deleted while it was down. Writes are atomic
//     (temporary file + fsync + rename), so concurrent plugin invocations for different
//     attachments never see or produce partial records. RecordStore.Lock is the flock
//     protocol between them: CNI ADD/DEL hold it shared, CNI GC and the daemon's Rebuild
//     exclusive.
//
//   - Client, a small HTTP/JSON client for the daemon's unix socket:
//
//     PUT    /v1/endpoints                          body: Endpoint        → 204
//     DELETE /v1/endpoints/{containerID}/{ifName}                          → 204 (also when absent)
//     GET    /v1/endpoints                          → 200 []Endpoint
//     GET    /v1/ping                               → 200 {"status":"ok"}
//
// Errors are reported with a non-2xx status and a JSON body {"error": "..."}.
// Register and Unregister are idempotent by Endpoint.Key.
package api
