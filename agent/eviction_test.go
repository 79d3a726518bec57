package agent

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

func TestParseEvictionHard(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    string // thresholds' String, comma-joined
		bytes   int64  // of the first, on a 1Gi node
		wantErr string
	}{
		{in: "memory.available<100Mi", want: "memory.available<100Mi", bytes: 100 << 20},
		{in: " memory.available < 5% ", want: "memory.available<5%", bytes: (1 << 30) / 20},
		{in: "memory.available<12.5%", want: "memory.available<12.5%", bytes: (1 << 30) / 8},
		{in: "", want: ""},
		{in: "memory.available<0", want: ""},
		{in: "memory.available<0%", want: ""},
		{in: "memory.available>100Mi", wantErr: "want SIGNAL<QUANTITY"},
		{in: "nodefs.available<10%", wantErr: `signal "nodefs.available" is not supported`},
		{in: "memory.available<101%", wantErr: "between 0% and 100%"},
		{in: "memory.available<x%", wantErr: "between 0% and 100%"},
		{in: "memory.available<-1Mi", wantErr: "must not be negative"},
		{in: "memory.available<lots", wantErr: "quantities must match"},
		{in: "memory.available<1Gi,memory.available<5%", wantErr: "given twice"},
	} {
		ts, err := ParseEvictionHard(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: error %v, want one saying %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		var got []string
		for _, th := range ts {
			got = append(got, th.String())
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%q: parsed as %v, want %s", tc.in, got, tc.want)
		}
		if len(ts) > 0 && ts[0].bytes(1<<30) != tc.bytes {
			t.Errorf("%q: %d bytes on a 1Gi node, want %d", tc.in, ts[0].bytes(1<<30), tc.bytes)
		}
	}
}

func mi(n int64) int64 { return n << 20 }

// rankPod is a pod requesting req (bytes, 0: nothing) at priority prio.
func rankPod(name string, req int64, prio int32) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID(name)},
		Spec: corev1.PodSpec{Priority: ptr.To(prio), Containers: []corev1.Container{{Name: "c"}}}}
	if req > 0 {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: *resource.NewQuantity(req, resource.BinarySI)}
	}
	return p
}

func used(n int64) *podUsage { return &podUsage{total: n, containers: map[string]int64{"c": n}} }

func TestRankForMemory(t *testing.T) {
	pods := []*corev1.Pod{
		rankPod("guaranteed-at-request", mi(100), 0),
		rankPod("burstable-over-by-50", mi(100), 0),
		rankPod("besteffort-small", 0, 0),
		rankPod("besteffort-high-priority", 0, 1000),
		rankPod("burstable-over-by-300", mi(100), 0),
		rankPod("under-request-low-priority", mi(500), -10),
		rankPod("not-measured", mi(10), 5000),
		rankPod("under-request-by-10", mi(100), 0),
	}
	usage := map[types.UID]*podUsage{
		"guaranteed-at-request":      used(mi(100)),
		"burstable-over-by-50":       used(mi(150)),
		"besteffort-small":           used(mi(4)),
		"besteffort-high-priority":   used(mi(900)),
		"burstable-over-by-300":      used(mi(400)),
		"under-request-low-priority": used(mi(10)),
		"under-request-by-10":        used(mi(90)),
	}
	var cs []evictionCandidate
	for _, p := range pods {
		cs = append(cs, evictionCandidate{pod: p, usage: usage[p.UID], request: memoryRequest(p)})
	}
	rankForMemory(cs)
	var got []string
	for _, c := range cs {
		got = append(got, c.pod.Name)
	}
	want := []string{
		"not-measured",               // nothing tells it is harmless
		"burstable-over-by-300",      // over requests, priority 0, most over
		"burstable-over-by-50",       //
		"besteffort-small",           // over by 4Mi
		"besteffort-high-priority",   // over by far more, but priority 1000
		"under-request-low-priority", // within requests: priority first
		"guaranteed-at-request",      // 0 over
		"under-request-by-10",        // 10Mi under
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("ranked\n %v\nwant\n %v", got, want)
	}
}

func TestChooseVictim(t *testing.T) {
	critical := rankPod("critical", 0, criticalPriority)
	web := rankPod("web", 0, 0)
	web.Spec.Containers = []corev1.Container{{Name: "web"}, {Name: "log", Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("10Mi")}}}}
	done := rankPod("done", 0, 0)
	done.Status.Phase = corev1.PodFailed
	deleting := rankPod("deleting", 0, 0)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	usage := map[types.UID]*podUsage{
		"critical": used(mi(900)), "done": used(mi(900)), "deleting": used(mi(900)),
		"web": {total: mi(125), containers: map[string]int64{"web": mi(120), "log": mi(5)}},
	}
	v, msg := chooseVictim([]*corev1.Pod{critical, done, deleting, web}, usage, mi(50), mi(100))
	if v != web {
		t.Fatalf("victim %v, want web (critical, finished and deleting pods are skipped)", v)
	}
	const want = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. Container web was using 120Mi, request is 0, has larger consumption of memory."
	if msg != want {
		t.Errorf("message\n %s\nwant\n %s", msg, want)
	}
	if v, _ := chooseVictim([]*corev1.Pod{critical}, usage, 0, mi(100)); v != nil {
		t.Errorf("a critical pod was chosen")
	}
}

func TestMemoryRequest(t *testing.T) {
	q := func(s string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(s)}}
	}
	p := &corev1.Pod{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{
			{Name: "setup", Resources: q("500Mi")},
			{Name: "proxy", Resources: q("50Mi"), RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways)},
		},
		Containers: []corev1.Container{{Name: "a", Resources: q("100Mi")}, {Name: "b", Resources: q("200Mi")}},
		Overhead:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("10Mi")},
	}}
	if got := memoryRequest(p); got != mi(510) {
		t.Errorf("request %dMi, want 510Mi (the init container's peak, plus overhead)", got>>20)
	}
	p.Spec.InitContainers[0].Resources = q("100Mi")
	if got := memoryRequest(p); got != mi(360) {
		t.Errorf("request %dMi, want 360Mi (containers, sidecar and overhead)", got>>20)
	}
}

func TestMemAvailable(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/meminfo"
	if err := os.WriteFile(path, []byte("MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if v, err := memAvailable(path); err != nil || v != 8000000*1024 {
		t.Errorf("MemAvailable %d, %v", v, err)
	}
	if err := os.WriteFile(path, []byte("MemTotal:       16000000 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := memAvailable(path); err == nil {
		t.Errorf("no error without MemAvailable")
	}
}

// evictionAgent is an agent over a fake API server with one simulated
// node of 1Gi, whose eviction checks the test runs itself.
func evictionAgent(t *testing.T, ctx context.Context, threshold string) (*Agent, *fake.Clientset, *clock) {
	t.Helper()
	cs := fake.NewClientset()
	clients := framework.NewStaticClients(framework.RootCluster, cs, map[string]kubernetes.Interface{framework.RootCluster: cs})
	th, err := ParseEvictionHard(threshold)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{NodeName: "evict", NodeIP: "192.168.1.20", Runtime: NewSimulated(SimulatedOptions{}),
		Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("1Gi"),
			corev1.ResourcePods: resource.MustParse("110")},
		EvictionHard: th, EvictionInterval: time.Hour, EvictionPressureTransitionPeriod: 30 * time.Second,
		RenewInterval: time.Hour, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	a, err := New(ctx, o, clients)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Now()}
	a.evict.now = clk.now
	a.evict.hostAvailable = func() (int64, error) { t.Error("the simulated runtime measures no host"); return 0, nil }
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { <-done; a.recorder.Shutdown() })
	return a, cs, clk
}

func waitUntil(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEvictionAgent: a threshold above the node's capacity keeps it under
// pressure; each check evicts one pod, best-effort first, then the
// burstable one over its request, then the guaranteed one; the critical
// pod stays. A threshold the node meets ends the pressure after the
// transition period.
func TestEvictionAgent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, cs, clk := evictionAgent(t, ctx, "memory.available<999Gi")
	mem := func(s string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(s), corev1.ResourceCPU: resource.MustParse("100m")}
	}
	pod := func(name string, ann map[string]string, res corev1.ResourceRequirements, prio int32) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Annotations: ann},
			Spec: corev1.PodSpec{NodeName: "evict", RestartPolicy: corev1.RestartPolicyAlways, Priority: ptr.To(prio),
				Containers: []corev1.Container{{Name: "app", Image: "app:1", Resources: res}}}}
	}
	pods := []*corev1.Pod{
		pod("guaranteed", nil, corev1.ResourceRequirements{Requests: mem("100Mi"), Limits: mem("100Mi")}, 0),
		pod("burstable", map[string]string{AnnMemoryUsage: "app=200Mi"}, corev1.ResourceRequirements{Requests: mem("100Mi")}, 0),
		pod("besteffort", map[string]string{AnnMemoryUsage: "300Mi"}, corev1.ResourceRequirements{}, 0),
		pod("critical", nil, corev1.ResourceRequirements{}, criticalPriority),
	}
	for _, p := range pods {
		if _, err := cs.CoreV1().Pods("ns").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	phase := func(name string) corev1.PodPhase {
		p, err := a.pods.Get(framework.RootCluster, "ns", name)
		if err != nil {
			return ""
		}
		return p.Status.Phase
	}
	waitUntil(t, "pods running", func() error {
		for _, p := range pods {
			if ph := phase(p.Name); ph != corev1.PodRunning {
				return fmt.Errorf("pod %s is %q", p.Name, ph)
			}
		}
		return nil
	})
	node := func() *corev1.Node {
		n, err := cs.CoreV1().Nodes().Get(ctx, "evict", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if alloc := node().Status.Allocatable[corev1.ResourceMemory]; !alloc.IsZero() {
		t.Errorf("allocatable memory %s, want 0 (the threshold is above the capacity)", alloc.String())
	}

	order := []string{"besteffort", "burstable", "guaranteed"}
	for i, name := range order {
		if err := a.evict.check(ctx); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, name+" evicted", func() error {
			if ph := phase(name); ph != corev1.PodFailed {
				return fmt.Errorf("pod %s is %q", name, ph)
			}
			return nil
		})
		for _, later := range append(order[i+1:], "critical") {
			if ph := phase(later); ph != corev1.PodRunning {
				t.Fatalf("after %s's eviction pod %s is %s", name, later, ph)
			}
		}
	}
	if err := a.evict.check(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if ph := phase("critical"); ph != corev1.PodRunning {
		t.Errorf("critical pod is %s", ph)
	}

	p, err := cs.CoreV1().Pods("ns").Get(ctx, "burstable", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantMsg := "The node was low on resource: memory. Threshold quantity: 999Gi, available: 720Mi. Container app was using 200Mi, request is 100Mi, has larger consumption of memory."
	if p.Status.Reason != "Evicted" || p.Status.Message != wantMsg {
		t.Errorf("status reason %q message\n %q\nwant\n %q", p.Status.Reason, p.Status.Message, wantMsg)
	}
	if c := podCondition(p, corev1.DisruptionTarget); c == nil || c.Status != corev1.ConditionTrue || c.Reason != "TerminationByKubelet" || c.Message != wantMsg {
		t.Errorf("DisruptionTarget %+v", c)
	}
	if c := podCondition(p, corev1.PodReady); c == nil || c.Status != corev1.ConditionFalse {
		t.Errorf("Ready %+v", c)
	}
	if cst := p.Status.ContainerStatuses; len(cst) != 1 || cst[0].State.Terminated == nil {
		t.Errorf("container statuses %+v", cst)
	}
	waitUntil(t, "Evicted events", func() error {
		evs, err := cs.CoreV1().Events("ns").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		var got []string
		for _, e := range evs.Items {
			if e.Reason == "Evicted" && e.Type == corev1.EventTypeWarning && e.Source.Host == "evict" {
				got = append(got, e.InvolvedObject.Name)
			}
		}
		if len(got) != 3 {
			return fmt.Errorf("Evicted events about %v", got)
		}
		return nil
	})

	n := node()
	if c := nodeCondition(n, corev1.NodeMemoryPressure); c == nil || c.Status != corev1.ConditionTrue || c.Reason != "KubeletHasInsufficientMemory" ||
		c.Message != "kubelet has insufficient memory available" {
		t.Errorf("MemoryPressure %+v", c)
	}
	if !hasMemoryPressureTaint(n) {
		t.Errorf("taints %+v", n.Spec.Taints)
	}

	// The node meets a lower threshold: pressure stays for the transition
	// period, then goes with its taint.
	low, _ := ParseEvictionHard("memory.available<100Mi")
	a.evict.threshold = low[0]
	clk.advance(10 * time.Second)
	if err := a.evict.check(ctx); err != nil {
		t.Fatal(err)
	}
	if n := node(); nodeCondition(n, corev1.NodeMemoryPressure).Status != corev1.ConditionTrue || !hasMemoryPressureTaint(n) {
		t.Errorf("pressure ended before the transition period")
	}
	clk.advance(25 * time.Second)
	if err := a.evict.check(ctx); err != nil {
		t.Fatal(err)
	}
	n = node()
	if c := nodeCondition(n, corev1.NodeMemoryPressure); c.Status != corev1.ConditionFalse || c.Reason != "KubeletHasSufficientMemory" {
		t.Errorf("MemoryPressure after the transition %+v", c)
	}
	if hasMemoryPressureTaint(n) {
		t.Errorf("taint kept: %+v", n.Spec.Taints)
	}
	if ph := phase("critical"); ph != corev1.PodRunning {
		t.Errorf("critical pod is %s", ph)
	}
}

func podCondition(p *corev1.Pod, ct corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == ct {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func nodeCondition(n *corev1.Node, ct corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == ct {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}
