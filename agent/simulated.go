package agent

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Annotations that tell the simulated runtime how a pod's containers
// behave. Durations are Go durations ("1.5s", "2m"). A value may be one
// setting for every container, or NAME=VALUE pairs separated by commas
// for single containers (init containers included, by their names).
const (
	// AnnStartDelay: containers start this long after the pod reaches
	// the node (ContainerCreating meanwhile).
	AnnStartDelay = "pgkube.io/simulate-start-delay"
	// AnnReadyDelay: a running container is ready after this long.
	AnnReadyDelay = "pgkube.io/simulate-ready-delay"
	// AnnNeverReady: "true" (or container names, comma-separated): the
	// containers run but are never ready.
	AnnNeverReady = "pgkube.io/simulate-never-ready"
	// AnnExitCode: containers exit with this code after AnnExitAfter
	// (default: at once); a plain value applies to the (regular)
	// containers, NAME=CODE to any container.
	AnnExitCode = "pgkube.io/simulate-exit-code"
	// AnnExitAfter: containers exit (with AnnExitCode, default 0) after
	// running this long; a plain value applies to the (regular)
	// containers, NAME=DURATION to any container.
	AnnExitAfter = "pgkube.io/simulate-exit-after"
	// AnnTerminationDelay: on deletion, containers take this long to
	// stop; past the grace period they are killed (exit code 137).
	AnnTerminationDelay = "pgkube.io/simulate-termination-delay"
	// AnnImagePullError: "true" (or container names): the image cannot
	// be pulled (ErrImagePull, then ImagePullBackOff); the container
	// never starts.
	AnnImagePullError = "pgkube.io/simulate-image-pull-error"
)

// SimulatedOptions are the simulated runtime's defaults for pods without
// annotations.
type SimulatedOptions struct {
	StartDelay     time.Duration // default 0: containers start at once
	ReadyDelay     time.Duration // default 0: ready as soon as running
	RestartBackoff time.Duration // first back-off of a crashing container (default 10s, doubling to 5m)
}

// Simulated is a runtime that runs nothing: containers start, become
// ready, exit and restart on a schedule the pod's annotations set (see
// AnnStartDelay and the others), as KWOK does, so that one agent process
// can stand for hundreds of nodes.
type Simulated struct {
	opts    SimulatedOptions
	mu      sync.Mutex
	pods    map[types.UID]*simPod
	ips     map[string]*ipPool // by node
	changes chan types.UID
	now     func() time.Time
}

// NewSimulated makes a simulated runtime.
func NewSimulated(o SimulatedOptions) *Simulated {
	if o.RestartBackoff == 0 {
		o.RestartBackoff = 10 * time.Second
	}
	return &Simulated{opts: o, pods: map[types.UID]*simPod{}, ips: map[string]*ipPool{},
		changes: make(chan types.UID, 4096), now: time.Now}
}

// Name implements Runtime.
func (s *Simulated) Name() string { return "simulated" }

// Version implements Runtime.
func (s *Simulated) Version(context.Context) (string, error) { return "0.1.0", nil }

// Ready implements Runtime.
func (s *Simulated) Ready(context.Context) error { return nil }

// Changes implements Runtime.
func (s *Simulated) Changes() <-chan types.UID { return s.changes }

const maxRestartBackoff = 5 * time.Minute

// RestartBackoff is how long a kubelet waits before starting a container
// that exited after restarts restarts: at once the first time, then base
// doubling up to five minutes.
func RestartBackoff(base time.Duration, restarts int) time.Duration {
	if restarts <= 0 {
		return 0
	}
	delay := base
	for i := 1; i < restarts && delay < maxRestartBackoff; i++ {
		delay *= 2
	}
	return min(delay, maxRestartBackoff)
}

type cstate int

const (
	cWaiting cstate = iota
	cRunning
	cTerminated
)

type simContainer struct {
	name, image      string
	init, sidecar    bool
	exits            bool
	exitCode         int32
	exitAfter        time.Duration
	readyDelay       time.Duration
	neverReady       bool
	pullError        bool
	restartOnFailure bool // restart after a non-zero exit
	restartAlways    bool // restart after any exit

	state      cstate
	waitReason string
	waitMsg    string
	startAt    time.Time // when a waiting container starts (zero: not yet known)
	startedAt  time.Time
	finishedAt time.Time
	exitedWith int32
	exitReason string
	id         string
	restarts   int32
	last       *corev1.ContainerStateTerminated
	created    bool // has run at least once
}

type simPod struct {
	uid       types.UID
	ref       string // NAME_NAMESPACE(UID), as kubelet's messages
	node      string
	ip        string
	hostNet   bool
	created   time.Time
	init      []*simContainer
	cont      []*simContainer
	killing   bool
	killAt    time.Time
	killCode  int32
	termDelay time.Duration
	events    []ContainerEvent
	timer     *time.Timer
}

// setting reads an annotation for one container: NAME=VALUE pairs, or a
// plain value that applies when plain is true.
func setting(pod *corev1.Pod, ann, name string, plain bool) (string, bool) {
	v, ok := pod.Annotations[ann]
	if !ok {
		return "", false
	}
	v = strings.TrimSpace(v)
	if !strings.Contains(v, "=") {
		if plain {
			return v, true
		}
		// A list of names (for the boolean annotations).
		for _, n := range strings.Split(v, ",") {
			if strings.TrimSpace(n) == name {
				return "true", true
			}
		}
		return "", false
	}
	for _, kv := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(kv, "=")
		if strings.TrimSpace(k) == name {
			return strings.TrimSpace(val), true
		}
	}
	return "", false
}

func durationSetting(pod *corev1.Pod, ann, name string, plain bool, def time.Duration) time.Duration {
	if v, ok := setting(pod, ann, name, plain); ok {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			return d
		}
	}
	return def
}

func boolSetting(pod *corev1.Pod, ann, name string) bool {
	v, ok := setting(pod, ann, name, true)
	if !ok {
		return false
	}
	if v == "true" {
		return true
	}
	// A plain list of names.
	for _, n := range strings.Split(v, ",") {
		if strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}

func (s *Simulated) newContainer(pod *corev1.Pod, c *corev1.Container, init bool) *simContainer {
	sc := &simContainer{name: c.Name, image: c.Image, init: init, sidecar: init && isSidecar(c)}
	regular := !init || sc.sidecar
	if v, ok := setting(pod, AnnExitCode, c.Name, regular); ok {
		if n, err := strconv.Atoi(v); err == nil {
			sc.exits, sc.exitCode = true, int32(n)
		}
	}
	if _, ok := setting(pod, AnnExitAfter, c.Name, regular); ok {
		sc.exits = true
		sc.exitAfter = durationSetting(pod, AnnExitAfter, c.Name, regular, 0)
	}
	if init && !sc.sidecar {
		sc.exits = true // an init container runs to completion
	}
	sc.readyDelay = durationSetting(pod, AnnReadyDelay, c.Name, true, s.opts.ReadyDelay)
	if p := c.ReadinessProbe; p != nil && time.Duration(p.InitialDelaySeconds)*time.Second > sc.readyDelay {
		sc.readyDelay = time.Duration(p.InitialDelaySeconds) * time.Second
	}
	sc.neverReady = boolSetting(pod, AnnNeverReady, c.Name)
	sc.pullError = boolSetting(pod, AnnImagePullError, c.Name)
	switch {
	case sc.sidecar:
		sc.restartAlways = true
	case init:
		sc.restartOnFailure = pod.Spec.RestartPolicy != corev1.RestartPolicyNever
	default:
		sc.restartAlways = pod.Spec.RestartPolicy == corev1.RestartPolicyAlways || pod.Spec.RestartPolicy == ""
		sc.restartOnFailure = sc.restartAlways || pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure
	}
	sc.waitReason = "ContainerCreating"
	if !init {
		if len(pod.Spec.InitContainers) > 0 {
			sc.waitReason = "PodInitializing"
		}
	} else {
		sc.waitReason = "PodInitializing"
	}
	return sc
}

func (s *Simulated) newPod(node Node, pod *corev1.Pod) *simPod {
	now := s.now().Truncate(time.Second)
	p := &simPod{uid: pod.UID, ref: fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID), node: node.Name,
		created: now.Add(durationSetting(pod, AnnStartDelay, "", true, s.opts.StartDelay)),
		hostNet: pod.Spec.HostNetwork, termDelay: durationSetting(pod, AnnTerminationDelay, "", true, 0)}
	for i := range pod.Spec.InitContainers {
		p.init = append(p.init, s.newContainer(pod, &pod.Spec.InitContainers[i], true))
	}
	for i := range pod.Spec.Containers {
		p.cont = append(p.cont, s.newContainer(pod, &pod.Spec.Containers[i], false))
	}
	if p.hostNet {
		p.ip = node.InternalIP
	} else {
		p.ip = s.pool(node).get(pod.Status.PodIP)
	}
	s.adopt(p, pod)
	return p
}

// adopt carries on from the status a pod already reports (the agent
// restarted): running containers keep running from when they started.
func (s *Simulated) adopt(p *simPod, pod *corev1.Pod) {
	if pod.Status.StartTime == nil {
		return
	}
	p.created = pod.Status.StartTime.Time
	take := func(cs []*simContainer, sts []corev1.ContainerStatus) {
		for _, c := range cs {
			st, ok := statusOf(sts, c.name)
			if !ok {
				continue
			}
			c.restarts = st.RestartCount
			c.last = st.LastTerminationState.Terminated
			c.id = strings.TrimPrefix(st.ContainerID, "simulated://")
			c.created = c.id != ""
			switch {
			case st.State.Running != nil:
				c.state, c.startedAt = cRunning, st.State.Running.StartedAt.Time
			case st.State.Terminated != nil:
				t := st.State.Terminated
				c.state, c.startedAt, c.finishedAt, c.exitedWith, c.exitReason = cTerminated, t.StartedAt.Time, t.FinishedAt.Time, t.ExitCode, t.Reason
			}
		}
	}
	take(p.init, pod.Status.InitContainerStatuses)
	take(p.cont, pod.Status.ContainerStatuses)
}

// SyncPod implements Runtime.
func (s *Simulated) SyncPod(_ context.Context, node Node, pod *corev1.Pod) (*PodStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pods[pod.UID]
	if p == nil {
		p = s.newPod(node, pod)
		s.pods[pod.UID] = p
	}
	return s.report(p), nil
}

// KillPod implements Runtime.
func (s *Simulated) KillPod(_ context.Context, node Node, pod *corev1.Pod, grace time.Duration) (*PodStatus, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pods[pod.UID]
	if p == nil {
		p = s.newPod(node, pod)
		s.pods[pod.UID] = p
	}
	now := s.now()
	if !p.killing {
		s.advance(p, now)
		p.killing = true
		d := p.termDelay
		p.killCode = 0
		if d > grace {
			d, p.killCode = grace, 137
		}
		p.killAt = now.Add(d)
		for _, c := range append(append([]*simContainer{}, p.init...), p.cont...) {
			if c.state == cRunning {
				p.events = append(p.events, ContainerEvent{Container: c.name, Init: c.init, Type: corev1.EventTypeNormal,
					Reason: "Killing", Message: fmt.Sprintf("Stopping container %s", c.name)})
			}
		}
	}
	st := s.report(p)
	done := true
	for _, c := range append(append([]*simContainer{}, p.init...), p.cont...) {
		if c.state == cRunning {
			done = false
		}
	}
	return st, done, nil
}

// RemovePod implements Runtime.
func (s *Simulated) RemovePod(_ context.Context, uid types.UID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pods[uid]
	if p == nil {
		return nil
	}
	if p.timer != nil {
		p.timer.Stop()
	}
	if !p.hostNet {
		if pool := s.ips[p.node]; pool != nil {
			pool.put(p.ip)
		}
	}
	delete(s.pods, uid)
	return nil
}

// report advances the pod to now, arms its timer for the next change and
// returns its status.
func (s *Simulated) report(p *simPod) *PodStatus {
	now := s.now()
	next := s.advance(p, now)
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	if !next.IsZero() {
		uid := p.uid
		p.timer = time.AfterFunc(max(next.Sub(now), 0)+10*time.Millisecond, func() { s.notify(uid) })
	}
	st := &PodStatus{SandboxReady: !now.Before(p.created), Events: p.events}
	p.events = nil
	if st.SandboxReady && p.ip != "" {
		st.PodIPs = []string{p.ip}
	}
	for _, c := range p.init {
		st.InitContainerStatuses = append(st.InitContainerStatuses, c.status(now))
	}
	for _, c := range p.cont {
		st.ContainerStatuses = append(st.ContainerStatuses, c.status(now))
	}
	return st
}

func (s *Simulated) notify(uid types.UID) {
	select {
	case s.changes <- uid:
	default:
		go func() { s.changes <- uid }()
	}
}

// advance moves the pod's containers through what happened up to now and
// returns when the next change is due (zero: none).
func (s *Simulated) advance(p *simPod, now time.Time) time.Time {
	var next time.Time
	due := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if p.killing {
		for _, c := range append(append([]*simContainer{}, p.init...), p.cont...) {
			if c.state == cRunning {
				if !now.Before(p.killAt) {
					c.terminate(p.killAt, p.killCode)
				} else {
					due(p.killAt)
				}
			}
		}
		return next
	}
	earliest := p.created
	if now.Before(earliest) {
		return earliest
	}
	initDone := true
	for _, c := range p.init {
		s.step(p, c, now, earliest, due)
		if c.sidecar && c.state == cRunning {
			continue
		}
		if !c.sidecar && c.state == cTerminated && c.exitedWith == 0 {
			earliest = c.finishedAt
			continue
		}
		initDone = false
		break
	}
	if !initDone {
		return next
	}
	for _, c := range p.cont {
		if c.waitReason == "PodInitializing" && c.state == cWaiting && !c.created {
			c.waitReason = "ContainerCreating"
		}
		s.step(p, c, now, earliest, due)
	}
	return next
}

// step moves one container on: start, readiness, exit, restart.
func (s *Simulated) step(p *simPod, c *simContainer, now, earliest time.Time, due func(time.Time)) {
	for range 64 { // a few transitions per call at most
		switch c.state {
		case cWaiting:
			if c.pullError {
				if c.waitReason != "ErrImagePull" && c.waitReason != "ImagePullBackOff" {
					c.waitReason = "ErrImagePull"
					c.waitMsg = fmt.Sprintf("failed to pull and unpack image %q: simulated pull error", c.image)
					p.events = append(p.events, ContainerEvent{Container: c.name, Init: c.init, Type: corev1.EventTypeWarning,
						Reason: "Failed", Message: fmt.Sprintf("Failed to pull image %q: simulated pull error", c.image)})
					due(now.Add(time.Second))
				} else {
					c.waitReason = "ImagePullBackOff"
					c.waitMsg = fmt.Sprintf("Back-off pulling image %q", c.image)
				}
				return
			}
			if c.startAt.IsZero() {
				c.startAt = earliest
			}
			if now.Before(c.startAt) {
				due(c.startAt)
				return
			}
			c.start(p)
		case cRunning:
			if c.exits {
				at := c.startedAt.Add(c.exitAfter)
				if now.Before(at) {
					due(at)
				} else {
					c.terminate(at, c.exitCode)
					continue
				}
			}
			if !c.neverReady {
				due(c.startedAt.Add(c.readyDelay))
			}
			return
		case cTerminated:
			if !(c.restartAlways || (c.restartOnFailure && c.exitedWith != 0)) {
				return
			}
			delay := RestartBackoff(s.opts.RestartBackoff, int(c.restarts))
			c.last = &corev1.ContainerStateTerminated{ExitCode: c.exitedWith, Reason: c.exitReason,
				StartedAt: metav1.NewTime(c.startedAt), FinishedAt: metav1.NewTime(c.finishedAt), ContainerID: "simulated://" + c.id}
			c.state = cWaiting
			c.startAt = c.finishedAt.Add(delay)
			if delay > 0 {
				c.waitReason = "CrashLoopBackOff"
				c.waitMsg = fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", delay, c.name, p.ref)
				p.events = append(p.events, ContainerEvent{Container: c.name, Init: c.init, Type: corev1.EventTypeWarning,
					Reason: "BackOff", Message: fmt.Sprintf("Back-off restarting failed container %s in pod %s", c.name, p.ref)})
			}
			if now.Before(c.startAt) {
				due(c.startAt)
				return
			}
			c.start(p)
		}
	}
}

func (c *simContainer) start(p *simPod) {
	if c.created {
		c.restarts++ // a new instance of a container that ran before
	}
	c.state = cRunning
	c.startedAt = c.startAt.Truncate(time.Second)
	c.id = newContainerID()
	c.waitReason, c.waitMsg = "", ""
	c.created = true
	p.events = append(p.events,
		ContainerEvent{Container: c.name, Init: c.init, Type: corev1.EventTypeNormal, Reason: "Pulled",
			Message: fmt.Sprintf("Container image %q already present on machine", c.image)},
		ContainerEvent{Container: c.name, Init: c.init, Type: corev1.EventTypeNormal, Reason: "Created", Message: "Container created"},
		ContainerEvent{Container: c.name, Init: c.init, Type: corev1.EventTypeNormal, Reason: "Started", Message: "Container started"})
}

func (c *simContainer) terminate(at time.Time, code int32) {
	c.state = cTerminated
	c.finishedAt = at.Truncate(time.Second)
	c.exitedWith = code
	c.exitReason = "Completed"
	if code != 0 {
		c.exitReason = "Error"
	}
}

func (c *simContainer) status(now time.Time) corev1.ContainerStatus {
	st := corev1.ContainerStatus{Name: c.name, Image: normalizeImage(c.image), ImageID: imageID(c.image),
		RestartCount: c.restarts}
	if c.last != nil {
		st.LastTerminationState.Terminated = c.last.DeepCopy()
	}
	started := false
	switch c.state {
	case cWaiting:
		st.State.Waiting = &corev1.ContainerStateWaiting{Reason: c.waitReason, Message: c.waitMsg}
		if c.last != nil {
			st.ContainerID = c.last.ContainerID
		}
		if c.pullError || !c.created {
			st.ImageID = ""
		}
	case cRunning:
		st.ContainerID = "simulated://" + c.id
		st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(c.startedAt)}
		started = true
		st.Ready = !c.neverReady && !now.Before(c.startedAt.Add(c.readyDelay))
		if c.init && !c.sidecar {
			st.Ready = false
		}
	case cTerminated:
		st.ContainerID = "simulated://" + c.id
		st.State.Terminated = &corev1.ContainerStateTerminated{ExitCode: c.exitedWith, Reason: c.exitReason,
			StartedAt: metav1.NewTime(c.startedAt), FinishedAt: metav1.NewTime(c.finishedAt), ContainerID: st.ContainerID}
		st.Ready = c.init && !c.sidecar && c.exitedWith == 0
	}
	st.Started = &started
	return st
}

func newContainerID() string {
	b := make([]byte, 32)
	rand.Read(b) //nolint:errcheck // never fails
	return hex.EncodeToString(b)
}

// normalizeImage is the image reference as a runtime reports it:
// registry and tag spelled out (busybox → docker.io/library/busybox:latest).
func normalizeImage(image string) string {
	name, digest, hasDigest := strings.Cut(image, "@")
	first, _, hasSlash := strings.Cut(name, "/")
	switch {
	case !hasSlash:
		name = "docker.io/library/" + name
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		name = "docker.io/" + name
	}
	if hasDigest {
		return name + "@" + digest
	}
	if i := strings.LastIndex(name, ":"); i < 0 || strings.Contains(name[i:], "/") {
		name += ":latest"
	}
	return name
}

// imageID is a made-up digest of the image, stable across pods.
func imageID(image string) string {
	n := normalizeImage(image)
	repo := n
	if i := strings.Index(repo, "@"); i >= 0 {
		return n
	}
	if i := strings.LastIndex(repo, ":"); i >= 0 && !strings.Contains(repo[i:], "/") {
		repo = repo[:i]
	}
	sum := sha256.Sum256([]byte(n))
	return repo + "@sha256:" + hex.EncodeToString(sum[:])
}

// ipPool hands out the addresses of a node's pod CIDR.
type ipPool struct {
	base net.IP // network address
	size int
	next int
	used map[string]bool
}

func (s *Simulated) pool(node Node) *ipPool {
	p := s.ips[node.Name]
	if p != nil {
		return p
	}
	p = &ipPool{used: map[string]bool{}}
	if _, n, err := net.ParseCIDR(node.PodCIDR); err == nil && n.IP.To4() != nil {
		ones, bits := n.Mask.Size()
		p.base, p.size = n.IP.To4(), 1<<(bits-ones)
	}
	s.ips[node.Name] = p
	return p
}

// get hands out an address (want, when it is free and from this pool).
func (p *ipPool) get(want string) string {
	if p.base == nil || p.size < 4 {
		return ""
	}
	if want != "" && !p.used[want] {
		p.used[want] = true
		return want
	}
	for range p.size {
		p.next++
		if p.next >= p.size-1 {
			p.next = 1
		}
		ip := make(net.IP, 4)
		copy(ip, p.base)
		v := uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
		v += uint32(p.next)
		ip[0], ip[1], ip[2], ip[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		if s := ip.String(); !p.used[s] {
			p.used[s] = true
			return s
		}
	}
	return ""
}

func (p *ipPool) put(ip string) { delete(p.used, ip) }
