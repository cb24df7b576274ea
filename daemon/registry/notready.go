package registry

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bgplb/bgplb/daemon/registry/api"
)

// EventRecorder is the part of client-go's record.EventRecorder that ReportNotReady uses.
type EventRecorder interface {
	// Eventf records an event about object; it must not block.
	Eventf(object runtime.Object, eventtype, reason, messageFmt string, args ...any)
}

// ReasonDatapathNotReady is the reason of the Warning event on a pod whose endpoint the
// CNI plugin recorded as not datapath-ready.
const ReasonDatapathNotReady = "DatapathNotReady"

// ReportNotReady keeps set(n) at the number of registered endpoints that are not
// datapath-ready (api.Endpoint.DatapathError) and records a Warning event on the pod of
// each endpoint that is, or becomes, not datapath-ready (rec may be nil). It covers the
// endpoints registered now and every later change, until cancel is called.
func (r *Registry) ReportNotReady(rec EventRecorder, set func(float64)) (cancel func()) {
	var (
		mu       sync.Mutex
		notReady = map[string]string{} // Key() -> DatapathError
	)
	update := func(ep api.Endpoint, deleted bool) {
		mu.Lock()
		defer mu.Unlock()
		old, was := notReady[ep.Key()]
		switch {
		case deleted || ep.DatapathReady():
			delete(notReady, ep.Key())
		default:
			notReady[ep.Key()] = ep.DatapathError
			if rec != nil && ep.PodName != "" && (!was || old != ep.DatapathError) {
				ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: ep.PodNamespace,
					Name: ep.PodName, UID: types.UID(ep.PodUID)}
				rec.Eventf(ref, corev1.EventTypeWarning, ReasonDatapathNotReady,
					"bgplb's datapath cannot serve this pod on %s, so the node does not announce its Services: %s", ep.HostIfName, ep.DatapathError)
			}
		}
		set(float64(len(notReady)))
	}
	cancel = r.Subscribe(update)
	set(0)
	for _, ep := range r.List() {
		update(ep, false)
	}
	return cancel
}
