package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pgkube/pgkube/storage"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
)

// The classes kube-apiserver creates at start-up. pgkube does not store
// them, so they answer here whenever storage has no class of that name.
const (
	systemClusterCritical        = "system-cluster-critical"
	systemNodeCritical           = "system-node-critical"
	systemCriticalPriority int32 = 2000000000
)

var systemPriorityClasses = map[string]int32{
	systemClusterCritical: systemCriticalPriority,
	systemNodeCritical:    systemCriticalPriority + 1000,
}

// Priority resolves a pod's priorityClassName into its priority and
// preemption policy, and keeps a single PriorityClass the global default,
// as kube-apiserver's Priority plugin.
type Priority struct {
	store Reader
}

// NewPriority returns the plugin.
func NewPriority(store Reader) *Priority {
	return &Priority{store: store}
}

// Admit is the mutating half: it fills spec.priority and
// spec.preemptionPolicy of new pods.
func (p *Priority) Admit(ctx context.Context, a *Attributes) error {
	if !coreResource(a, "pods") || a.Subresource != "" {
		return nil
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return nil
	}
	switch a.Operation {
	case Update:
		// Both fields were set on create and may not change; a client that
		// sends the pod back without them means to keep them.
		if old, ok := a.OldObject.(*corev1.Pod); ok {
			if pod.Spec.Priority == nil {
				pod.Spec.Priority = old.Spec.Priority
			}
			if pod.Spec.PreemptionPolicy == nil {
				pod.Spec.PreemptionPolicy = old.Spec.PreemptionPolicy
			}
		}
		return nil
	case Create:
	default:
		return nil
	}
	class, value, policy, err := p.resolve(ctx, a, pod.Spec.PriorityClassName)
	if err != nil {
		return err
	}
	pod.Spec.PriorityClassName = class
	if pod.Spec.Priority != nil && *pod.Spec.Priority != value {
		return forbidden(a, fmt.Errorf("the integer value of priority (%d) must not be provided in pod spec; priority admission controller computed %d from the given PriorityClass name",
			*pod.Spec.Priority, value))
	}
	pod.Spec.Priority = &value
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy != policy {
		return forbidden(a, fmt.Errorf("the string value of PreemptionPolicy (%s) must not be provided in pod spec; priority admission controller computed %s from the given PriorityClass name",
			*pod.Spec.PreemptionPolicy, policy))
	}
	pod.Spec.PreemptionPolicy = &policy
	return nil
}

// Validate is the validating half: at most one class may be the global
// default.
func (p *Priority) Validate(ctx context.Context, a *Attributes) error {
	if a.Group != schedulingv1.GroupName || a.Resource != "priorityclasses" || a.Subresource != "" ||
		(a.Operation != Create && a.Operation != Update) {
		return nil
	}
	pc, ok := a.Object.(*schedulingv1.PriorityClass)
	if !ok || !pc.GlobalDefault {
		return nil
	}
	def, err := p.globalDefault(ctx, a.Cluster)
	if err != nil {
		return fmt.Errorf("failed to get default priority class: %v", err)
	}
	if def != nil && (a.Operation == Create || def.Name != pc.Name) {
		return forbidden(a, fmt.Errorf("PriorityClass %v is already marked as default. Only one default can exist", def.Name))
	}
	return nil
}

// resolve returns the class a pod ends up with, its value and policy.
func (p *Priority) resolve(ctx context.Context, a *Attributes, name string) (string, int32, corev1.PreemptionPolicy, error) {
	if name == "" {
		def, err := p.globalDefault(ctx, a.Cluster)
		if err != nil {
			return "", 0, "", fmt.Errorf("error occurred while retrieving default priority class: %w", err)
		}
		if def == nil {
			return "", 0, corev1.PreemptLowerPriority, nil
		}
		return def.Name, def.Value, preemptionPolicy(def), nil
	}
	o, err := p.store.Get(ctx, a.Cluster, storage.Key{Resource: priorityClassesKey, Name: name})
	if errors.Is(err, storage.ErrNotFound) {
		if v, ok := systemPriorityClasses[name]; ok {
			return name, v, corev1.PreemptLowerPriority, nil
		}
		return "", 0, "", forbidden(a, fmt.Errorf("no PriorityClass with name %v was found", name))
	}
	if err != nil {
		return "", 0, "", fmt.Errorf("failed to resolve PriorityClass with name %s: %w", name, err)
	}
	var pc schedulingv1.PriorityClass
	if err := json.Unmarshal(o.Data, &pc); err != nil {
		return "", 0, "", fmt.Errorf("failed to resolve PriorityClass with name %s: %w", name, err)
	}
	return name, pc.Value, preemptionPolicy(&pc), nil
}

// preemptionPolicy reads a class's policy; a class stored without one has
// the policy defaulting would have given it.
func preemptionPolicy(pc *schedulingv1.PriorityClass) corev1.PreemptionPolicy {
	if pc.PreemptionPolicy == nil || *pc.PreemptionPolicy == "" {
		return corev1.PreemptLowerPriority
	}
	return *pc.PreemptionPolicy
}

// globalDefault returns the default class, or nil. Should a race have left
// two, the lower value wins, as upstream picks.
func (p *Priority) globalDefault(ctx context.Context, cluster string) (*schedulingv1.PriorityClass, error) {
	classes, err := listAs[schedulingv1.PriorityClass](ctx, p.store, cluster, priorityClassesKey, "")
	if err != nil {
		return nil, err
	}
	var def *schedulingv1.PriorityClass
	for i := range classes {
		if classes[i].GlobalDefault && (def == nil || classes[i].Value < def.Value) {
			def = &classes[i]
		}
	}
	return def, nil
}
