package kubelet

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func testPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: "web-1", UID: "0b7c5a3e-1f2d-4c6b-9a8e-7d6c5b4a3f21"},
		Spec: corev1.PodSpec{
			NodeName: "node1",
			Containers: []corev1.Container{
				{Name: "app", Image: "registry.example/app:1", Ports: []corev1.ContainerPort{
					{ContainerPort: 8080}, {ContainerPort: 5353, Protocol: corev1.ProtocolUDP},
					{ContainerPort: 9090, Protocol: corev1.ProtocolTCP}, {ContainerPort: 8080, Protocol: corev1.ProtocolTCP},
					{ContainerPort: 3868, Protocol: corev1.ProtocolSCTP},
				}, Env: []corev1.EnvVar{{Name: "SHUTDOWN_DELAY", Value: "5"}, {Name: "FROM_FIELD", ValueFrom: &corev1.EnvVarSource{}}}},
				{Name: "side", Image: "registry.example/side:1", Ports: []corev1.ContainerPort{{ContainerPort: 5353, Protocol: corev1.ProtocolTCP}},
					Env: []corev1.EnvVar{{Name: "SHUTDOWN_DELAY", Value: "7"}, {Name: "X", Value: "y"}}},
			},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodPending,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))},
				{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "Test"},
			},
			QOSClass: corev1.PodQOSBestEffort,
		},
	}
}

func TestIdentities(t *testing.T) {
	uid := types.UID("0B7C5A3E-1f2d-4c6b-9a8e-7d6c5b4a3f21")
	if got, want := containerIDFor(uid), "0b7c5a3e1f2d4c6b9a8e7d6c5b4a3f21"; got != want {
		t.Errorf("containerIDFor = %q, want %q", got, want)
	}
	if got, want := netnsNameFor("node1", uid), "bgplb-pod-node1-0b7c5a3e1f2d"; got != want {
		t.Errorf("netnsNameFor = %q, want %q", got, want)
	}
	rec := podRecord{UID: uid, Namespace: "ns1", Name: "web-1", ContainerID: containerIDFor(uid), Netns: "bgplb-pod-node1-0b7c5a3e1f2d"}
	rt := runtimeConf(rec.attachment())
	if rt.ContainerID != rec.ContainerID || rt.NetNS != "/run/netns/bgplb-pod-node1-0b7c5a3e1f2d" || rt.IfName != "eth0" {
		t.Errorf("runtime conf identity = %+v", rt)
	}
	args := map[string]string{}
	for _, a := range rt.Args {
		args[a[0]] = a[1]
	}
	want := map[string]string{
		"IgnoreUnknown": "1", "K8S_POD_NAMESPACE": "ns1", "K8S_POD_NAME": "web-1",
		"K8S_POD_INFRA_CONTAINER_ID": rec.ContainerID, "K8S_POD_UID": string(uid),
	}
	if !reflect.DeepEqual(args, want) {
		t.Errorf("CNI args = %v, want %v", args, want)
	}
}

func TestSpecForPod(t *testing.T) {
	s := specForPod(testPod(), "/opt/podserver", "bgplb-pod-x", "/tmp/x.log")
	if !slices.Equal(s.TCP, []int{8080, 9090, 5353}) || !slices.Equal(s.UDP, []int{5353}) {
		t.Errorf("ports tcp=%v udp=%v", s.TCP, s.UDP)
	}
	wantArgv := []string{"ip", "netns", "exec", "bgplb-pod-x", "/opt/podserver", "--name", "web-1", "--tcp", "8080,9090,5353", "--udp", "5353"}
	if !slices.Equal(s.argv(), wantArgv) {
		t.Errorf("argv = %q, want %q", s.argv(), wantArgv)
	}
	env := strings.Join(s.Env, " ")
	if !strings.Contains(env, "SHUTDOWN_DELAY=7") || strings.Contains(env, "SHUTDOWN_DELAY=5") || !strings.Contains(env, "X=y") ||
		!strings.Contains(env, "HOSTNAME=web-1") || strings.Contains(env, "FROM_FIELD") {
		t.Errorf("env = %q", s.Env)
	}

	noPorts := testPod()
	noPorts.Spec.Containers = []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{ContainerPort: 53, Protocol: corev1.ProtocolUDP}}}}
	s = specForPod(noPorts, "/opt/podserver", "", "/tmp/x.log")
	if !slices.Equal(s.TCP, []int{defaultPort}) || !slices.Equal(s.UDP, []int{53}) {
		t.Errorf("UDP-only pod: tcp=%v udp=%v, want tcp [8080] udp [53]", s.TCP, s.UDP)
	}
	if s.argv()[0] != "/opt/podserver" {
		t.Errorf("hostNetwork argv = %q, want the server run directly", s.argv())
	}
}

func TestReadinessThresholds(t *testing.T) {
	var r readiness
	steps := []struct {
		ok          bool
		wantReady   bool
		wantChanged bool
	}{
		{false, false, false},
		{true, true, true}, // one success is enough
		{true, true, false},
		{false, true, false},
		{false, true, false},
		{true, true, false}, // a success resets the failure count
		{false, true, false},
		{false, true, false},
		{false, false, true}, // third consecutive failure
		{false, false, false},
		{true, true, true},
	}
	for i, s := range steps {
		changed := r.observe(s.ok)
		if r.ready != s.wantReady || changed != s.wantChanged {
			t.Fatalf("step %d (ok=%v): ready=%v changed=%v, want ready=%v changed=%v", i, s.ok, r.ready, changed, s.wantReady, s.wantChanged)
		}
	}
}

func condition(st corev1.PodStatus, typ corev1.PodConditionType) *corev1.PodCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			return &st.Conditions[i]
		}
	}
	return nil
}

// roundTrip simulates what the API server stores and the informer returns.
func roundTrip(t *testing.T, st corev1.PodStatus) corev1.PodStatus {
	t.Helper()
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var out corev1.PodStatus
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBuildStatus(t *testing.T) {
	nodeIPs := []netip.Addr{netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("2001:db8:f::11")}
	t0 := time.Date(2026, 11, 22, 3, 0, 0, 123456789, time.UTC)
	pod := testPod()

	// Setup failing: Pending, waiting ContainerCreating with the error, Ready False with the message.
	st := buildStatus(pod, nodeIPs, podView{SetupError: "add pod network: boom", StartTime: t0}, t0)
	if st.Phase != corev1.PodPending {
		t.Errorf("phase = %s, want Pending", st.Phase)
	}
	if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "ContainerCreating" || w.Message != "add pod network: boom" {
		t.Errorf("waiting state = %+v", st.ContainerStatuses[0].State)
	}
	if c := condition(st, corev1.PodReady); c == nil || c.Status != corev1.ConditionFalse || c.Message != "add pod network: boom" {
		t.Errorf("Ready condition = %+v", c)
	}
	if st.HostIP != "198.18.0.11" || len(st.HostIPs) != 2 || st.PodIP != "" {
		t.Errorf("hostIP=%q hostIPs=%v podIP=%q", st.HostIP, st.HostIPs, st.PodIP)
	}

	// Running and ready.
	pod.Status = roundTrip(t, st)
	pod.Status.QOSClass = corev1.PodQOSBestEffort
	v := podView{Running: true, Ready: true, StartTime: t0, ProcessStarted: t0.Add(time.Second), ContainerID: "abc",
		IPs: []netip.Addr{netip.MustParseAddr("198.19.1.5"), netip.MustParseAddr("2001:db8:1:1::5")}}
	t1 := t0.Add(3 * time.Second)
	st = buildStatus(pod, nodeIPs, v, t1)
	if st.Phase != corev1.PodRunning || st.PodIP != "198.19.1.5" || len(st.PodIPs) != 2 || st.PodIPs[1].IP != "2001:db8:1:1::5" {
		t.Errorf("phase=%s podIP=%s podIPs=%v", st.Phase, st.PodIP, st.PodIPs)
	}
	for _, typ := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		if c := condition(st, typ); c == nil || c.Status != corev1.ConditionTrue {
			t.Errorf("condition %s = %+v, want True", typ, c)
		}
	}
	if c := condition(st, corev1.PodReady); !c.LastTransitionTime.Time.Equal(t1.Truncate(time.Second)) {
		t.Errorf("Ready transition time = %s, want %s", c.LastTransitionTime, t1)
	}
	if c := condition(st, corev1.PodScheduled); !c.LastTransitionTime.Time.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("PodScheduled transition time changed: %s", c.LastTransitionTime)
	}
	if c := condition(st, corev1.DisruptionTarget); c == nil || c.Reason != "Test" {
		t.Errorf("foreign condition not kept: %+v", st.Conditions)
	}
	if len(st.ContainerStatuses) != 2 {
		t.Fatalf("container statuses = %d, want 2", len(st.ContainerStatuses))
	}
	for _, cs := range st.ContainerStatuses {
		if !cs.Ready || cs.Started == nil || !*cs.Started || cs.State.Running == nil || cs.RestartCount != 0 || cs.ImageID == "" || cs.ContainerID == "" {
			t.Errorf("container status = %+v", cs)
		}
	}
	if st.StartTime == nil || !st.StartTime.Time.Equal(t0.Truncate(time.Second)) {
		t.Errorf("startTime = %v", st.StartTime)
	}

	// What the server returns equals what we want: no further patch.
	pod.Status = roundTrip(t, st)
	pod.Status.QOSClass = corev1.PodQOSBestEffort
	again := buildStatus(pod, nodeIPs, v, t1.Add(10*time.Second))
	if !statusUpToDate(pod.Status, again) {
		t.Errorf("status read back is not up to date:\nhave %+v\nwant %+v", pod.Status, again)
	}

	// Not ready: Ready/ContainersReady flip with a new transition time, others keep theirs.
	v.Ready = false
	t2 := t1.Add(20 * time.Second)
	st = buildStatus(pod, nodeIPs, v, t2)
	if statusUpToDate(pod.Status, st) {
		t.Error("not-ready status reported as up to date")
	}
	c := condition(st, corev1.PodReady)
	if c.Status != corev1.ConditionFalse || c.Reason != "ContainersNotReady" || !c.LastTransitionTime.Time.Equal(t2.Truncate(time.Second)) {
		t.Errorf("Ready after probe failure = %+v", c)
	}
	if c := condition(st, corev1.PodInitialized); !c.LastTransitionTime.Time.Equal(t1.Truncate(time.Second)) && !c.LastTransitionTime.Time.Equal(t0.Truncate(time.Second)) {
		t.Errorf("Initialized transition time moved: %s", c.LastTransitionTime)
	}
	if st.Phase != corev1.PodRunning || st.ContainerStatuses[0].Ready {
		t.Errorf("phase=%s ready=%v", st.Phase, st.ContainerStatuses[0].Ready)
	}

	// The patch carries the status only and leaves qosClass alone.
	patch, err := statusPatch(st)
	if err != nil {
		t.Fatal(err)
	}
	var decoded map[string]map[string]any
	if err := json.Unmarshal(patch, &decoded); err != nil {
		t.Fatal(err)
	}
	if len(decoded) != 1 || decoded["status"]["phase"] != "Running" || decoded["status"]["qosClass"] != nil {
		t.Errorf("patch = %s", patch)
	}
}

func TestStateStore(t *testing.T) {
	s := stateStore{Dir: filepath.Join(t.TempDir(), "pods")}
	if recs, err := s.list(); err != nil || len(recs) != 0 {
		t.Fatalf("empty store: %v %v", recs, err)
	}
	r := podRecord{UID: "u1", Namespace: "ns", Name: "p", ContainerID: "c1", Netns: "bgplb-pod-n-u1",
		IPs: []netip.Addr{netip.MustParseAddr("198.19.1.2")}, StartTime: time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC), RestartCount: 2}
	if err := s.put(r); err != nil {
		t.Fatal(err)
	}
	if err := s.put(podRecord{UID: "u2", Name: "q"}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "broken.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, err := s.list()
	if err == nil || !strings.Contains(err.Error(), "broken.json") {
		t.Errorf("list error = %v, want one naming broken.json", err)
	}
	if len(recs) != 2 {
		t.Fatalf("records = %+v, want 2", recs)
	}
	got := recs[slices.IndexFunc(recs, func(x podRecord) bool { return x.UID == "u1" })]
	if !reflect.DeepEqual(got, r) {
		t.Errorf("record = %+v, want %+v", got, r)
	}
	if pid, err := s.readPID("u1"); pid != 0 || err != nil {
		t.Errorf("readPID without file = %d %v", pid, err)
	}
	if err := s.writePID("u1", 4242, "/opt/podserver"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(s.Dir, "u1.pid"))
	if err != nil || string(data) != "4242\n/opt/podserver\n" {
		t.Errorf("PID file = %q %v", data, err)
	}
	if pid, err := s.readPID("u1"); pid != 4242 || err != nil {
		t.Errorf("readPID = %d %v", pid, err)
	}
	if err := os.WriteFile(s.logPath("u1"), []byte("log"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.remove("u1"); err != nil {
		t.Fatal(err)
	}
	if err := s.remove("u1"); err != nil {
		t.Errorf("second remove: %v", err)
	}
	for _, p := range []string{s.recordPath("u1"), s.pidPath("u1"), s.logPath("u1")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still exists (%v)", p, err)
		}
	}
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{}.validate()
	if err == nil {
		t.Fatal("empty config accepted")
	}
	for _, want := range []string{"node name", "kubeconfig", "node IPs", "CNI configuration directory", "state directory", "podserver path"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestBuildStatusRestarting(t *testing.T) {
	pod := testPod()
	v := podView{RestartCount: 2, StartTime: time.Now(), IPs: []netip.Addr{netip.MustParseAddr("198.19.1.5")}}
	st := buildStatus(pod, []netip.Addr{netip.MustParseAddr("198.18.0.11")}, v, time.Now())
	if st.Phase != corev1.PodRunning {
		t.Errorf("phase of a restarting pod = %s, want Running", st.Phase)
	}
	cs := st.ContainerStatuses[0]
	if cs.Ready || cs.RestartCount != 2 || cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" {
		t.Errorf("container status of a restarting pod = %+v", cs)
	}
	if c := condition(st, corev1.PodReady); c.Status != corev1.ConditionFalse {
		t.Errorf("Ready of a restarting pod = %s", c.Status)
	}
}
