package kubelet

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reasons, as the kubelet reports them.
const (
	reasonContainerCreating  = "ContainerCreating"
	reasonContainersNotReady = "ContainersNotReady"
	reasonCrashLoopBackOff   = "CrashLoopBackOff"
)

// podView is what the kubelet knows about a pod; buildStatus turns it into a PodStatus.
type podView struct {
	// SetupError, when set, is why the pod's network or process could not be set up.
	SetupError string
	// Running: the process has answered its readiness endpoint at least once.
	Running bool
	// Ready is the probe-thresholded readiness.
	Ready          bool
	IPs            []netip.Addr
	StartTime      time.Time
	ProcessStarted time.Time
	RestartCount   int32
	ContainerID    string
}

// apiTime converts to the API's resolution (seconds, UTC) so a status read back
// from the server compares equal to the one we built.
func apiTime(t time.Time) metav1.Time { return metav1.NewTime(t.UTC().Truncate(time.Second)) }

// managedConditions are the condition types this kubelet owns.
var managedConditions = []corev1.PodConditionType{
	corev1.PodScheduled,
	corev1.PodReadyToStartContainers,
	corev1.PodInitialized,
	corev1.ContainersReady,
	corev1.PodReady,
}

// buildStatus computes the desired status of pod. Conditions keep their
// lastTransitionTime while their status is unchanged; conditions owned by
// others (DisruptionTarget, readiness gates) are kept as they are.
func buildStatus(pod *corev1.Pod, nodeIPs []netip.Addr, v podView, now time.Time) corev1.PodStatus {
	st := corev1.PodStatus{Phase: corev1.PodPending}
	// A pod whose process ran before stays Running while it is restarted.
	restarting := !v.Running && v.RestartCount > 0
	if v.Running || restarting {
		st.Phase = corev1.PodRunning
	}
	if !v.StartTime.IsZero() {
		t := apiTime(v.StartTime)
		st.StartTime = &t
	}
	for _, ip := range nodeIPs {
		st.HostIPs = append(st.HostIPs, corev1.HostIP{IP: ip.String()})
	}
	if len(st.HostIPs) > 0 {
		st.HostIP = st.HostIPs[0].IP
	}
	for _, ip := range v.IPs {
		st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip.String()})
	}
	if len(st.PodIPs) > 0 {
		st.PodIP = st.PodIPs[0].IP
	}

	var names []string
	for i, c := range pod.Spec.Containers {
		names = append(names, c.Name)
		cs := corev1.ContainerStatus{
			Name:         c.Name,
			Image:        c.Image,
			ImageID:      "bgplb-lab/podserver@" + c.Image,
			RestartCount: v.RestartCount,
		}
		switch {
		case v.Running:
			started := true
			cs.Started = &started
			cs.Ready = v.Ready
			cs.ContainerID = fmt.Sprintf("bgplb-lab://%s-%d", v.ContainerID, i)
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: apiTime(v.ProcessStarted)}
		case restarting:
			started := false
			cs.Started = &started
			msg := "back-off restarting the pod process"
			if v.SetupError != "" {
				msg = v.SetupError
			}
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reasonCrashLoopBackOff, Message: msg}
		default:
			started := false
			cs.Started = &started
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reasonContainerCreating, Message: v.SetupError}
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}

	ready := v.Running && v.Ready
	notReadyMsg := fmt.Sprintf("containers with unready status: [%s]", strings.Join(names, " "))
	if v.SetupError != "" {
		notReadyMsg = v.SetupError
	}
	want := map[corev1.PodConditionType]corev1.PodCondition{
		corev1.PodScheduled:              {Status: corev1.ConditionTrue},
		corev1.PodReadyToStartContainers: {Status: boolCondition(len(v.IPs) > 0 || pod.Spec.HostNetwork && v.Running)},
		corev1.PodInitialized:            {Status: corev1.ConditionTrue},
		corev1.ContainersReady:           {Status: boolCondition(ready)},
		corev1.PodReady:                  {Status: boolCondition(ready)},
	}
	for _, t := range []corev1.PodConditionType{corev1.ContainersReady, corev1.PodReady} {
		if !ready {
			c := want[t]
			c.Reason, c.Message = reasonContainersNotReady, notReadyMsg
			want[t] = c
		}
	}
	existing := map[corev1.PodConditionType]corev1.PodCondition{}
	for _, c := range pod.Status.Conditions {
		existing[c.Type] = c
	}
	for _, t := range managedConditions {
		c := want[t]
		c.Type = t
		c.LastTransitionTime = apiTime(now)
		if old, ok := existing[t]; ok && old.Status == c.Status && !old.LastTransitionTime.IsZero() {
			c.LastTransitionTime = old.LastTransitionTime
		}
		st.Conditions = append(st.Conditions, c)
	}
	for _, c := range pod.Status.Conditions {
		if !isManaged(c.Type) {
			st.Conditions = append(st.Conditions, c)
		}
	}
	return st
}

func boolCondition(b bool) corev1.ConditionStatus {
	if b {
		return corev1.ConditionTrue
	}
	return corev1.ConditionFalse
}

func isManaged(t corev1.PodConditionType) bool {
	for _, m := range managedConditions {
		if m == t {
			return true
		}
	}
	return false
}

// statusUpToDate reports whether the pod already shows every field of want.
func statusUpToDate(have, want corev1.PodStatus) bool {
	return have.Phase == want.Phase &&
		equality.Semantic.DeepEqual(have.StartTime, want.StartTime) &&
		have.HostIP == want.HostIP && equality.Semantic.DeepEqual(have.HostIPs, want.HostIPs) &&
		have.PodIP == want.PodIP && equality.Semantic.DeepEqual(have.PodIPs, want.PodIPs) &&
		equality.Semantic.DeepEqual(have.Conditions, want.Conditions) &&
		equality.Semantic.DeepEqual(have.ContainerStatuses, want.ContainerStatuses)
}

// statusPatch is a JSON merge patch setting the status fields we own; fields
// we do not set (qosClass, nominatedNodeName, ...) are left alone.
func statusPatch(want corev1.PodStatus) ([]byte, error) {
	data, err := json.Marshal(map[string]any{"status": want})
	if err != nil {
		return nil, fmt.Errorf("encode pod status patch: %w", err)
	}
	return data, nil
}

// isReady reports the pod's Ready condition.
func isReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
