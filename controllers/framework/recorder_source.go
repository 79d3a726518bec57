package framework

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
)

// NewEventRecorderFor is NewEventRecorder for Events from another source
// than the controller manager, such as the scheduler ("default-scheduler")
// or a node agent ("kubelet" on host NODE).
func NewEventRecorderFor(ctx context.Context, clients *Clients, source corev1.EventSource) *EventRecorder {
	r := NewEventRecorder(ctx, clients)
	return r.For(source)
}

// For is a recorder that shares r's writer (and its Shutdown) and whose
// Events come from source.
func (r *EventRecorder) For(source corev1.EventSource) *EventRecorder {
	return &EventRecorder{broadcaster: r.broadcaster, recorder: r.broadcaster.NewRecorder(scheme.Scheme, source)}
}

// RefEventf records an Event about the object ref names in cluster, such
// as one container of a pod (fieldPath spec.containers{NAME}).
func (r *EventRecorder) RefEventf(cluster string, ref *corev1.ObjectReference, eventType, reason, format string, args ...any) {
	r.recorder.AnnotatedEventf(ref, map[string]string{ClusterAnnotation: cluster}, eventType, reason, format, args...)
}
