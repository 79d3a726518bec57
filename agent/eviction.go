package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Node-pressure eviction, as a kubelet's eviction manager does it for
// memory: every EvictionInterval the agent measures what each node's pods
// use; a node whose available memory is below its hard threshold reports
// MemoryPressure, is tainted so that nothing more is scheduled on it, and
// loses one pod per check (Failed, reason Evicted) until the pressure is
// gone.
//
// What is available is the node's memory capacity minus its pods' working
// sets. That is the one figure the simulated nodes have (many of them
// share one machine and each is only what its pods use), and for a real
// node it holds the pods to the capacity the scheduler was told of. A
// real node (the runtime measures the host) is also short when the host
// itself is: there available is at most the host's MemAvailable. The
// kubelet takes capacity minus the root cgroup's working set instead, but
// its capacity is always the machine's memory; pgkube's is whatever
// --capacity says (32Gi by default), so on a developer's machine that
// figure would either never trigger or blame the pods for the browser's
// memory.

// AnnMemoryUsage tells the simulated runtime what a pod's containers use
// of memory (a quantity, "200Mi", for each container, or NAME=QUANTITY
// pairs), so that a pod can use more than it requests (kubectl top and
// eviction see it); without it a simulated container uses its memory
// request (or 4Mi).
const AnnMemoryUsage = "pgkube.io/simulate-memory-usage"

// SignalMemoryAvailable is the one eviction signal the agent watches.
const SignalMemoryAvailable = "memory.available"

// DefaultEvictionHard is the kubelet's default memory threshold.
const DefaultEvictionHard = SignalMemoryAvailable + "<100Mi"

const (
	// criticalPriority is system-node-critical's and system-cluster-
	// critical's floor: such pods keep the node itself working, so
	// evicting them would not relieve anything for long.
	criticalPriority = 2000000000

	reasonEvicted              = "Evicted"
	reasonTerminationByKubelet = "TerminationByKubelet"
)

// EvictionThreshold is one hard eviction threshold: the signal's
// available amount below which pods are evicted, an absolute Quantity or
// a Percentage (0 to 1) of the node's capacity.
type EvictionThreshold struct {
	Signal     string
	Quantity   *resource.Quantity
	Percentage float64
}

// String is the threshold as written on the command line.
func (t EvictionThreshold) String() string {
	if t.Quantity != nil {
		return t.Signal + "<" + t.Quantity.String()
	}
	return t.Signal + "<" + strconv.FormatFloat(t.Percentage*100, 'f', -1, 64) + "%"
}

// bytes is the threshold on a node of capacity bytes.
func (t EvictionThreshold) bytes(capacity int64) int64 {
	if t.Quantity != nil {
		return t.Quantity.Value()
	}
	return int64(float64(capacity) * t.Percentage)
}

// ParseEvictionHard reads thresholds written as the kubelet's
// --eviction-hard: SIGNAL<QUANTITY or SIGNAL<PERCENT%, comma-separated.
// Only memory.available is watched, so other signals are refused rather
// than silently ignored; a zero threshold turns eviction off, as an empty
// string does.
func ParseEvictionHard(s string) ([]EvictionThreshold, error) {
	var out []EvictionThreshold
	for _, stmt := range strings.Split(s, ",") {
		if stmt = strings.TrimSpace(stmt); stmt == "" {
			continue
		}
		signal, value, ok := strings.Cut(stmt, "<")
		if !ok {
			return nil, fmt.Errorf("eviction threshold %q: want SIGNAL<QUANTITY or SIGNAL<PERCENT%%", stmt)
		}
		signal, value = strings.TrimSpace(signal), strings.TrimSpace(value)
		if signal != SignalMemoryAvailable {
			return nil, fmt.Errorf("eviction threshold %q: signal %q is not supported (only %s)", stmt, signal, SignalMemoryAvailable)
		}
		t := EvictionThreshold{Signal: signal}
		if p, isPercent := strings.CutSuffix(value, "%"); isPercent {
			f, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil || f < 0 || f > 100 {
				return nil, fmt.Errorf("eviction threshold %q: percentage must be between 0%% and 100%%", stmt)
			}
			if f == 0 {
				continue
			}
			t.Percentage = f / 100
		} else {
			q, err := resource.ParseQuantity(value)
			if err != nil {
				return nil, fmt.Errorf("eviction threshold %q: %w", stmt, err)
			}
			if q.Sign() < 0 {
				return nil, fmt.Errorf("eviction threshold %q: quantity must not be negative", stmt)
			}
			if q.IsZero() {
				continue
			}
			t.Quantity = &q
		}
		for _, o := range out {
			if o.Signal == t.Signal {
				return nil, fmt.Errorf("eviction threshold %q: %s given twice", stmt, signal)
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// evictionManager watches the nodes' memory and evicts their pods.
type evictionManager struct {
	a          *Agent
	threshold  EvictionThreshold
	interval   time.Duration
	transition time.Duration
	now        func() time.Time
	// hostAvailable is the host's available memory, for a runtime that
	// measures the host.
	hostAvailable func() (int64, error)

	mu       sync.Mutex
	nodes    map[string]*nodePressure
	evicting map[types.UID]*podEviction
	noStats  bool // said once that the runtime measures nothing
}

type nodePressure struct {
	lastMet  time.Time // when the threshold was last found met
	pressure bool      // what the node reports
	// nothingToEvict: the last check found no pod to evict (said once,
	// not at every check).
	nothingToEvict bool
}

// podEviction is a pod chosen for eviction; its worker kills it.
type podEviction struct {
	node     string
	message  string
	recorded bool
}

// newEvictionManager is nil when no threshold is set.
func newEvictionManager(a *Agent) *evictionManager {
	for _, t := range a.opts.EvictionHard {
		if t.Signal == SignalMemoryAvailable {
			return &evictionManager{a: a, threshold: t, interval: a.opts.EvictionInterval,
				transition: a.opts.EvictionPressureTransitionPeriod, now: time.Now,
				hostAvailable: func() (int64, error) { return memAvailable("/proc/meminfo") },
				nodes:         map[string]*nodePressure{}, evicting: map[types.UID]*podEviction{}}
		}
	}
	return nil
}

// memAvailable reads MemAvailable from a meminfo file.
func memAvailable(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("host available memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("host available memory: %s: %w", path, err)
			}
			return kb * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("host available memory: %w", err)
	}
	return 0, fmt.Errorf("host available memory: no MemAvailable in %s", path)
}

// memoryPressureCondition is the node's MemoryPressure condition (without
// times).
func (a *Agent) memoryPressureCondition(node string) corev1.NodeCondition {
	if a.evict != nil && a.evict.underPressure(node) {
		return corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue,
			Reason: "KubeletHasInsufficientMemory", Message: "kubelet has insufficient memory available"}
	}
	return corev1.NodeCondition{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse,
		Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"}
}

// evictionReserve is the memory kept off allocatable so that pods the
// scheduler fits by their requests do not put the node under pressure at
// once, as the kubelet takes its hard threshold off.
func (a *Agent) evictionReserve(capacity corev1.ResourceList) (resource.Quantity, bool) {
	if a.evict == nil {
		return resource.Quantity{}, false
	}
	c := capacity[corev1.ResourceMemory]
	return *resource.NewQuantity(a.evict.threshold.bytes(c.Value()), resource.BinarySI), true
}

func (m *evictionManager) underPressure(node string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	np := m.nodes[node]
	return np != nil && np.pressure
}

// pending is the eviction chosen for a pod, nil if none.
func (m *evictionManager) pending(uid types.UID) *podEviction {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.evicting[uid]
}

func (m *evictionManager) run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !m.a.pods.HasSynced() {
			continue
		}
		if err := m.check(ctx); err != nil && ctx.Err() == nil {
			m.a.log.Info("eviction check failed", "err", err)
		}
	}
}

// podUsage is what a pod's running containers use.
type podUsage struct {
	total      int64
	containers map[string]int64
}

// check measures the nodes once, updates their conditions and taints, and
// chooses a pod to evict on each node under pressure.
func (m *evictionManager) check(ctx context.Context) error {
	a := m.a
	var pods []*corev1.Pod
	byUID := map[types.UID]*corev1.Pod{}
	for _, p := range a.pods.ListAll() {
		if a.nodes[p.Spec.NodeName] != nil {
			pods = append(pods, p)
			byUID[p.UID] = p
		}
	}
	inFlight := map[string]bool{}
	m.mu.Lock()
	for uid, ev := range m.evicting {
		// An eviction ends once the pod is seen failed, or is gone or
		// being deleted (the deletion then stops it).
		if p := byUID[uid]; p == nil || terminal(p) || p.DeletionTimestamp != nil {
			delete(m.evicting, uid)
			continue
		}
		inFlight[ev.node] = true
	}
	m.mu.Unlock()

	usage, host, err := m.measure(ctx, pods)
	if err != nil {
		return err
	}
	hostAvail := int64(-1)
	if host && a.single != "" {
		if v, err := m.hostAvailable(); err == nil {
			hostAvail = v
		} else {
			a.log.Debug("host available memory unknown", "err", err)
		}
	}
	capMem := a.opts.Capacity[corev1.ResourceMemory]
	threshold := m.threshold.bytes(capMem.Value())
	byNode := map[string][]*corev1.Pod{}
	available := map[string]int64{}
	for name := range a.nodes {
		available[name] = capMem.Value()
	}
	for _, p := range pods {
		if terminal(p) {
			continue
		}
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
		if u := usage[p.UID]; u != nil {
			available[p.Spec.NodeName] -= u.total
		}
	}
	now := m.now()
	var errs []error
	for name, ns := range a.nodes {
		avail := available[name]
		if hostAvail >= 0 && name == a.single {
			avail = min(avail, hostAvail)
		}
		met := avail < threshold
		m.mu.Lock()
		np := m.nodes[name]
		if np == nil {
			np = &nodePressure{}
			m.nodes[name] = np
		}
		if met {
			np.lastMet = now
		}
		was := np.pressure
		np.pressure = met || (!np.lastMet.IsZero() && now.Sub(np.lastMet) < m.transition)
		pressure := np.pressure
		m.mu.Unlock()
		if pressure != was {
			a.log.Info("node memory pressure changed", "node", name, "pressure", pressure,
				"available", quantity(avail), "threshold", quantity(threshold))
		}
		if err := m.reconcileNode(ctx, ns, pressure); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", name, err))
		}
		// One pod at a time: the next is chosen once the last one's
		// memory is seen freed.
		if !met || inFlight[name] {
			continue
		}
		victim, msg := chooseVictim(byNode[name], usage, avail, threshold)
		m.mu.Lock()
		said := np.nothingToEvict
		np.nothingToEvict = victim == nil
		if victim != nil {
			m.evicting[victim.UID] = &podEviction{node: name, message: msg}
		}
		m.mu.Unlock()
		if victim == nil {
			if !said {
				a.log.Info("node under memory pressure has no pod to evict", "node", name, "available", quantity(avail))
			}
			continue
		}
		a.log.Info("evicting pod", "node", name, "pod", victim.Namespace+"/"+victim.Name, "cluster", framework.ClusterOf(victim), "message", msg)
		a.queue.Enqueue(framework.KeyOf(victim))
	}
	return errors.Join(errs...)
}

func terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

func quantity(bytes int64) string { return resource.NewQuantity(bytes, resource.BinarySI).String() }

// measure is what the pods' running containers use (pods with none
// measured are absent), and whether the runtime measured the host.
func (m *evictionManager) measure(ctx context.Context, pods []*corev1.Pod) (map[types.UID]*podUsage, bool, error) {
	a := m.a
	sp, ok := a.opts.Runtime.(StatsProvider)
	if !ok {
		m.mu.Lock()
		if !m.noStats {
			a.log.Warn("the runtime measures no memory use: no pod will be evicted", "runtime", a.opts.Runtime.Name())
			m.noStats = true
		}
		m.mu.Unlock()
		return nil, false, nil
	}
	host, cs, err := sp.Stats(ctx, pods)
	if err != nil {
		return nil, false, fmt.Errorf("measuring memory use for eviction: %w", err)
	}
	byID := make(map[string]uint64, len(cs))
	for _, c := range cs {
		byID[c.ID] = c.MemoryWorkingSetBytes
	}
	prefix := a.opts.Runtime.Name() + "://"
	out := map[types.UID]*podUsage{}
	for _, p := range pods {
		if terminal(p) {
			continue
		}
		forRunning(p, func(name, id string) {
			ws, ok := byID[id]
			if !ok {
				return
			}
			u := out[p.UID]
			if u == nil {
				u = &podUsage{containers: map[string]int64{}}
				out[p.UID] = u
			}
			u.containers[name] += int64(ws)
			u.total += int64(ws)
		}, prefix)
	}
	return out, host != nil, nil
}

// memoryRequest is what the pod asks for: its containers and sidecars, or
// more while an init container runs, plus its overhead.
func memoryRequest(p *corev1.Pod) int64 {
	req := func(c *corev1.Container) int64 {
		q := c.Resources.Requests[corev1.ResourceMemory]
		return q.Value()
	}
	var sidecars, peak int64
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		if isSidecar(c) {
			sidecars += req(c)
			peak = max(peak, sidecars)
		} else {
			peak = max(peak, sidecars+req(c))
		}
	}
	var regular int64
	for i := range p.Spec.Containers {
		regular += req(&p.Spec.Containers[i])
	}
	total := max(peak, sidecars+regular)
	if q, ok := p.Spec.Overhead[corev1.ResourceMemory]; ok {
		total += q.Value()
	}
	return total
}

func containerMemoryRequest(p *corev1.Pod, name string) int64 {
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range list {
			if list[i].Name == name {
				q := list[i].Resources.Requests[corev1.ResourceMemory]
				return q.Value()
			}
		}
	}
	return 0
}

func priority(p *corev1.Pod) int32 {
	if p.Spec.Priority != nil {
		return *p.Spec.Priority
	}
	return 0
}

// evictionCandidate is a pod the ranking weighs.
type evictionCandidate struct {
	pod     *corev1.Pod
	usage   *podUsage // nil: not measured
	request int64
}

func (c *evictionCandidate) exceeds() bool { return c.usage != nil && c.usage.total > c.request }

// rankForMemory orders pods as the kubelet does under memory pressure:
// pods not measured yet (nothing tells they are harmless), then those
// using more than they request (best-effort pods request nothing), then
// lower priority, then more use over the request.
func rankForMemory(cs []evictionCandidate) {
	sort.SliceStable(cs, func(i, j int) bool {
		a, b := &cs[i], &cs[j]
		if (a.usage == nil) != (b.usage == nil) {
			return a.usage == nil
		}
		if a.exceeds() != b.exceeds() {
			return a.exceeds()
		}
		if pa, pb := priority(a.pod), priority(b.pod); pa != pb {
			return pa < pb
		}
		if a.usage != nil && b.usage != nil {
			if oa, ob := a.usage.total-a.request, b.usage.total-b.request; oa != ob {
				return oa > ob
			}
		}
		return a.pod.Namespace+"/"+a.pod.Name < b.pod.Namespace+"/"+b.pod.Name
	})
}

// chooseVictim is the pod to evict from a node's pods, and the message
// its status and Event carry; nil when none may go.
func chooseVictim(pods []*corev1.Pod, usage map[types.UID]*podUsage, available, threshold int64) (*corev1.Pod, string) {
	var cs []evictionCandidate
	for _, p := range pods {
		if terminal(p) || p.DeletionTimestamp != nil || priority(p) >= criticalPriority {
			continue
		}
		cs = append(cs, evictionCandidate{pod: p, usage: usage[p.UID], request: memoryRequest(p)})
	}
	if len(cs) == 0 {
		return nil, ""
	}
	rankForMemory(cs)
	v := cs[0]
	msg := fmt.Sprintf("The node was low on resource: memory. Threshold quantity: %s, available: %s.", quantity(threshold), quantity(available))
	if v.usage != nil {
		names := make([]string, 0, len(v.usage.containers))
		for n := range v.usage.containers {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			used, req := v.usage.containers[n], containerMemoryRequest(v.pod, n)
			if used > req {
				msg += fmt.Sprintf(" Container %s was using %s, request is %s, has larger consumption of memory.", n, quantity(used), quantity(req))
			}
		}
	}
	return v.pod, msg
}

// evictPod kills a pod chosen for eviction and reports it Failed, with
// the DisruptionTarget condition and an Evicted Event; called by its
// worker, as the runtime allows one call per pod at a time.
func (a *Agent) evictPod(ctx context.Context, k framework.Key, ns *nodeState, pod *corev1.Pod, ev *podEviction) error {
	node := ns.spec.Node
	// No grace: a hard threshold means the node is short now.
	rs, done, err := a.opts.Runtime.KillPod(ctx, node, pod, 0)
	if err != nil {
		return fmt.Errorf("evicting pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	a.record(ns, pod, rs.Events)
	if !done {
		return nil // the runtime's Changes say when the containers stopped
	}
	st := apiStatus(pod, &node, rs, true)
	st.Phase = corev1.PodFailed
	st.Reason, st.Message = reasonEvicted, ev.message
	st.Conditions = conditions(pod, rs, rs.InitContainerStatuses, rs.ContainerStatuses, corev1.PodFailed)
	dt := corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: reasonTerminationByKubelet,
		Message: ev.message, LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second))}
	if pod.Generation > 0 {
		dt.ObservedGeneration = pod.Generation
	}
	replaced := false
	for i := range st.Conditions {
		if st.Conditions[i].Type == corev1.DisruptionTarget {
			if st.Conditions[i].Status == corev1.ConditionTrue {
				dt.LastTransitionTime = st.Conditions[i].LastTransitionTime
			}
			st.Conditions[i], replaced = dt, true
		}
	}
	if !replaced {
		st.Conditions = append(st.Conditions, dt)
	}
	if err := a.writeStatus(ctx, k, pod, &st); err != nil {
		return fmt.Errorf("reporting pod %s/%s evicted: %w", pod.Namespace, pod.Name, err)
	}
	a.evict.mu.Lock()
	first := !ev.recorded
	ev.recorded = true
	a.evict.mu.Unlock()
	if first {
		ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
			UID: pod.UID, ResourceVersion: pod.ResourceVersion}
		ns.recorder.RefEventf(framework.ClusterOf(pod), ref, corev1.EventTypeWarning, reasonEvicted, "%s", ev.message)
	}
	return nil
}

// reconcileNode brings the node's MemoryPressure condition and taint in
// line with pressure. The node lifecycle controller taints by the
// condition too, as upstream; the agent does it at once and also where no
// controller manager runs.
func (m *evictionManager) reconcileNode(ctx context.Context, ns *nodeState, pressure bool) error {
	ns.mu.Lock()
	node := ns.node
	ns.mu.Unlock()
	if node == nil {
		return nil // not registered yet
	}
	want := corev1.ConditionFalse
	if pressure {
		want = corev1.ConditionTrue
	}
	var have corev1.ConditionStatus
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeMemoryPressure {
			have = c.Status
		}
	}
	if have != want {
		if err := m.a.updateNodeStatus(ctx, ns); err != nil {
			return fmt.Errorf("writing MemoryPressure=%s: %w", want, err)
		}
	}
	ns.mu.Lock()
	node = ns.node
	ns.mu.Unlock()
	if hasMemoryPressureTaint(node) == pressure {
		return nil
	}
	return m.setTaint(ctx, ns, pressure)
}

func hasMemoryPressureTaint(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeMemoryPressure && t.Effect == corev1.TaintEffectNoSchedule {
			return true
		}
	}
	return false
}

// setTaint adds or removes the node's memory-pressure taint.
func (m *evictionManager) setTaint(ctx context.Context, ns *nodeState, on bool) error {
	nodes := m.a.clients.For(m.a.cluster).CoreV1().Nodes()
	cur, err := nodes.Get(ctx, ns.spec.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("reading node for its memory-pressure taint: %w", err)
	}
	if hasMemoryPressureTaint(cur) != on {
		cur = cur.DeepCopy()
		framework.StripCluster(cur)
		if on {
			cur.Spec.Taints = append(cur.Spec.Taints, corev1.Taint{Key: corev1.TaintNodeMemoryPressure, Effect: corev1.TaintEffectNoSchedule})
		} else {
			var keep []corev1.Taint
			for _, t := range cur.Spec.Taints {
				if t.Key != corev1.TaintNodeMemoryPressure || t.Effect != corev1.TaintEffectNoSchedule {
					keep = append(keep, t)
				}
			}
			cur.Spec.Taints = keep
		}
		if cur, err = nodes.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating the node's memory-pressure taint: %w", err)
		}
	}
	ns.mu.Lock()
	ns.node = cur
	ns.mu.Unlock()
	return nil
}
