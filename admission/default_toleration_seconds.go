package admission

import (
	"context"

	corev1 "k8s.io/api/core/v1"
)

// defaultTolerationSeconds is how long a pod stays bound to a node that
// went not-ready or unreachable before it is evicted: kube-apiserver's
// default for both flags.
const defaultTolerationSeconds int64 = 300

// DefaultTolerationSeconds gives pods a bounded tolerance of the taints a
// node gets when it stops reporting, as kube-apiserver's plugin of that
// name, so the node lifecycle controller evicts them after five minutes.
type DefaultTolerationSeconds struct{}

// NewDefaultTolerationSeconds returns the plugin.
func NewDefaultTolerationSeconds() DefaultTolerationSeconds { return DefaultTolerationSeconds{} }

// Admit adds the tolerations a pod lacks, on create and update alike as
// upstream (an update that drops them gets them back).
func (DefaultTolerationSeconds) Admit(_ context.Context, a *Attributes) error {
	if !coreResource(a, "pods") || a.Subresource != "" || (a.Operation != Create && a.Operation != Update) {
		return nil
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return nil
	}
	notReady, unreachable := false, false
	for _, t := range pod.Spec.Tolerations {
		// An empty key or effect tolerates every key or effect.
		if t.Effect != "" && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if t.Key == "" || t.Key == corev1.TaintNodeNotReady {
			notReady = true
		}
		if t.Key == "" || t.Key == corev1.TaintNodeUnreachable {
			unreachable = true
		}
	}
	add := func(key string) {
		seconds := defaultTolerationSeconds
		pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{
			Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &seconds,
		})
	}
	if !notReady {
		add(corev1.TaintNodeNotReady)
	}
	if !unreachable {
		add(corev1.TaintNodeUnreachable)
	}
	return nil
}
