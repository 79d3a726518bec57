package probe

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Kind is the kind of a container probe.
type Kind int

const (
	Liveness Kind = iota
	Readiness
	Startup
)

// String is the kind as the kubelet's events name it.
func (k Kind) String() string {
	switch k {
	case Liveness:
		return "Liveness"
	case Readiness:
		return "Readiness"
	case Startup:
		return "Startup"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Reasons of the events the manager reports.
const (
	ReasonUnhealthy    = "Unhealthy"
	ReasonProbeWarning = "ProbeWarning"
)

// ContainerState is how one container of a pod runs now, as the runtime
// reports it.
type ContainerState struct {
	// ID is the runtime's ID of this run of the container; a new ID is a
	// new run (a restart), whose probes start over.
	ID string
	// Running: the container's process runs (not waiting, not exited).
	Running bool
	// StartedAt is when it started running; initialDelaySeconds counts
	// from it. Zero: long ago.
	StartedAt time.Time
}

// Event is a Warning event about a container that the agent records on
// its pod (Type is always Warning; Reason Unhealthy or ProbeWarning).
type Event struct {
	Container string
	Type      string
	Reason    string
	Message   string
}

// Kill is a running container whose liveness or startup probe failed
// failureThreshold times in a row: the runtime kills it (and restarts it
// when Restart). It stays reported until the container's ID changes,
// so a kill that fails is asked again at the next sync; the runtime kills
// only a container whose current ID is ContainerID.
type Kill struct {
	Container   string
	ContainerID string
	Kind        Kind // Liveness or Startup
	// Restart: the container's restart policy has it started again.
	Restart bool
	// Message is the kubelet's for the Killing event, e.g. "Container
	// web failed liveness probe, will be restarted".
	Message string
}

// Config is what a Manager reports to.
type Config struct {
	// OnChange is called (from a worker, without locks held) when a
	// result that Ready, Started or LivenessFailed report flipped: the
	// agent then syncs the pod. May be nil.
	OnChange func(podUID types.UID)
	// OnEvent is called (from a worker, without locks held) for each
	// probe event. When nil, events queue up for Events to drain.
	OnEvent func(podUID types.UID, e Event)
	// Exec runs exec probes in containers; nil makes them fail to run
	// (an "errored" event, no result).
	Exec Execer
}

// maxQueuedEvents bounds the events of a pod waiting for Events: a probe
// failing every second while nobody drains must not grow without limit.
const maxQueuedEvents = 64

// Manager runs the probes of the containers of many pods, one worker
// (goroutine) per pod, container and probe kind, and keeps their results,
// as the kubelet's prober manager does:
//
//   - a worker probes every periodSeconds (default 10), not before
//     initialDelaySeconds after the container started;
//   - a result changes only after successThreshold successes (default 1)
//     or failureThreshold failures (default 3) in a row;
//   - until the startup probe succeeds, liveness and readiness probes do
//     not run and the container is neither started nor ready; without a
//     startup probe a running container is started;
//   - a container with a readiness probe is not ready until it succeeds;
//     one without is ready once started;
//   - a liveness or startup failure stops that probe until the container
//     runs again under a new ID, when all its results start over;
//   - once the pod is being deleted, liveness and startup probes stop (a
//     terminating container is not restarted) and count as succeeded.
//
// The agent calls Update whenever it learns how the pod's containers run,
// reads Started, Ready and LivenessFailed to build the pod's status and
// decide kills, and calls Remove when the pod is gone.
type Manager struct {
	cfg Config
	// unit is how long one second of a probe's periodSeconds and
	// initialDelaySeconds lasts; tests shorten it.
	unit time.Duration
	// manual: no goroutines; tests step the workers themselves.
	manual bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	pods map[types.UID]*podProbes
}

type podProbes struct {
	pod        *corev1.Pod
	podIP      string
	containers map[string]ContainerState
	workers    map[workerKey]*worker
	events     []Event
}

type workerKey struct {
	container string
	kind      Kind
}

type worker struct {
	uid       types.UID
	key       workerKey
	container *corev1.Container
	spec      *corev1.Probe
	cancel    context.CancelFunc
	trigger   chan struct{}

	// Guarded by Manager.mu. containerID is the run the results are of.
	containerID string
	result      Result
	last        Result
	run         int
	onHold      bool
}

// NewManager returns a Manager reporting to cfg. Close stops it.
func NewManager(cfg Config) *Manager {
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, unit: time.Second, ctx: ctx, cancel: cancel, pods: map[types.UID]*podProbes{}}
}

// Close stops all workers and waits for them.
func (m *Manager) Close() {
	m.cancel()
	m.wg.Wait()
}

// Update tells the manager the pod (its spec, deletion) and how its
// containers run now, by name (a container not in containers has not been
// created). It starts the workers of the pod's probes, those of its
// containers and of its restartable (sidecar) init containers, and starts
// a container's results over when its ID changed.
func (m *Manager) Update(pod *corev1.Pod, podIP string, containers map[string]ContainerState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return
	}
	ps := m.pods[pod.UID]
	if ps == nil {
		ps = &podProbes{workers: map[workerKey]*worker{}}
		m.pods[pod.UID] = ps
	}
	old := ps.containers
	ps.pod, ps.podIP, ps.containers = pod, podIP, maps.Clone(containers)

	for _, c := range probedContainers(pod) {
		for kind, spec := range map[Kind]*corev1.Probe{Liveness: c.LivenessProbe, Readiness: c.ReadinessProbe, Startup: c.StartupProbe} {
			key := workerKey{c.Name, kind}
			if spec == nil || ps.workers[key] != nil {
				continue
			}
			ctx, cancel := context.WithCancel(m.ctx)
			w := &worker{uid: pod.UID, key: key, container: c, spec: spec, cancel: cancel, trigger: make(chan struct{}, 1)}
			w.reset("")
			ps.workers[key] = w
			if !m.manual {
				m.wg.Add(1)
				go m.run(ctx, w)
			}
		}
	}
	for key, w := range ps.workers {
		cs := ps.containers[key.container]
		switch {
		case cs.ID != w.containerID:
			w.reset(cs.ID)
			w.poke()
		case cs.Running != old[key.container].Running:
			w.poke()
		}
	}
}

// probedContainers are the containers whose probes run: the regular ones
// and the init containers that run alongside them (restartPolicy Always).
func probedContainers(pod *corev1.Pod) []*corev1.Container {
	var cs []*corev1.Container
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			cs = append(cs, c)
		}
	}
	for i := range pod.Spec.Containers {
		cs = append(cs, &pod.Spec.Containers[i])
	}
	return cs
}

// Remove stops the probes of the pod and forgets it.
func (m *Manager) Remove(podUID types.UID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.pods[podUID]
	if ps == nil {
		return
	}
	for _, w := range ps.workers {
		w.cancel()
	}
	delete(m.pods, podUID)
}

// Started reports whether the container runs and its startup probe (if
// any) succeeded: the container status's started.
func (m *Manager) Started(podUID types.UID, container string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.pods[podUID]
	if ps == nil {
		return false
	}
	return ps.started(container)
}

func (ps *podProbes) started(container string) bool {
	cs, ok := ps.containers[container]
	if !ok || !cs.Running {
		return false
	}
	w := ps.workers[workerKey{container, Startup}]
	return w == nil || (w.containerID == cs.ID && w.result == Success)
}

// Ready reports whether the container is started and its readiness probe
// (if any) succeeded: the container status's ready.
func (m *Manager) Ready(podUID types.UID, container string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.pods[podUID]
	if ps == nil || !ps.started(container) {
		return false
	}
	w := ps.workers[workerKey{container, Readiness}]
	return w == nil || (w.containerID == ps.containers[container].ID && w.result == Success)
}

// LivenessFailed lists the running containers of the pod that failed
// their liveness or startup probe, in the order of their names.
func (m *Manager) LivenessFailed(podUID types.UID) []Kill {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.pods[podUID]
	if ps == nil {
		return nil
	}
	var kills []Kill
	for _, name := range slices.Sorted(maps.Keys(ps.containers)) {
		cs := ps.containers[name]
		if !cs.Running {
			continue
		}
		for _, kind := range []Kind{Liveness, Startup} {
			w := ps.workers[workerKey{name, kind}]
			if w == nil || w.containerID != cs.ID || w.result != Failure {
				continue
			}
			restart := restarts(ps.pod, w.container)
			msg := fmt.Sprintf("Container %s failed %s probe", name, map[Kind]string{Liveness: "liveness", Startup: "startup"}[kind])
			if restart {
				msg += ", will be restarted"
			}
			kills = append(kills, Kill{Container: name, ContainerID: cs.ID, Kind: kind, Restart: restart, Message: msg})
			break
		}
	}
	return kills
}

// restarts: a container killed by a probe exits with an error, which
// every restart policy but Never restarts.
func restarts(pod *corev1.Pod, c *corev1.Container) bool {
	if c.RestartPolicy != nil {
		return *c.RestartPolicy != corev1.ContainerRestartPolicyNever
	}
	return pod.Spec.RestartPolicy != corev1.RestartPolicyNever
}

// Events drains the events of the pod queued since the last call (only
// when Config.OnEvent is nil).
func (m *Manager) Events(podUID types.UID) []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.pods[podUID]
	if ps == nil {
		return nil
	}
	evs := ps.events
	ps.events = nil
	return evs
}

func (w *worker) reset(containerID string) {
	w.containerID = containerID
	w.last, w.run, w.onHold = Unknown, 0, false
	switch w.key.kind {
	case Liveness:
		// Healthy until proven otherwise: an unprobed container is not
		// killed.
		w.result = Success
	case Readiness:
		w.result = Failure
	default:
		w.result = Unknown
	}
}

// poke makes the worker probe now rather than at its next period.
func (w *worker) poke() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

func (m *Manager) run(ctx context.Context, w *worker) {
	defer m.wg.Done()
	period := time.Duration(orDefault(w.spec.PeriodSeconds, 10)) * m.unit
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		m.step(ctx, w)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-w.trigger:
		}
	}
}

func orDefault(v, def int32) int32 {
	if v <= 0 {
		return def
	}
	return v
}

// step makes one probe attempt if the container's state calls for one and
// applies its result.
func (m *Manager) step(ctx context.Context, w *worker) {
	m.mu.Lock()
	ps := m.pods[w.uid]
	if ps == nil || ps.workers[w.key] != w {
		m.mu.Unlock()
		return
	}
	cs, ok := ps.containers[w.key.container]
	if !ok || cs.ID == "" || !cs.Running || cs.ID != w.containerID {
		m.mu.Unlock()
		return
	}
	// A terminating pod is being stopped: restarting one of its
	// containers (even one whose liveness already failed) would fight
	// that.
	if ps.pod.DeletionTimestamp != nil && w.key.kind != Readiness {
		changed := w.result != Success
		w.result, w.onHold = Success, true
		m.mu.Unlock()
		if changed {
			m.changed(w.uid)
		}
		return
	}
	if w.onHold {
		m.mu.Unlock()
		return
	}
	delay := time.Duration(w.spec.InitialDelaySeconds) * m.unit
	if !cs.StartedAt.IsZero() && time.Since(cs.StartedAt) < delay {
		m.mu.Unlock()
		return
	}
	// The startup probe gates the others, and is done once it passed.
	if ps.started(w.key.container) != (w.key.kind != Startup) {
		m.mu.Unlock()
		return
	}
	t := Target{PodIP: ps.podIP, ContainerID: cs.ID, Container: w.container, Exec: m.cfg.Exec}
	m.mu.Unlock()

	res, out, err := do(ctx, w.spec, t, timeoutOf(w.spec))
	if ctx.Err() != nil {
		return
	}

	var ev *Event
	switch {
	case err != nil:
		ev = &Event{Reason: ReasonUnhealthy, Message: fmt.Sprintf("%s probe errored and resulted in %s state: %v", w.key.kind, Unknown, err)}
	case res == Warning:
		ev = &Event{Reason: ReasonProbeWarning, Message: fmt.Sprintf("%s probe warning: %s", w.key.kind, out)}
		res = Success
	case res == Failure:
		ev = &Event{Reason: ReasonUnhealthy, Message: fmt.Sprintf("%s probe failed: %s", w.key.kind, out)}
	case res == Unknown:
		res = Failure
	}

	m.mu.Lock()
	if m.pods[w.uid] != ps || ps.workers[w.key] != w || ps.containers[w.key.container].ID != t.ContainerID || w.containerID != t.ContainerID {
		// Removed, or the container restarted while probed: the result
		// is of a run that is gone.
		m.mu.Unlock()
		return
	}
	if ev != nil {
		ev.Container, ev.Type = w.key.container, corev1.EventTypeWarning
		if m.cfg.OnEvent == nil {
			ps.events = append(ps.events, *ev)
			if n := len(ps.events) - maxQueuedEvents; n > 0 {
				ps.events = slices.Delete(ps.events, 0, n)
			}
		}
	}
	changed, startedNow := false, false
	if err == nil {
		if res == w.last {
			w.run++
		} else {
			w.last, w.run = res, 1
		}
		threshold := orDefault(w.spec.SuccessThreshold, 1)
		if res == Failure {
			threshold = orDefault(w.spec.FailureThreshold, 3)
		}
		if w.run >= int(threshold) {
			changed = w.result != res
			w.result = res
			startedNow = changed && w.key.kind == Startup && res == Success
			// A failed container is about to be killed: probing it
			// meanwhile only races with the kill. A started one needs no
			// more startup probes.
			if (w.key.kind == Liveness && res == Failure) || w.key.kind == Startup {
				w.onHold, w.run = true, 0
			}
		}
	}
	if startedNow {
		// Liveness and readiness probes were waiting for the start: run
		// them now rather than up to a period later.
		for _, k := range []Kind{Liveness, Readiness} {
			if o := ps.workers[workerKey{w.key.container, k}]; o != nil {
				o.poke()
			}
		}
	}
	m.mu.Unlock()

	if ev != nil && m.cfg.OnEvent != nil {
		m.cfg.OnEvent(w.uid, *ev)
	}
	if changed {
		m.changed(w.uid)
	}
}

func (m *Manager) changed(uid types.UID) {
	if m.cfg.OnChange != nil {
		m.cfg.OnChange(uid)
	}
}
