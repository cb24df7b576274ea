package main

import (
	"errors"

	"github.com/containernetworking/cni/pkg/types"
)

// Error codes of this plugin. Codes below 100 are the CNI spec's well-known codes; codes
// from 100 up are ours (the spec reserves them for plugins). Keep README.md in sync.
const (
	// CodeAttachFailed: the pod program could not be attached to the host veth. ADD no
	// longer returns it (a failed attach is recorded on the endpoint, see
	// CodeDatapathNotReady); kept so the number is never reused.
	CodeAttachFailed uint = 100
	// CodeRecordFailed: the endpoint record could not be written, read or deleted.
	CodeRecordFailed uint = 101
	// CodeDaemonRejected: bgplbd answered the registration with an error. ADD no longer
	// returns it (the refusal is recorded on the endpoint); kept so the number is never reused.
	CodeDaemonRejected uint = 102
	// CodeNotAttached: CHECK found no live pod program link on the pod's host veth.
	CodeNotAttached uint = 110
	// CodeRecordMissing: CHECK found no endpoint record, or one that does not match.
	CodeRecordMissing uint = 111
	// CodeDaemonUnreachable: CHECK could not reach bgplbd.
	CodeDaemonUnreachable uint = 112
	// CodeNotRegistered: CHECK reached bgplbd, but it does not know the endpoint.
	CodeNotRegistered uint = 113
	// CodeDetachFailed: DEL or GC could not remove a pin (a real error, e.g. EPERM; a
	// missing pin is not an error).
	CodeDetachFailed uint = 114
	// CodeDatapathNotReady: CHECK found the endpoint recorded as not datapath-ready (ADD
	// could not attach the pod program or bgplbd refused it); the details say why.
	CodeDatapathNotReady uint = 115
)

// ErrNotChained is returned (code 7, types.ErrInvalidNetworkConfig) when there is no
// prevResult: the plugin must come after the primary CNI plugin in a conflist.
var ErrNotChained = errors.New("must be called as chained plugin")

// cniError returns a CNI error with code, message msg and err as details.
func cniError(code uint, msg string, err error) *types.Error {
	details := ""
	if err != nil {
		details = err.Error()
	}
	return types.NewError(code, msg, details)
}
