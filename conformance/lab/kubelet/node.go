package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

const (
	// heartbeatPeriod is how often the Ready condition and the Lease are renewed.
	heartbeatPeriod = 10 * time.Second
	// leaseDuration is the Lease's validity, as the kubelet's default.
	leaseDuration = 40
	// kubeletVersion is reported in nodeInfo (the lab runs v1.36 components).
	kubeletVersion = "v1.36.3-bgplb-lab"
	leaseNamespace = corev1.NamespaceNodeLease
)

// nodeObject builds the Node the lab kubelet registers.
func nodeObject(cfg Config) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: cfg.NodeName,
			Labels: map[string]string{
				corev1.LabelHostname:   cfg.NodeName,
				corev1.LabelOSStable:   "linux",
				corev1.LabelArchStable: runtime.GOARCH,
			},
		},
	}
	for _, p := range cfg.PodCIDRs {
		n.Spec.PodCIDRs = append(n.Spec.PodCIDRs, p.String())
	}
	if len(n.Spec.PodCIDRs) > 0 {
		n.Spec.PodCIDR = n.Spec.PodCIDRs[0]
	}
	return n
}

// nodeStatus builds the full Node status; readySince is the Ready condition's
// lastTransitionTime.
func nodeStatus(cfg Config, readySince, now time.Time) corev1.NodeStatus {
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("4"),
		corev1.ResourceMemory: resource.MustParse("8Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	st := corev1.NodeStatus{
		Capacity:    res,
		Allocatable: res.DeepCopy(),
		Phase:       corev1.NodeRunning,
		Conditions:  []corev1.NodeCondition{readyCondition(readySince, now)},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               machineID(),
			SystemUUID:              cfg.NodeName,
			BootID:                  readTrim("/proc/sys/kernel/random/boot_id"),
			KernelVersion:           kernelVersion(),
			OSImage:                 osImage(),
			ContainerRuntimeVersion: "bgplb-lab://podserver",
			KubeletVersion:          kubeletVersion,
			OperatingSystem:         "linux",
			Architecture:            runtime.GOARCH,
		},
	}
	for _, ip := range cfg.NodeIPs {
		st.Addresses = append(st.Addresses, corev1.NodeAddress{Type: corev1.NodeInternalIP, Address: ip.String()})
	}
	st.Addresses = append(st.Addresses, corev1.NodeAddress{Type: corev1.NodeHostName, Address: cfg.NodeName})
	return st
}

func readyCondition(since, now time.Time) corev1.NodeCondition {
	return corev1.NodeCondition{
		Type:               corev1.NodeReady,
		Status:             corev1.ConditionTrue,
		Reason:             "KubeletReady",
		Message:            "bgplb lab kubelet is posting ready status",
		LastHeartbeatTime:  apiTime(now),
		LastTransitionTime: apiTime(since),
	}
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func machineID() string {
	if id := readTrim("/etc/machine-id"); id != "" {
		return id
	}
	return "bgplb-lab"
}

func kernelVersion() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

func osImage() string {
	for _, line := range strings.Split(readTrim("/etc/os-release"), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return "Linux"
}

// registerNode creates the Node or, when it exists (a kubelet restart), brings
// its labels and status up to date. spec.podCIDRs cannot change once set; a
// mismatch is logged.
func registerNode(ctx context.Context, client kubernetes.Interface, cfg Config, readySince time.Time) (*corev1.Node, error) {
	logger := klog.FromContext(ctx)
	want := nodeObject(cfg)
	node, err := client.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		node, err = client.CoreV1().Nodes().Get(ctx, cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("get node %s: %w", cfg.NodeName, err)
		}
		changed := false
		if node.Labels == nil {
			node.Labels = map[string]string{}
		}
		for k, v := range want.Labels {
			if node.Labels[k] != v {
				node.Labels[k] = v
				changed = true
			}
		}
		if len(node.Spec.PodCIDRs) == 0 && len(want.Spec.PodCIDRs) > 0 {
			node.Spec.PodCIDR, node.Spec.PodCIDRs = want.Spec.PodCIDR, want.Spec.PodCIDRs
			changed = true
		} else if strings.Join(node.Spec.PodCIDRs, ",") != strings.Join(want.Spec.PodCIDRs, ",") {
			logger.Info("node has different pod CIDRs than configured; keeping the node's", "have", node.Spec.PodCIDRs, "want", want.Spec.PodCIDRs)
		}
		if changed {
			if node, err = client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
				return nil, fmt.Errorf("update node %s: %w", cfg.NodeName, err)
			}
		}
	case err != nil:
		return nil, fmt.Errorf("create node %s: %w", cfg.NodeName, err)
	}
	node.Status = nodeStatus(cfg, readySince, time.Now())
	node, err = client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("update node %s status: %w", cfg.NodeName, err)
	}
	if node, err = clearConditionTaints(ctx, client, node); err != nil {
		return nil, err
	}
	logger.Info("node registered", "podCIDRs", node.Spec.PodCIDRs, "addresses", node.Status.Addresses)
	return node, nil
}

// heartbeat renews the Ready condition (strategic merge by condition type) and the Lease.
func heartbeat(ctx context.Context, client kubernetes.Interface, node *corev1.Node, readySince time.Time) error {
	now := time.Now()
	patch, err := json.Marshal(map[string]any{"status": map[string]any{
		"conditions": []corev1.NodeCondition{readyCondition(readySince, now)},
	}})
	if err != nil {
		return fmt.Errorf("encode node heartbeat: %w", err)
	}
	patched, err := client.CoreV1().Nodes().Patch(ctx, node.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("patch node %s heartbeat: %w", node.Name, err)
	}
	if _, err := clearConditionTaints(ctx, client, patched); err != nil {
		return err
	}
	return renewLease(ctx, client, node, now)
}

// conditionTaints are the taints the node lifecycle controller keeps in line
// with the Ready condition. The API server's TaintNodesByCondition admission
// adds not-ready to every new Node; the lab runs no node lifecycle controller,
// so the lab kubelet, which alone knows the node is ready, removes them.
var conditionTaints = map[string]bool{
	corev1.TaintNodeNotReady:    true,
	corev1.TaintNodeUnreachable: true,
}

// clearConditionTaints removes conditionTaints from the node, if it has any.
func clearConditionTaints(ctx context.Context, client kubernetes.Interface, node *corev1.Node) (*corev1.Node, error) {
	for attempt := 0; ; attempt++ {
		var keep []corev1.Taint
		for _, t := range node.Spec.Taints {
			if !conditionTaints[t.Key] {
				keep = append(keep, t)
			}
		}
		if len(keep) == len(node.Spec.Taints) {
			return node, nil
		}
		n := node.DeepCopy()
		n.Spec.Taints = keep
		updated, err := client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		if err == nil {
			klog.FromContext(ctx).Info("removed node condition taints", "taints", len(node.Spec.Taints)-len(keep))
			return updated, nil
		}
		if !apierrors.IsConflict(err) || attempt >= 5 {
			return nil, fmt.Errorf("remove condition taints from node %s: %w", node.Name, err)
		}
		name := node.Name
		if node, err = client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{}); err != nil {
			return nil, fmt.Errorf("get node %s: %w", name, err)
		}
	}
}

// renewLease creates or renews the node's Lease in kube-node-lease.
func renewLease(ctx context.Context, client kubernetes.Interface, node *corev1.Node, now time.Time) error {
	leases := client.CoordinationV1().Leases(leaseNamespace)
	renew := metav1.NewMicroTime(now)
	lease, err := leases.Get(ctx, node.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name:      node.Name,
				Namespace: leaseNamespace,
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID,
				}},
			},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(node.Name),
				LeaseDurationSeconds: ptr.To[int32](leaseDuration),
				RenewTime:            &renew,
			},
		}
		if _, err := leases.Create(ctx, lease, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create lease %s/%s: %w", leaseNamespace, node.Name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get lease %s/%s: %w", leaseNamespace, node.Name, err)
	}
	lease.Spec.HolderIdentity = ptr.To(node.Name)
	lease.Spec.LeaseDurationSeconds = ptr.To[int32](leaseDuration)
	lease.Spec.RenewTime = &renew
	if _, err := leases.Update(ctx, lease, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("renew lease %s/%s: %w", leaseNamespace, node.Name, err)
	}
	return nil
}
