package probe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// health is an HTTP endpoint whose status code the test sets, counting
// the probes it answers.
type healthEndpoint struct {
	code atomic.Int32
	hits atomic.Int32
	ip   string
	port int32
}

func newHealth(t *testing.T, code int) *healthEndpoint {
	h := &healthEndpoint{}
	h.code.Store(int32(code))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		w.WriteHeader(int(h.code.Load()))
	}))
	t.Cleanup(srv.Close)
	ip, port := hostPort(t, srv.URL)
	h.ip, h.port = ip, int32(port)
	return h
}

func (h *healthEndpoint) probe() *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(h.port), Path: "/"}}, PeriodSeconds: 1}
}

// recorder collects what a manager reports.
type recorder struct {
	mu      sync.Mutex
	changes []types.UID
	events  []Event
	changed chan types.UID
}

func newRecorder() *recorder { return &recorder{changed: make(chan types.UID, 100)} }

func (r *recorder) config() Config {
	return Config{
		OnChange: func(uid types.UID) {
			r.mu.Lock()
			r.changes = append(r.changes, uid)
			r.mu.Unlock()
			r.changed <- uid
		},
		OnEvent: func(_ types.UID, e Event) {
			r.mu.Lock()
			r.events = append(r.events, e)
			r.mu.Unlock()
		},
	}
}

func (r *recorder) nChanges() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.changes)
}

func (r *recorder) messages() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ms []string
	for _, e := range r.events {
		ms = append(ms, e.Reason+": "+e.Message)
	}
	return ms
}

// manualManager steps its workers only when the test says so.
func manualManager(cfg Config) *Manager {
	m := NewManager(cfg)
	m.manual = true
	return m
}

func step(t *testing.T, m *Manager, uid types.UID, container string, kind Kind, times int) {
	t.Helper()
	m.mu.Lock()
	var w *worker
	if ps := m.pods[uid]; ps != nil {
		w = ps.workers[workerKey{container, kind}]
	}
	m.mu.Unlock()
	if w == nil {
		t.Fatalf("no %v worker for %s", kind, container)
	}
	for range times {
		m.step(context.Background(), w)
	}
}

func testPod(containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1"},
		Spec:       corev1.PodSpec{Containers: containers, RestartPolicy: corev1.RestartPolicyAlways},
	}
}

func running(id string) map[string]ContainerState {
	return map[string]ContainerState{"web": {ID: id, Running: true, StartedAt: time.Now().Add(-time.Hour)}}
}

func TestNoProbes(t *testing.T) {
	m := manualManager(Config{})
	defer m.Close()
	pod := testPod(corev1.Container{Name: "web"})
	if m.Ready(pod.UID, "web") || m.Started(pod.UID, "web") {
		t.Fatal("ready/started before any update")
	}
	m.Update(pod, "127.0.0.1", map[string]ContainerState{"web": {ID: "c1"}})
	if m.Ready(pod.UID, "web") || m.Started(pod.UID, "web") {
		t.Fatal("ready/started while not running")
	}
	m.Update(pod, "127.0.0.1", running("c1"))
	if !m.Ready(pod.UID, "web") || !m.Started(pod.UID, "web") {
		t.Fatal("a running container without probes is not ready and started")
	}
	m.Remove(pod.UID)
	if m.Ready(pod.UID, "web") {
		t.Fatal("ready after Remove")
	}
}

func TestLivenessThreshold(t *testing.T) {
	h := newHealth(t, 500)
	rec := newRecorder()
	m := manualManager(rec.config())
	defer m.Close()
	pod := testPod(corev1.Container{Name: "web", LivenessProbe: h.probe()})
	m.Update(pod, h.ip, running("c1"))

	step(t, m, pod.UID, "web", Liveness, 2)
	if k := m.LivenessFailed(pod.UID); len(k) != 0 || rec.nChanges() != 0 {
		t.Fatalf("killed after 2 failures of a threshold of 3: %v", k)
	}
	step(t, m, pod.UID, "web", Liveness, 1)
	kills := m.LivenessFailed(pod.UID)
	want := Kill{Container: "web", ContainerID: "c1", Kind: Liveness, Restart: true, Message: "Container web failed liveness probe, will be restarted"}
	if len(kills) != 1 || kills[0] != want {
		t.Fatalf("kills %+v, want %+v", kills, want)
	}
	if rec.nChanges() != 1 {
		t.Errorf("%d changes, want 1", rec.nChanges())
	}
	// Still reported until the container is replaced.
	if len(m.LivenessFailed(pod.UID)) != 1 {
		t.Error("the kill is no longer reported")
	}
	msgs := rec.messages()
	if len(msgs) != 3 || msgs[0] != "Unhealthy: Liveness probe failed: HTTP probe failed with statuscode: 500" {
		t.Errorf("events %q", msgs)
	}
	if rec.events[0].Type != corev1.EventTypeWarning || rec.events[0].Container != "web" {
		t.Errorf("event %+v", rec.events[0])
	}
	// On hold: no more probes of the doomed container.
	hits := h.hits.Load()
	step(t, m, pod.UID, "web", Liveness, 2)
	if h.hits.Load() != hits {
		t.Error("probed a container that failed liveness")
	}

	// A new run starts over: healthy until it fails three times again.
	h.code.Store(200)
	m.Update(pod, h.ip, running("c2"))
	if k := m.LivenessFailed(pod.UID); len(k) != 0 {
		t.Fatalf("kills %v after a restart", k)
	}
	step(t, m, pod.UID, "web", Liveness, 1)
	if h.hits.Load() != hits+1 {
		t.Error("the new container is not probed")
	}
}

func TestLivenessNeverRestart(t *testing.T) {
	h := newHealth(t, 500)
	m := manualManager(Config{})
	defer m.Close()
	p := h.probe()
	p.FailureThreshold = 1
	pod := testPod(corev1.Container{Name: "web", LivenessProbe: p})
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	m.Update(pod, h.ip, running("c1"))
	step(t, m, pod.UID, "web", Liveness, 1)
	kills := m.LivenessFailed(pod.UID)
	if len(kills) != 1 || kills[0].Restart || kills[0].Message != "Container web failed liveness probe" {
		t.Fatalf("kills %+v", kills)
	}
	// Queued events, since no OnEvent was given; drained once.
	if evs := m.Events(pod.UID); len(evs) != 1 || evs[0].Message != "Liveness probe failed: HTTP probe failed with statuscode: 500" {
		t.Errorf("events %+v", evs)
	}
	if evs := m.Events(pod.UID); len(evs) != 0 {
		t.Errorf("events not drained: %+v", evs)
	}
}

func TestReadinessThresholdsAndFlip(t *testing.T) {
	h := newHealth(t, 200)
	rec := newRecorder()
	m := manualManager(rec.config())
	defer m.Close()
	p := h.probe()
	p.SuccessThreshold, p.FailureThreshold = 2, 2
	pod := testPod(corev1.Container{Name: "web", ReadinessProbe: p})
	m.Update(pod, h.ip, running("c1"))
	if m.Ready(pod.UID, "web") {
		t.Fatal("ready before its probe succeeded")
	}
	if !m.Started(pod.UID, "web") {
		t.Fatal("not started without a startup probe")
	}
	step(t, m, pod.UID, "web", Readiness, 1)
	if m.Ready(pod.UID, "web") {
		t.Fatal("ready after 1 success of a threshold of 2")
	}
	step(t, m, pod.UID, "web", Readiness, 1)
	if !m.Ready(pod.UID, "web") || rec.nChanges() != 1 {
		t.Fatalf("ready %v changes %d after 2 successes", m.Ready(pod.UID, "web"), rec.nChanges())
	}
	h.code.Store(503)
	step(t, m, pod.UID, "web", Readiness, 1)
	if !m.Ready(pod.UID, "web") {
		t.Fatal("unready after 1 failure of a threshold of 2")
	}
	step(t, m, pod.UID, "web", Readiness, 1)
	if m.Ready(pod.UID, "web") || rec.nChanges() != 2 {
		t.Fatalf("ready %v changes %d after 2 failures", m.Ready(pod.UID, "web"), rec.nChanges())
	}
	// A readiness failure never kills.
	if k := m.LivenessFailed(pod.UID); len(k) != 0 {
		t.Errorf("kills %v", k)
	}
	msgs := rec.messages()
	if len(msgs) != 2 || msgs[1] != "Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 503" {
		t.Errorf("events %q", msgs)
	}
	// Not running: not ready, whatever the last result.
	h.code.Store(200)
	step(t, m, pod.UID, "web", Readiness, 2)
	m.Update(pod, h.ip, map[string]ContainerState{"web": {ID: "c1"}})
	if m.Ready(pod.UID, "web") {
		t.Error("ready while not running")
	}
}

func TestInitialDelay(t *testing.T) {
	h := newHealth(t, 200)
	m := manualManager(Config{})
	defer m.Close()
	p := h.probe()
	p.InitialDelaySeconds = 30
	pod := testPod(corev1.Container{Name: "web", ReadinessProbe: p})
	m.Update(pod, h.ip, map[string]ContainerState{"web": {ID: "c1", Running: true, StartedAt: time.Now().Add(-20 * time.Second)}})
	step(t, m, pod.UID, "web", Readiness, 1)
	if h.hits.Load() != 0 || m.Ready(pod.UID, "web") {
		t.Fatal("probed within the initial delay")
	}
	m.Update(pod, h.ip, map[string]ContainerState{"web": {ID: "c1", Running: true, StartedAt: time.Now().Add(-31 * time.Second)}})
	step(t, m, pod.UID, "web", Readiness, 1)
	if h.hits.Load() != 1 || !m.Ready(pod.UID, "web") {
		t.Fatal("not probed after the initial delay")
	}
}

func TestStartupGates(t *testing.T) {
	start := newHealth(t, 500)
	app := newHealth(t, 200)
	rec := newRecorder()
	m := manualManager(rec.config())
	defer m.Close()
	sp := start.probe()
	sp.FailureThreshold = 3
	pod := testPod(corev1.Container{Name: "web", StartupProbe: sp, LivenessProbe: app.probe(), ReadinessProbe: app.probe()})
	m.Update(pod, start.ip, running("c1"))

	step(t, m, pod.UID, "web", Liveness, 1)
	step(t, m, pod.UID, "web", Readiness, 1)
	if app.hits.Load() != 0 {
		t.Fatal("liveness or readiness probed before the startup probe succeeded")
	}
	step(t, m, pod.UID, "web", Startup, 1)
	if m.Started(pod.UID, "web") || m.Ready(pod.UID, "web") {
		t.Fatal("started after a failed startup probe")
	}
	start.code.Store(200)
	step(t, m, pod.UID, "web", Startup, 1)
	if !m.Started(pod.UID, "web") || rec.nChanges() != 1 {
		t.Fatalf("started %v, changes %d", m.Started(pod.UID, "web"), rec.nChanges())
	}
	if m.Ready(pod.UID, "web") {
		t.Fatal("ready before the readiness probe ran")
	}
	// Started: the startup probe is done, the others run.
	startHits := start.hits.Load()
	step(t, m, pod.UID, "web", Startup, 2)
	if start.hits.Load() != startHits {
		t.Error("startup probe ran after it succeeded")
	}
	step(t, m, pod.UID, "web", Readiness, 1)
	if !m.Ready(pod.UID, "web") || app.hits.Load() != 1 {
		t.Fatalf("ready %v, app probed %d times", m.Ready(pod.UID, "web"), app.hits.Load())
	}

	// A restart makes the container unstarted and unready again.
	start.code.Store(500)
	m.Update(pod, start.ip, running("c2"))
	if m.Started(pod.UID, "web") || m.Ready(pod.UID, "web") {
		t.Fatal("started or ready right after a restart")
	}
	step(t, m, pod.UID, "web", Startup, 3)
	kills := m.LivenessFailed(pod.UID)
	if len(kills) != 1 || kills[0].Kind != Startup || kills[0].ContainerID != "c2" || kills[0].Message != "Container web failed startup probe, will be restarted" {
		t.Fatalf("kills %+v", kills)
	}
	if msgs := rec.messages(); !strings.HasPrefix(msgs[len(msgs)-1], "Unhealthy: Startup probe failed: ") {
		t.Errorf("events %q", msgs)
	}
}

func TestDeletingPodStopsLiveness(t *testing.T) {
	h := newHealth(t, 500)
	m := manualManager(Config{})
	defer m.Close()
	p := h.probe()
	p.FailureThreshold = 1
	pod := testPod(corev1.Container{Name: "web", LivenessProbe: p, ReadinessProbe: h.probe()})
	m.Update(pod, h.ip, running("c1"))
	step(t, m, pod.UID, "web", Liveness, 1)
	if len(m.LivenessFailed(pod.UID)) != 1 {
		t.Fatal("liveness did not fail")
	}
	deleting := pod.DeepCopy()
	now := metav1.Now()
	deleting.DeletionTimestamp = &now
	m.Update(deleting, h.ip, running("c1"))
	step(t, m, pod.UID, "web", Liveness, 1)
	if k := m.LivenessFailed(pod.UID); len(k) != 0 {
		t.Fatalf("kills %v of a terminating pod", k)
	}
	// Readiness still runs while the pod terminates.
	hits := h.hits.Load()
	step(t, m, pod.UID, "web", Readiness, 1)
	if h.hits.Load() != hits+1 {
		t.Error("readiness not probed during termination")
	}
}

func TestSidecarAndNamedPort(t *testing.T) {
	h := newHealth(t, 200)
	m := manualManager(Config{})
	defer m.Close()
	always := corev1.ContainerRestartPolicyAlways
	p := h.probe()
	p.HTTPGet.Port = intstr.FromString("health")
	pod := testPod(corev1.Container{Name: "web"})
	pod.Spec.InitContainers = []corev1.Container{
		{Name: "init"},
		{Name: "proxy", RestartPolicy: &always, ReadinessProbe: p, Ports: []corev1.ContainerPort{{Name: "health", ContainerPort: h.port}}},
	}
	m.Update(pod, h.ip, map[string]ContainerState{"proxy": {ID: "s1", Running: true}})
	if m.Ready(pod.UID, "proxy") {
		t.Fatal("sidecar ready before its probe")
	}
	step(t, m, pod.UID, "proxy", Readiness, 1)
	if !m.Ready(pod.UID, "proxy") || h.hits.Load() != 1 {
		t.Fatal("sidecar not probed on its named port")
	}
}

func TestExecProbeThroughManager(t *testing.T) {
	f := &fakeExec{fn: func(context.Context) ([]byte, []byte, int, error) { return []byte("not yet"), nil, 1, nil }}
	cfg := Config{Exec: f}
	m := manualManager(cfg)
	defer m.Close()
	pod := testPod(corev1.Container{Name: "web", ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"check"}}}}})
	m.Update(pod, "", running("c9"))
	step(t, m, pod.UID, "web", Readiness, 1)
	if f.id != "c9" || m.Ready(pod.UID, "web") {
		t.Fatalf("exec in %q, ready %v", f.id, m.Ready(pod.UID, "web"))
	}
	if evs := m.Events(pod.UID); len(evs) != 1 || evs[0].Message != "Readiness probe failed: not yet" {
		t.Errorf("events %+v", evs)
	}
	f.fn = func(context.Context) ([]byte, []byte, int, error) { return nil, nil, -1, context.Canceled }
	step(t, m, pod.UID, "web", Readiness, 1)
	evs := m.Events(pod.UID)
	if len(evs) != 1 || !strings.HasPrefix(evs[0].Message, "Readiness probe errored and resulted in unknown state: ") {
		t.Errorf("events %+v", evs)
	}
}

// TestWorkersRun runs real workers on a short period: readiness comes,
// goes and comes back on its own, and each flip is reported.
func TestWorkersRun(t *testing.T) {
	h := newHealth(t, 500)
	rec := newRecorder()
	m := NewManager(rec.config())
	m.unit = 20 * time.Millisecond
	defer m.Close()
	p := h.probe()
	p.FailureThreshold = 1
	pod := testPod(corev1.Container{Name: "web", ReadinessProbe: p})
	m.Update(pod, h.ip, running("c1"))

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("3 probes", func() bool { return h.hits.Load() >= 3 })
	if m.Ready(pod.UID, "web") {
		t.Fatal("ready while failing")
	}
	h.code.Store(200)
	select {
	case uid := <-rec.changed:
		if uid != pod.UID {
			t.Fatalf("change of %q", uid)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no change reported")
	}
	if !m.Ready(pod.UID, "web") {
		t.Fatal("not ready after the change")
	}
	h.code.Store(500)
	waitFor("unready", func() bool { return !m.Ready(pod.UID, "web") })
	h.code.Store(200)
	waitFor("ready again", func() bool { return m.Ready(pod.UID, "web") })
	if rec.nChanges() < 3 {
		t.Errorf("%d changes, want 3", rec.nChanges())
	}

	m.Remove(pod.UID)
	time.Sleep(50 * time.Millisecond)
	hits := h.hits.Load()
	time.Sleep(100 * time.Millisecond)
	if h.hits.Load() != hits {
		t.Error("probes continue after Remove")
	}
}
