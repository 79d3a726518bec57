package framework

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/record"
)

// Component is the source of the manager's Events.
const Component = "pgkube-controller-manager"

// Recorder records Events about objects.
type Recorder interface {
	// Eventf records an Event about obj (an object from an informer, or
	// any API object with kind information in the scheme) in obj's
	// cluster and namespace. It never blocks.
	Eventf(obj runtime.Object, eventType, reason, format string, args ...any)
}

// EventRecorder is the Recorder that writes core/v1 Events through the API.
// It is client-go's recorder, so repeats of an Event (same object, reason
// and message) raise its count and lastTimestamp instead of making new
// Events, and floods are aggregated and rate-limited as upstream; writes
// are asynchronous and dropped when too many are queued.
type EventRecorder struct {
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorderLogger
	cluster     string // of objects not marked with one
}

// NewEventRecorder starts a recorder writing with clients until ctx ends
// or Shutdown.
func NewEventRecorder(ctx context.Context, clients *Clients) *EventRecorder {
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(&clusterSink{ctx: ctx, clients: clients})
	return &EventRecorder{broadcaster: b, cluster: clients.DefaultCluster(),
		recorder: b.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Component})}
}

// Eventf implements Recorder.
func (r *EventRecorder) Eventf(obj runtime.Object, eventType, reason, format string, args ...any) {
	cluster := r.cluster
	if m, ok := obj.(metav1.Object); ok {
		cluster = clusterOr(m, r.cluster)
	}
	r.recorder.AnnotatedEventf(obj, map[string]string{ClusterAnnotation: cluster}, eventType, reason, format, args...)
}

// Shutdown stops the recorder.
func (r *EventRecorder) Shutdown() { r.broadcaster.Shutdown() }

// clusterSink writes each Event to the cluster its annotation names.
type clusterSink struct {
	ctx     context.Context
	clients *Clients
}

func (s *clusterSink) split(e *corev1.Event) (string, *corev1.Event) {
	cluster := e.Annotations[ClusterAnnotation]
	if cluster == "" {
		cluster = s.clients.DefaultCluster()
	}
	c := e.DeepCopy()
	StripCluster(c)
	return cluster, c
}

func (s *clusterSink) Create(e *corev1.Event) (*corev1.Event, error) {
	cluster, c := s.split(e)
	out, err := s.clients.For(cluster).CoreV1().Events(c.Namespace).Create(s.ctx, c, metav1.CreateOptions{})
	return annotate(out, cluster), err
}

func (s *clusterSink) Update(e *corev1.Event) (*corev1.Event, error) {
	cluster, c := s.split(e)
	out, err := s.clients.For(cluster).CoreV1().Events(c.Namespace).Update(s.ctx, c, metav1.UpdateOptions{})
	return annotate(out, cluster), err
}

func (s *clusterSink) Patch(e *corev1.Event, data []byte) (*corev1.Event, error) {
	cluster, c := s.split(e)
	out, err := s.clients.For(cluster).CoreV1().Events(c.Namespace).Patch(s.ctx, c.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{})
	return annotate(out, cluster), err
}

// annotate keeps the cluster on what the correlator remembers.
func annotate(e *corev1.Event, cluster string) *corev1.Event {
	if e == nil {
		return nil
	}
	if e.Annotations == nil {
		e.Annotations = map[string]string{}
	}
	e.Annotations[ClusterAnnotation] = cluster
	return e
}

// FakeRecorder keeps Events in memory, for tests.
type FakeRecorder struct {
	mu     sync.Mutex
	Events []string // "Type Reason message"
}

// Eventf implements Recorder.
func (f *FakeRecorder) Eventf(_ runtime.Object, eventType, reason, format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Events = append(f.Events, eventType+" "+reason+" "+fmt.Sprintf(format, args...))
}

// List is a copy of the Events so far.
func (f *FakeRecorder) List() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.Events...)
}
