package agent

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	"github.com/pgkube/pgkube/internal/nodeconn"
	"github.com/pgkube/pgkube/pki"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// cumulativeRuntime reports cumulative CPU only, as containerd 1.6's CRI
// may: a container burns cores of CPU per second of its clock.
type cumulativeRuntime struct {
	now   time.Time
	cores map[string]float64 // by container ID
	used  map[string]float64 // CPU seconds so far
	host  bool
	calls int
}

func (r *cumulativeRuntime) advance(d time.Duration) {
	for id, c := range r.cores {
		r.used[id] += c * d.Seconds()
	}
	r.now = r.now.Add(d)
}

func (r *cumulativeRuntime) Stats(context.Context, []*corev1.Pod) (*Usage, []ContainerUsage, error) {
	r.calls++
	var out []ContainerUsage
	total := 0.0
	for id := range r.cores {
		n := uint64(r.used[id] * 1e9)
		total += r.used[id]
		out = append(out, ContainerUsage{PodUID: types.UID("uid-" + id), ID: id,
			Usage: Usage{Time: r.now, CPUNanoSeconds: &n, MemoryWorkingSetBytes: 1 << 20}})
	}
	if !r.host {
		return nil, out, nil
	}
	n := uint64(total*1e9) + 5e8*uint64(r.now.Unix()%1000) // the host runs more than the pods
	return &Usage{Time: r.now, CPUNanoSeconds: &n, MemoryWorkingSetBytes: 1 << 30}, out, nil
}

func statsPod(cluster, ns, name, node string, running ...string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)},
		Spec: corev1.PodSpec{NodeName: node}}
	if cluster != framework.RootCluster {
		p.Annotations = map[string]string{framework.ClusterAnnotation: cluster}
	}
	for _, id := range running {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c-" + id})
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: "c-" + id,
			ContainerID: "fake://" + id, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
	}
	return p
}

func newTestCollector(rt StatsProvider, pods []*corev1.Pod, single string, nodes ...string) *statsCollector {
	return &statsCollector{rt: rt, runtimeName: "fake", nodes: nodes, single: single,
		pods: func() []*corev1.Pod { return pods }, prev: map[string]cpuSample{}, rates: map[string]cpuRate{}}
}

// TestStatsRates: a rate needs two measurements, so the first request
// takes a second one; later ones use the last, within the windows' bounds.
func TestStatsRates(t *testing.T) {
	rt := &cumulativeRuntime{now: time.Unix(1000, 0), cores: map[string]float64{"a": 0.25, "b": 2}, used: map[string]float64{}, host: true}
	pods := []*corev1.Pod{statsPod("root", "ns", "a", "n1", "a"), statsPod("root", "ns", "b", "n1", "b")}
	c := newTestCollector(rt, pods, "n1", "n1")
	slept := time.Duration(0)
	c.sleep = func(_ context.Context, d time.Duration) error {
		slept += d
		rt.advance(d)
		return nil
	}
	rt.advance(time.Minute) // containers ran a while before
	st, err := c.collect(context.Background(), "root")
	if err != nil {
		t.Fatal(err)
	}
	if slept != secondSampleDelay || rt.calls != 2 {
		t.Errorf("first request: slept %v over %d measurements; want one second measurement", slept, rt.calls)
	}
	want := map[string]uint64{"a": 250_000_000, "b": 2_000_000_000}
	check := func(st *nodeconn.Stats, window time.Duration) {
		t.Helper()
		if len(st.Pods) != 2 {
			t.Fatalf("pods %+v", st.Pods)
		}
		for _, p := range st.Pods {
			if len(p.Containers) != 1 || p.Containers[0].CPUNanoCores != want[p.Name] || p.Containers[0].MemoryWorkingSetBytes != 1<<20 ||
				p.Node != "n1" || time.Duration(p.WindowNanoseconds) != window {
				t.Errorf("pod %s: %+v; want %d nanocores over %v", p.Name, p, want[p.Name], window)
			}
		}
		if len(st.Nodes) != 1 || st.Nodes[0].Name != "n1" || st.Nodes[0].MemoryWorkingSetBytes != 1<<30 ||
			st.Nodes[0].CPUNanoCores != 2_250_000_000+500_000_000 {
			t.Errorf("nodes %+v", st.Nodes)
		}
	}
	check(st, time.Second)

	// Right after: the rate of the last window, no new wait.
	rt.advance(100 * time.Millisecond)
	if st, err = c.collect(context.Background(), "root"); err != nil {
		t.Fatal(err)
	}
	if slept != secondSampleDelay {
		t.Errorf("second request waited")
	}
	check(st, time.Second)

	// Fifteen seconds on, with b busier: the rate over those seconds.
	rt.cores["b"] = 1
	rt.advance(15 * time.Second)
	if st, err = c.collect(context.Background(), "root"); err != nil {
		t.Fatal(err)
	}
	want["b"] = 1_000_000_000
	if slept != secondSampleDelay {
		t.Errorf("third request waited")
	}
	for _, p := range st.Pods {
		if p.Name == "b" && (p.Containers[0].CPUNanoCores > 1_010_000_000 || p.Containers[0].CPUNanoCores < 990_000_000) {
			t.Errorf("b after 15s at one core: %d nanocores", p.Containers[0].CPUNanoCores)
		}
	}

	// A counter that went back (the container was recreated under the
	// same ID) is no base for a rate: measure again.
	rt.used["a"] = 0
	rt.advance(10 * time.Second)
	if _, err = c.collect(context.Background(), "root"); err != nil {
		t.Fatal(err)
	}
	if slept != 2*secondSampleDelay {
		t.Errorf("after a counter reset: slept %v", slept)
	}

	// A request that ends while waiting fails rather than hangs.
	c2 := newTestCollector(rt, pods, "n1", "n1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c2.sleep = sleepCtx
	if _, err := c2.collect(ctx, "root"); err == nil {
		t.Error("a cancelled first request succeeded")
	}
}

// TestStatsServer: the agent's answer over TLS holds every node and the
// pods of the cluster asked for, summed per node when the runtime does
// not measure the host; running instances only.
func TestStatsServer(t *testing.T) {
	sim := NewSimulated(SimulatedOptions{})
	mk := func(cluster, ns, name, node string, reqs corev1.ResourceList) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + cluster + name)},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Resources: corev1.ResourceRequirements{Requests: reqs}}}}}
		if cluster != framework.RootCluster {
			p.Annotations = map[string]string{framework.ClusterAnnotation: cluster}
		}
		rs, err := sim.SyncPod(context.Background(), Node{Name: node, PodCIDR: "10.0.0.0/24"}, p)
		if err != nil {
			t.Fatal(err)
		}
		p.Status.ContainerStatuses = rs.ContainerStatuses
		return p
	}
	big := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	pods := []*corev1.Pod{
		mk("root", "ns", "web", "n1", big),
		mk("root", "ns", "idle", "n2", nil),
		mk("acme", "ns", "web", "n1", big),
	}
	// One that stopped since: its status still says running, but with an
	// older instance.
	stale := mk("root", "ns", "stale", "n2", big)
	stale.Status.ContainerStatuses[0].ContainerID = "simulated://gone"
	pods = append(pods, stale)

	c := newTestCollector(sim, pods, "", "n1", "n2", "n3")
	c.runtimeName = sim.Name()
	c.sleep = func(context.Context, time.Duration) error { t.Error("simulated rates waited"); return nil }

	dir := t.TempDir()
	bundle, err := pki.Ensure(dir, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ServingTLS(dir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerOptions{Addr: "127.0.0.1:0", TLS: cfg, Pod: podLookup(nil), Stats: c.collect})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ctx) //nolint:errcheck
	}()
	defer func() { cancel(); <-done }()
	client := clientWith(t, bundle, nodeconn.ClientCN)
	base := "https://127.0.0.1:" + itoa(srv.Port())

	code, body, err := get(t, client, base+nodeconn.StatsPath, map[string]string{nodeconn.ClusterHeader: "root"})
	if err != nil || code != 200 {
		t.Fatalf("stats: %d %q %v", code, body, err)
	}
	var st nodeconn.Stats
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
	got := map[string]nodeconn.PodStats{}
	for _, p := range st.Pods {
		got[p.Name] = p
	}
	if len(got) != 2 || got["web"].UID != "uid-rootweb" || got["idle"].Node != "n2" {
		t.Fatalf("root's pods: %+v", st.Pods)
	}
	if c := got["web"].Containers; len(c) != 1 || c[0].Name != "app" || c[0].CPUNanoCores != 250_000_000 || c[0].MemoryWorkingSetBytes != 64<<20 {
		t.Errorf("web: %+v", c)
	}
	if c := got["idle"].Containers; len(c) != 1 || c[0].CPUNanoCores != simDefaultNanoCores || c[0].MemoryWorkingSetBytes != simDefaultMemory {
		t.Errorf("idle (no requests): %+v", c)
	}
	if time.Duration(got["web"].WindowNanoseconds) != simWindow || got["web"].Timestamp.IsZero() {
		t.Errorf("web's sample: %+v", got["web"].Sample)
	}
	nodes := map[string]nodeconn.NodeStats{}
	for _, n := range st.Nodes {
		nodes[n.Name] = n
	}
	// n1 runs root's and acme's web.
	if len(nodes) != 3 || nodes["n1"].CPUNanoCores != 500_000_000 || nodes["n1"].MemoryWorkingSetBytes != 128<<20 ||
		nodes["n2"].CPUNanoCores != simDefaultNanoCores || nodes["n3"].CPUNanoCores != 0 || nodes["n3"].Timestamp.IsZero() {
		t.Errorf("nodes: %+v", st.Nodes)
	}

	_, body, _ = get(t, client, base+nodeconn.StatsPath, map[string]string{nodeconn.ClusterHeader: "acme"})
	if err := json.Unmarshal([]byte(body), &st); err != nil || len(st.Pods) != 1 || st.Pods[0].UID != "uid-acmeweb" {
		t.Errorf("acme's pods: %+v %v", st.Pods, err)
	}
	_, body, _ = get(t, client, base+nodeconn.StatsPath, map[string]string{nodeconn.ClusterHeader: "other"})
	if err := json.Unmarshal([]byte(body), &st); err != nil || len(st.Pods) != 0 || len(st.Nodes) != 3 {
		t.Errorf("a cluster without pods: %s %v", body, err)
	}
	if code, body, _ := get(t, client, base+nodeconn.StatsPath, nil); code != 400 || !strings.Contains(body, "missing X-Pgkube-Cluster header") {
		t.Errorf("no cluster: %d %q", code, body)
	}

	// A runtime that measures nothing says so.
	plain, plainBundle := agentTestServer(t, nil)
	code, body, _ = get(t, clientWith(t, plainBundle, nodeconn.ClientCN), "https://127.0.0.1:"+itoa(plain.Port())+nodeconn.StatsPath,
		map[string]string{nodeconn.ClusterHeader: "root"})
	if code != 400 || body != "the simulated runtime measures no resource usage" {
		t.Errorf("no stats: %d %q", code, body)
	}
}

func TestHostUsage(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("stat", "cpu  100 20 30 1000 50 5 5 10 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
	write("meminfo", "MemTotal:       16384 kB\nMemFree:         1024 kB\nMemAvailable:    4096 kB\n")
	u, err := HostUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	// user+nice+system+irq+softirq+steal = 170 ticks of 10ms.
	if u.CPUNanoSeconds == nil || *u.CPUNanoSeconds != 1_700_000_000 || u.MemoryWorkingSetBytes != 12288*1024 || u.Time.IsZero() {
		t.Errorf("usage %+v (cpu %v)", u, u.CPUNanoSeconds)
	}
	write("meminfo", "MemTotal: 1 kB\n")
	if _, err := HostUsage(dir); err == nil || !strings.Contains(err.Error(), "MemAvailable") {
		t.Errorf("no MemAvailable: %v", err)
	}
	write("stat", "intr 1 2 3\n")
	if _, err := HostUsage(dir); err == nil {
		t.Error("a stat file without cpu line accepted")
	}
	if _, err := HostUsage("/proc"); err != nil {
		t.Errorf("this machine: %v", err)
	}
}
