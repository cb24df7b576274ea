package status

// The DatapathNotReady hook (issue 16): a node that does not announce a Service because
// its local endpoints are not datapath-ready (the CNI plugin could not attach the pod
// program, see daemon/eligibility/plugins/datapathready) says so in an annotation of its
// BGPNodeState; the leader's Announced condition then names the reason. It is an
// annotation, not a status field, so that the BGPNodeState API does not change until the
// status redesign gives it a home.

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bgplb/bgplb/daemon/eligibility/plugins/datapathready"
)

// AnnotationDatapathNotReady holds, on a node's BGPNodeState, a JSON object
// {"namespace/name": "message"} of the Services the node does not announce because local
// endpoints are not datapath-ready. Absent when there are none.
const AnnotationDatapathNotReady = "bgplb.io/datapath-not-ready"

// datapathNotReady returns the annotation value for the announcer's state ("" for none).
func datapathNotReady(ann AnnounceSource) string {
	states, _ := ann.State()
	m := map[string]string{}
	// The announcer reports an ineligible Service as NoEligibleEndpoints with the
	// eligibility reason as the message's prefix ("DatapathNotReady: ...").
	prefix := datapathready.ReasonDatapathNotReady + ": "
	for _, s := range states {
		if msg, ok := strings.CutPrefix(s.Message, prefix); ok || s.Reason == datapathready.ReasonDatapathNotReady {
			if !ok {
				msg = s.Message
			}
			m[s.Key] = msg
		}
	}
	if len(m) == 0 {
		return ""
	}
	b, _ := json.Marshal(m) // a map of strings always marshals
	return string(b)
}

// syncDatapathAnnotation writes the annotation on the node's BGPNodeState when it changed.
func (w *NodeStateWriter) syncDatapathAnnotation(ctx context.Context) error {
	want := datapathNotReady(w.announce)
	api := w.client.BgplbV1alpha1().BGPNodeStates()
	cur, err := api.Get(ctx, w.node, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get bgpnodestate %s: %w", w.node, err)
	}
	if cur.Annotations[AnnotationDatapathNotReady] == want {
		return nil
	}
	upd := cur.DeepCopy()
	if want == "" {
		delete(upd.Annotations, AnnotationDatapathNotReady)
	} else {
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		upd.Annotations[AnnotationDatapathNotReady] = want
	}
	if _, err := api.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update %s annotation of bgpnodestate %s: %w", AnnotationDatapathNotReady, w.node, err)
	}
	return nil
}

// parseDatapathNotReady decodes the annotation (nil when absent or unreadable).
func parseDatapathNotReady(annotations map[string]string) map[string]string {
	v, ok := annotations[AnnotationDatapathNotReady]
	if !ok {
		return nil
	}
	var m map[string]string
	if json.Unmarshal([]byte(v), &m) != nil {
		return nil
	}
	return m
}

// datapathNotReadyNodes returns "node: message" for every node that holds Service key
// back because its endpoints are not datapath-ready, sorted by node.
func (idx nodeStateIndex) datapathNotReadyNodes(key string) []string {
	var out []string
	for _, s := range idx.nodes {
		if msg, ok := s.datapathNotReady[key]; ok {
			out = append(out, s.Name+": "+msg)
		}
	}
	return out
}

// datapathNotReadyChanges returns the Service keys whose entry differs between a and b.
func datapathNotReadyChanges(a, b map[string]string, keys []string) []string {
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if v, ok := b[k]; !ok || v != a[k] {
			keys = append(keys, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	return keys
}

// datapathNotReadyMessage is the Announced message part naming those nodes.
func datapathNotReadyMessage(nodes []string) string {
	return fmt.Sprintf("%d node(s) hold it back because local endpoints are not datapath-ready: %s", len(nodes), strings.Join(nodes, "; "))
}

// syncDatapathAnnotationIfChanged calls syncDatapathAnnotation when the value differs from
// the one last written (the common case, nothing held back, costs no API call).
func (w *NodeStateWriter) syncDatapathAnnotationIfChanged(ctx context.Context) error {
	gen := w.announce.Generation()
	if w.lastDatapathNotReady != nil && gen == w.lastDatapathGen {
		return nil // the announcer's state did not change
	}
	want := datapathNotReady(w.announce)
	if w.lastDatapathNotReady != nil && *w.lastDatapathNotReady == want {
		w.lastDatapathGen = gen
		return nil
	}
	if err := w.syncDatapathAnnotation(ctx); err != nil {
		return err
	}
	w.lastDatapathNotReady, w.lastDatapathGen = &want, gen
	return nil
}
