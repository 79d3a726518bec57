package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	"github.com/pgkube/pgkube/internal/nodeconn"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Usage is one measurement of CPU and memory use.
type Usage struct {
	Time time.Time
	// CPUNanoCores is a rate over Window, for a runtime that measures one
	// (or makes it up, as the simulated one). When nil the agent computes
	// the rate from CPUNanoSeconds, the cumulative CPU time, of two
	// measurements.
	CPUNanoCores   *uint64
	Window         time.Duration
	CPUNanoSeconds *uint64
	// MemoryWorkingSetBytes is the memory that cannot be reclaimed
	// without swapping (what the OOM killer looks at), as kubelet reports.
	MemoryWorkingSetBytes uint64
}

// ContainerUsage is a Usage of one container instance.
type ContainerUsage struct {
	PodUID types.UID
	// ID is the runtime's container ID, as in the status' containerID
	// (NAME://ID) without the prefix: usage counts only for the instance
	// the pod's status says is running.
	ID string
	Usage
}

// StatsProvider is a runtime that measures what its containers use, for
// metrics.k8s.io (kubectl top). A runtime without it reports nothing, and
// the API server leaves its nodes and pods out, as metrics-server does with
// a kubelet it cannot scrape.
type StatsProvider interface {
	// Stats measures the running containers, and the host when the
	// runtime runs on it (nil host: the agent sums the pods of each
	// node instead). pods are those bound to the agent's nodes, for a
	// runtime that needs their specs.
	Stats(ctx context.Context, pods []*corev1.Pod) (host *Usage, containers []ContainerUsage, err error)
}

// Rates are taken over at least minRateWindow, so that a short window's
// noise does not show, and from measurements at most maxRateWindow apart,
// so that a figure is recent; outside that the agent measures again after
// secondSampleDelay.
const (
	minRateWindow     = 500 * time.Millisecond
	maxRateWindow     = 2 * time.Minute
	secondSampleDelay = time.Second
)

// statsCollector turns a StatsProvider's measurements into the answer at
// nodeconn.StatsPath, keeping the previous cumulative CPU figures to
// compute rates from.
type statsCollector struct {
	rt          StatsProvider
	runtimeName string
	// nodes are the agent's node names; single is the one when there is
	// one (a host measurement is its usage).
	nodes  []string
	single string
	// pods lists the pods bound to the agent's nodes, of every cluster.
	pods  func() []*corev1.Pod
	sleep func(ctx context.Context, d time.Duration) error

	mu    sync.Mutex
	prev  map[string]cpuSample // by container ID; "" is the host
	rates map[string]cpuRate
}

type cpuSample struct {
	at    time.Time
	nanos uint64
}

type cpuRate struct {
	nanoCores uint64
	window    time.Duration
}

// newStatsCollector is nil when the runtime measures nothing.
func (a *Agent) newStatsCollector() *statsCollector {
	sp, ok := a.opts.Runtime.(StatsProvider)
	if !ok {
		return nil
	}
	c := &statsCollector{rt: sp, runtimeName: a.opts.Runtime.Name(), single: a.single, sleep: sleepCtx,
		prev: map[string]cpuSample{}, rates: map[string]cpuRate{}}
	for name := range a.nodes {
		c.nodes = append(c.nodes, name)
	}
	sort.Strings(c.nodes)
	c.pods = func() []*corev1.Pod {
		var out []*corev1.Pod
		for _, p := range a.pods.ListAll() {
			if a.nodes[p.Spec.NodeName] != nil {
				out = append(out, p)
			}
		}
		return out
	}
	return c
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// rate is the CPU rate of key as of u; false when it cannot be told yet
// (a first measurement, or the previous one too old or from before a
// counter reset).
func (c *statsCollector) rate(key string, u *Usage) (cpuRate, bool) {
	if u.CPUNanoSeconds == nil {
		if u.CPUNanoCores == nil {
			return cpuRate{}, false
		}
		return cpuRate{nanoCores: *u.CPUNanoCores, window: u.Window}, true
	}
	cur := cpuSample{at: u.Time, nanos: *u.CPUNanoSeconds}
	prev, ok := c.prev[key]
	dt := cur.at.Sub(prev.at)
	switch {
	case !ok || dt > maxRateWindow || cur.nanos < prev.nanos || dt < 0:
		c.prev[key] = cur
		delete(c.rates, key)
	case dt < minRateWindow:
		// Too close to the last measurement: keep the rate computed
		// then (the window grows until the next one is taken).
		if r, ok := c.rates[key]; ok {
			return r, true
		}
	default:
		r := cpuRate{nanoCores: uint64(float64(cur.nanos-prev.nanos) * float64(time.Second) / float64(dt)), window: dt}
		c.prev[key], c.rates[key] = cur, r
		return r, true
	}
	// A runtime that also gives its own rate (containerd computes one
	// between its own samples) fills the gap of a first measurement.
	if u.CPUNanoCores != nil && *u.CPUNanoCores > 0 {
		return cpuRate{nanoCores: *u.CPUNanoCores, window: u.Window}, true
	}
	return cpuRate{}, false
}

// measure takes one measurement and computes what rates it can; missing
// says whether some running container or the host has no rate yet.
func (c *statsCollector) measure(ctx context.Context, pods []*corev1.Pod, running map[string]bool) (host *Usage, hostRate cpuRate, usages map[string]ContainerUsage, rates map[string]cpuRate, missing bool, err error) {
	h, cs, err := c.rt.Stats(ctx, pods)
	if err != nil {
		return nil, cpuRate{}, nil, nil, false, fmt.Errorf("measuring resource usage: %w", err)
	}
	usages, rates = map[string]ContainerUsage{}, map[string]cpuRate{}
	seen := map[string]bool{"": true}
	for _, u := range cs {
		seen[u.ID] = true
		if !running[u.ID] {
			continue
		}
		usages[u.ID] = u
		r, ok := c.rate(u.ID, &u.Usage)
		if !ok {
			missing = true
			continue
		}
		rates[u.ID] = r
	}
	if h != nil && c.single != "" {
		var ok bool
		if hostRate, ok = c.rate("", h); ok {
			host = h
		} else {
			missing = true
		}
	}
	// Containers gone are forgotten.
	for id := range c.prev {
		if !seen[id] {
			delete(c.prev, id)
			delete(c.rates, id)
		}
	}
	return host, hostRate, usages, rates, missing, nil
}

// collect answers a request of cluster: the usage of every node and of
// that cluster's pods.
func (c *statsCollector) collect(ctx context.Context, cluster string) (*nodeconn.Stats, error) {
	pods := c.pods()
	// Usage counts for the container instances the pods' statuses say
	// are running, keyed by their runtime IDs.
	prefix := c.runtimeName + "://"
	running := map[string]bool{}
	for _, p := range pods {
		forRunning(p, func(_ string, id string) { running[id] = true }, prefix)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	host, hostRate, usages, rates, missing, err := c.measure(ctx, pods, running)
	if err != nil {
		return nil, err
	}
	if missing {
		// A first measurement: a rate needs a second one.
		if err := c.sleep(ctx, secondSampleDelay); err != nil {
			return nil, err
		}
		if host, hostRate, usages, rates, _, err = c.measure(ctx, pods, running); err != nil {
			return nil, err
		}
	}
	out := &nodeconn.Stats{Nodes: []nodeconn.NodeStats{}, Pods: []nodeconn.PodStats{}}
	type sum struct {
		nodeconn.Usage
		window time.Duration
	}
	byNode := map[string]*sum{}
	for _, p := range pods {
		ps, ok := podStats(p, prefix, usages, rates)
		if !ok {
			continue
		}
		s := byNode[p.Spec.NodeName]
		if s == nil {
			s = &sum{}
			byNode[p.Spec.NodeName] = s
		}
		for _, c := range ps.Containers {
			s.CPUNanoCores += c.CPUNanoCores
			s.MemoryWorkingSetBytes += c.MemoryWorkingSetBytes
		}
		s.window = max(s.window, time.Duration(ps.WindowNanoseconds))
		if framework.ClusterOf(p) == cluster {
			out.Pods = append(out.Pods, ps)
		}
	}
	now := time.Now()
	for _, name := range c.nodes {
		ns := nodeconn.NodeStats{Name: name, Sample: nodeconn.Sample{Timestamp: now}}
		if host != nil && name == c.single {
			ns.Timestamp, ns.WindowNanoseconds = host.Time, int64(hostRate.window)
			ns.CPUNanoCores, ns.MemoryWorkingSetBytes = hostRate.nanoCores, host.MemoryWorkingSetBytes
		} else if s := byNode[name]; s != nil {
			// No measurement of the host (several simulated nodes on
			// one): a node uses what its pods use.
			ns.Usage, ns.WindowNanoseconds = s.Usage, int64(s.window)
		}
		out.Nodes = append(out.Nodes, ns)
	}
	return out, nil
}

// forRunning calls f with the name and runtime ID of each running
// container of p (sidecars and ephemeral containers included).
func forRunning(p *corev1.Pod, f func(name, id string), prefix string) {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses, p.Status.EphemeralContainerStatuses} {
		for _, st := range list {
			if st.State.Running != nil && strings.HasPrefix(st.ContainerID, prefix) {
				f(st.Name, strings.TrimPrefix(st.ContainerID, prefix))
			}
		}
	}
}

// podStats is the usage of p's running containers; false when it has
// none running or one has no usage yet (a partial figure would mislead,
// so the pod is left out, as metrics-server leaves it out).
func podStats(p *corev1.Pod, prefix string, usages map[string]ContainerUsage, rates map[string]cpuRate) (nodeconn.PodStats, bool) {
	ps := nodeconn.PodStats{Namespace: p.Namespace, Name: p.Name, UID: string(p.UID), Node: p.Spec.NodeName}
	complete := true
	forRunning(p, func(name, id string) {
		u, ok := usages[id]
		r, rok := rates[id]
		if !ok || !rok {
			complete = false
			return
		}
		ps.Containers = append(ps.Containers, nodeconn.ContainerStats{Name: name,
			Usage: nodeconn.Usage{CPUNanoCores: r.nanoCores, MemoryWorkingSetBytes: u.MemoryWorkingSetBytes}})
		if ps.Timestamp.IsZero() || u.Time.Before(ps.Timestamp) {
			ps.Timestamp = u.Time
		}
		ps.WindowNanoseconds = max(ps.WindowNanoseconds, int64(r.window))
	}, prefix)
	return ps, complete && len(ps.Containers) > 0
}

// serveStats answers at nodeconn.StatsPath.
func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	cluster := r.Header.Get(nodeconn.ClusterHeader)
	if cluster == "" {
		writeError(w, fail(http.StatusBadRequest, "missing %s header: the logical cluster whose pods to report", nodeconn.ClusterHeader))
		return
	}
	if s.opts.Stats == nil {
		writeError(w, s.noStreams("measures no resource usage"))
		return
	}
	st, err := s.opts.Stats(r.Context(), cluster)
	if err != nil {
		writeError(w, err)
		return
	}
	body, err := json.Marshal(st)
	if err != nil {
		writeError(w, fmt.Errorf("encoding resource usage: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body) //nolint:errcheck // the client went away
}

// HostUsage measures the machine from procfs (root is "/proc"): CPU time
// of /proc/stat's first line except idle and iowait, and memory in use as
// MemTotal minus MemAvailable from /proc/meminfo. The kubelet takes the
// root cgroup's figures instead; these are the same on a machine that runs
// only the node, and need no cgroup layout.
func HostUsage(root string) (*Usage, error) {
	f, err := os.Open(filepath.Join(root, "stat"))
	if err != nil {
		return nil, fmt.Errorf("host CPU usage: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return nil, fmt.Errorf("host CPU usage: %s is empty", f.Name())
	}
	now := time.Now()
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return nil, fmt.Errorf("host CPU usage: unexpected first line %q in %s", sc.Text(), f.Name())
	}
	var busy uint64
	// user nice system idle iowait irq softirq steal (guest time is in
	// user already).
	for i, v := range fields[1:min(len(fields), 9)] {
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("host CPU usage: %s: %w", f.Name(), err)
		}
		busy += n
	}
	// /proc/stat counts in USER_HZ, 100 a second on every Linux
	// architecture Go supports.
	nanos := busy * uint64(time.Second/100)
	mem, err := os.ReadFile(filepath.Join(root, "meminfo"))
	if err != nil {
		return nil, fmt.Errorf("host memory usage: %w", err)
	}
	kb := map[string]uint64{}
	for _, line := range strings.Split(string(mem), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
			kb[k] = n
		}
	}
	total, ok := kb["MemTotal"]
	avail, aok := kb["MemAvailable"]
	if !ok || !aok || avail > total {
		return nil, fmt.Errorf("host memory usage: no MemTotal and MemAvailable in %s", filepath.Join(root, "meminfo"))
	}
	return &Usage{Time: now, CPUNanoSeconds: &nanos, MemoryWorkingSetBytes: (total - avail) * 1024}, nil
}
