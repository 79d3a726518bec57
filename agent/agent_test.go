package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// clock is a settable time for the simulated runtime.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newSim(o SimulatedOptions) (*Simulated, *clock) {
	s := NewSimulated(o)
	c := &clock{t: time.Unix(1_800_000_000, 0)}
	s.now = c.now
	return s, c
}

var testNode = Node{Name: "n1", InternalIP: "192.168.1.10", PodCIDR: "10.64.0.0/24"}

func simPodSpec(name string, ann map[string]string, containers ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Annotations: ann},
		Spec: corev1.PodSpec{NodeName: "n1", RestartPolicy: corev1.RestartPolicyAlways}}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: "busybox:1.36"})
	}
	return p
}

// syncStatus runs the runtime and the agent's status computation once,
// and stores the result in the pod, as the API server would.
func syncStatus(t *testing.T, s *Simulated, pod *corev1.Pod) *PodStatus {
	t.Helper()
	rs, err := s.SyncPod(context.Background(), testNode, pod)
	if err != nil {
		t.Fatal(err)
	}
	pod.Status = apiStatus(pod, &testNode, rs, false)
	return rs
}

func condition(p *corev1.Pod, ct corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == ct {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func TestSimulatedRunsAndReportsAsKubelet(t *testing.T) {
	s, _ := newSim(SimulatedOptions{})
	pod := simPodSpec("web", nil, "app", "sidecar")
	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
	rs := syncStatus(t, s, pod)
	st := pod.Status
	if st.Phase != corev1.PodRunning {
		t.Fatalf("phase %s, want Running", st.Phase)
	}
	if st.PodIP != "10.64.0.1" || len(st.PodIPs) != 1 || st.HostIP != "192.168.1.10" || len(st.HostIPs) != 1 || st.StartTime == nil {
		t.Errorf("addresses: podIP %q podIPs %v hostIP %q hostIPs %v start %v", st.PodIP, st.PodIPs, st.HostIP, st.HostIPs, st.StartTime)
	}
	if st.QOSClass != corev1.PodQOSBurstable {
		t.Errorf("qos %s, want Burstable (one container without limits)", st.QOSClass)
	}
	var types []string
	for _, c := range st.Conditions {
		types = append(types, string(c.Type)+"="+string(c.Status))
		if c.LastTransitionTime.IsZero() {
			t.Errorf("condition %s has no transition time", c.Type)
		}
	}
	if got := strings.Join(types, ","); got != "PodReadyToStartContainers=True,Initialized=True,Ready=True,ContainersReady=True,PodScheduled=True" {
		t.Errorf("conditions %s", got)
	}
	if len(st.ContainerStatuses) != 2 {
		t.Fatalf("container statuses: %d", len(st.ContainerStatuses))
	}
	cs := st.ContainerStatuses[0]
	if cs.State.Running == nil || !cs.Ready || cs.Started == nil || !*cs.Started || cs.RestartCount != 0 ||
		!strings.HasPrefix(cs.ContainerID, "simulated://") || cs.Image != "docker.io/library/busybox:1.36" ||
		!strings.HasPrefix(cs.ImageID, "docker.io/library/busybox@sha256:") {
		t.Errorf("container status %+v", cs)
	}
	var reasons []string
	for _, e := range rs.Events {
		reasons = append(reasons, e.Reason)
	}
	if strings.Join(reasons, ",") != "Pulled,Created,Started,Pulled,Created,Started" {
		t.Errorf("events %v", reasons)
	}
	// Nothing changes on a second sync: the agent writes nothing.
	before := pod.Status.DeepCopy()
	rs2, _ := s.SyncPod(context.Background(), testNode, pod)
	after := apiStatus(pod, &testNode, rs2, false)
	if !statusEqual(before, &after) || len(rs2.Events) != 0 {
		t.Errorf("second sync changed the status or made events")
	}
}

func TestSimulatedDelaysAndReadiness(t *testing.T) {
	s, clk := newSim(SimulatedOptions{})
	pod := simPodSpec("slow", map[string]string{AnnStartDelay: "2s", AnnReadyDelay: "3s"}, "c")
	syncStatus(t, s, pod)
	if pod.Status.Phase != corev1.PodPending || pod.Status.ContainerStatuses[0].State.Waiting == nil ||
		pod.Status.ContainerStatuses[0].State.Waiting.Reason != "ContainerCreating" {
		t.Fatalf("before start: %s %+v", pod.Status.Phase, pod.Status.ContainerStatuses)
	}
	if c := condition(pod, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != "ContainersNotReady" ||
		c.Message != "containers with unready status: [c]" {
		t.Errorf("Ready before start: %+v", c)
	}
	clk.advance(2 * time.Second)
	syncStatus(t, s, pod)
	if pod.Status.Phase != corev1.PodRunning || pod.Status.ContainerStatuses[0].Ready {
		t.Fatalf("after start: %s ready=%v", pod.Status.Phase, pod.Status.ContainerStatuses[0].Ready)
	}
	clk.advance(3 * time.Second)
	syncStatus(t, s, pod)
	if !pod.Status.ContainerStatuses[0].Ready || condition(pod, corev1.PodReady).Status != corev1.ConditionTrue {
		t.Fatalf("after ready delay: not ready")
	}
	never := simPodSpec("never", map[string]string{AnnNeverReady: "true"}, "c")
	syncStatus(t, s, never)
	if never.Status.Phase != corev1.PodRunning || never.Status.ContainerStatuses[0].Ready {
		t.Errorf("never-ready pod: %s ready=%v", never.Status.Phase, never.Status.ContainerStatuses[0].Ready)
	}
}

func TestSimulatedExitsAsJobsNeed(t *testing.T) {
	s, clk := newSim(SimulatedOptions{})
	ok := simPodSpec("ok", map[string]string{AnnExitAfter: "5s"}, "c")
	ok.Spec.RestartPolicy = corev1.RestartPolicyNever
	syncStatus(t, s, ok)
	if ok.Status.Phase != corev1.PodRunning {
		t.Fatalf("phase %s", ok.Status.Phase)
	}
	clk.advance(5 * time.Second)
	syncStatus(t, s, ok)
	cs := ok.Status.ContainerStatuses[0]
	if ok.Status.Phase != corev1.PodSucceeded || cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 || cs.State.Terminated.Reason != "Completed" {
		t.Fatalf("succeeded: %s %+v", ok.Status.Phase, cs.State)
	}
	if c := condition(ok, corev1.PodReady); c.Status != corev1.ConditionFalse || c.Reason != "PodCompleted" {
		t.Errorf("Ready of a finished pod: %+v", c)
	}

	bad := simPodSpec("bad", map[string]string{AnnExitCode: "3"}, "c")
	bad.Spec.RestartPolicy = corev1.RestartPolicyNever
	syncStatus(t, s, bad)
	if bad.Status.Phase != corev1.PodFailed || bad.Status.ContainerStatuses[0].State.Terminated.ExitCode != 3 ||
		bad.Status.ContainerStatuses[0].State.Terminated.Reason != "Error" {
		t.Fatalf("failed: %s %+v", bad.Status.Phase, bad.Status.ContainerStatuses[0].State)
	}

	// OnFailure restarts: at once the first time, then after back-off.
	retry := simPodSpec("retry", map[string]string{AnnExitCode: "1", AnnExitAfter: "1s"}, "c")
	retry.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
	syncStatus(t, s, retry)
	clk.advance(time.Second)
	syncStatus(t, s, retry)
	cs = retry.Status.ContainerStatuses[0]
	if cs.RestartCount != 1 || cs.State.Running == nil || cs.LastTerminationState.Terminated == nil || cs.LastTerminationState.Terminated.ExitCode != 1 {
		t.Fatalf("first restart: %+v", cs)
	}
	clk.advance(time.Second)
	syncStatus(t, s, retry)
	cs = retry.Status.ContainerStatuses[0]
	if retry.Status.Phase != corev1.PodRunning || cs.State.Waiting == nil || cs.State.Waiting.Reason != "CrashLoopBackOff" || cs.RestartCount != 1 {
		t.Fatalf("back-off: %s %+v", retry.Status.Phase, cs)
	}
	clk.advance(10 * time.Second)
	syncStatus(t, s, retry)
	if cs := retry.Status.ContainerStatuses[0]; cs.RestartCount != 2 || cs.State.Running == nil {
		t.Fatalf("second restart: %+v", cs)
	}
}

func TestSimulatedInitContainers(t *testing.T) {
	s, _ := newSim(SimulatedOptions{})
	pod := simPodSpec("init", nil, "c")
	pod.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "busybox"}}
	syncStatus(t, s, pod)
	if pod.Status.Phase != corev1.PodRunning || len(pod.Status.InitContainerStatuses) != 1 ||
		pod.Status.InitContainerStatuses[0].State.Terminated == nil || !pod.Status.InitContainerStatuses[0].Ready {
		t.Fatalf("init done: %s %+v", pod.Status.Phase, pod.Status.InitContainerStatuses)
	}
	failing := simPodSpec("initfail", map[string]string{AnnExitCode: "setup=2"}, "c")
	failing.Spec.RestartPolicy = corev1.RestartPolicyNever
	failing.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "busybox"}}
	syncStatus(t, s, failing)
	if failing.Status.Phase != corev1.PodFailed {
		t.Fatalf("failed init, restartPolicy Never: %s", failing.Status.Phase)
	}
	if c := condition(failing, corev1.PodInitialized); c.Status != corev1.ConditionFalse || c.Reason != "ContainersNotInitialized" ||
		c.Message != "containers with incomplete status: [setup]" {
		t.Errorf("Initialized: %+v", c)
	}
	if w := failing.Status.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != "PodInitializing" {
		t.Errorf("container before init: %+v", failing.Status.ContainerStatuses[0].State)
	}
}

func TestSimulatedKill(t *testing.T) {
	s, clk := newSim(SimulatedOptions{})
	pod := simPodSpec("k", map[string]string{AnnTerminationDelay: "3s"}, "c")
	syncStatus(t, s, pod)
	st, done, _ := s.KillPod(context.Background(), testNode, pod, 30*time.Second)
	if done {
		t.Fatal("done before the termination delay")
	}
	if len(st.Events) != 1 || st.Events[0].Reason != "Killing" || st.Events[0].Message != "Stopping container c" {
		t.Errorf("events %+v", st.Events)
	}
	clk.advance(3 * time.Second)
	st, done, _ = s.KillPod(context.Background(), testNode, pod, 30*time.Second)
	if !done || st.ContainerStatuses[0].State.Terminated == nil || st.ContainerStatuses[0].State.Terminated.ExitCode != 0 {
		t.Fatalf("after delay: done=%v %+v", done, st.ContainerStatuses[0].State)
	}
	if ph := apiStatus(pod, &testNode, st, true).Phase; ph != corev1.PodSucceeded {
		t.Errorf("deleted pod's phase %s, want Succeeded", ph)
	}
	// Past its grace period a container is killed.
	slow := simPodSpec("slow", map[string]string{AnnTerminationDelay: "1m"}, "c")
	syncStatus(t, s, slow)
	s.KillPod(context.Background(), testNode, slow, 2*time.Second) //nolint:errcheck
	clk.advance(2 * time.Second)
	st, done, _ = s.KillPod(context.Background(), testNode, slow, 2*time.Second)
	if !done || st.ContainerStatuses[0].State.Terminated.ExitCode != 137 {
		t.Fatalf("killed: done=%v %+v", done, st.ContainerStatuses[0].State)
	}
	if ph := apiStatus(slow, &testNode, st, true).Phase; ph != corev1.PodFailed {
		t.Errorf("killed pod's phase %s, want Failed", ph)
	}
	// Its address goes back to the pool.
	s.RemovePod(context.Background(), pod.UID) //nolint:errcheck
	again := simPodSpec("again", nil, "c")
	syncStatus(t, s, again)
	if again.Status.PodIP == slow.Status.PodIP {
		t.Errorf("two pods share %s", again.Status.PodIP)
	}
}

func TestSimulatedAdoptsAfterRestart(t *testing.T) {
	s, clk := newSim(SimulatedOptions{})
	pod := simPodSpec("p", nil, "c")
	syncStatus(t, s, pod)
	started := pod.Status.ContainerStatuses[0].State.Running.StartedAt
	id := pod.Status.ContainerStatuses[0].ContainerID
	ip := pod.Status.PodIP
	s2, clk2 := newSim(SimulatedOptions{})
	clk2.t = clk.t.Add(time.Minute)
	syncStatus(t, s2, pod)
	cs := pod.Status.ContainerStatuses[0]
	if cs.State.Running == nil || !cs.State.Running.StartedAt.Equal(&started) || cs.ContainerID != id || pod.Status.PodIP != ip {
		t.Errorf("after an agent restart the container restarted: %+v ip %s (was %s)", cs, pod.Status.PodIP, ip)
	}
}

func TestQOSClass(t *testing.T) {
	mk := func(req, lim corev1.ResourceList) *corev1.Pod {
		return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c",
			Resources: corev1.ResourceRequirements{Requests: req, Limits: lim}}}}}
	}
	both := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want corev1.PodQOSClass
	}{
		{mk(nil, nil), corev1.PodQOSBestEffort},
		{mk(both, both), corev1.PodQOSGuaranteed},
		{mk(both, nil), corev1.PodQOSBurstable},
		{mk(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}, corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}), corev1.PodQOSBurstable},
	} {
		if got := QOSClass(tc.pod); got != tc.want {
			t.Errorf("qos %v: %s, want %s", tc.pod.Spec.Containers[0].Resources, got, tc.want)
		}
	}
}

func TestSettingsAndImages(t *testing.T) {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnExitCode: "a=1, b=2", AnnNeverReady: "x,y"}}}
	if v, ok := setting(p, AnnExitCode, "b", true); !ok || v != "2" {
		t.Errorf("per-container setting: %q %v", v, ok)
	}
	if _, ok := setting(p, AnnExitCode, "c", true); ok {
		t.Error("c has no setting")
	}
	if !boolSetting(p, AnnNeverReady, "y") || boolSetting(p, AnnNeverReady, "z") {
		t.Error("name list")
	}
	for in, want := range map[string]string{
		"busybox":                   "docker.io/library/busybox:latest",
		"busybox:1.36":              "docker.io/library/busybox:1.36",
		"example/app":               "docker.io/example/app:latest",
		"registry.local:5000/a/b:1": "registry.local:5000/a/b:1",
		"quay.io/x@sha256:abc":      "quay.io/x@sha256:abc",
	} {
		if got := normalizeImage(in); got != want {
			t.Errorf("normalizeImage(%s) = %s, want %s", in, got, want)
		}
	}
	_ = ptr.To(1)
}

func TestNodeObject(t *testing.T) {
	a := &Agent{opts: Options{Capacity: DefaultCapacity(), Runtime: NewSimulated(SimulatedOptions{}), Zones: 2,
		Reserved: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}}, runtimeVersion: "0.1.0"}
	specs := nodeSpecs("sim", 3, "")
	if len(specs) != 3 || specs[2].Name != "sim-2" || specs[2].InternalIP != "172.16.0.3" || specs[2].PodCIDR != "10.64.2.0/24" {
		t.Fatalf("specs %+v", specs)
	}
	n := a.nodeObject(specs[1])
	if n.Labels[corev1.LabelHostname] != "sim-1" || n.Labels[corev1.LabelOSStable] == "" || n.Labels[corev1.LabelArchStable] == "" ||
		n.Labels[corev1.LabelTopologyZone] != "zone-1" {
		t.Errorf("labels %v", n.Labels)
	}
	cpu := n.Status.Allocatable[corev1.ResourceCPU]
	if cpu.String() != "7500m" {
		t.Errorf("allocatable cpu %s, want 7500m", cpu.String())
	}
	var types []string
	for _, c := range n.Status.Conditions {
		types = append(types, string(c.Type)+"="+string(c.Status))
	}
	if strings.Join(types, ",") != "MemoryPressure=False,DiskPressure=False,PIDPressure=False,Ready=True" {
		t.Errorf("conditions %v", types)
	}
	if n.Status.NodeInfo.ContainerRuntimeVersion != "simulated://0.1.0" || n.Status.NodeInfo.KubeletVersion == "" || len(n.Status.Addresses) != 2 {
		t.Errorf("node info %+v addresses %+v", n.Status.NodeInfo, n.Status.Addresses)
	}
	l := leaseObject(n, 40*time.Second)
	if *l.Spec.HolderIdentity != "sim-1" || *l.Spec.LeaseDurationSeconds != 40 || l.Namespace != "kube-node-lease" || l.OwnerReferences[0].Kind != "Node" {
		t.Errorf("lease %+v", l)
	}
	_ = ptr.To(int32(0))
}
