package agent

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reasons of the conditions a kubelet reports.
const (
	reasonContainersNotReady       = "ContainersNotReady"
	reasonContainersNotInitialized = "ContainersNotInitialized"
	reasonPodCompleted             = "PodCompleted"
	reasonPodFailed                = "PodFailed"
	reasonReadinessGatesNotReady   = "ReadinessGatesNotReady"
	reasonSandboxNotReady          = "PodSandboxNotReady" // kubetypes.PodSandboxNotReadyReason
)

// kubeletConditions are the conditions the agent owns; others (set by the
// scheduler, controllers or readiness gates) are kept as they are.
var kubeletConditions = map[corev1.PodConditionType]bool{
	corev1.PodReadyToStartContainers: true,
	corev1.PodInitialized:            true,
	corev1.PodReady:                  true,
	corev1.ContainersReady:           true,
	corev1.PodScheduled:              true,
}

func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

func statusOf(list []corev1.ContainerStatus, name string) (*corev1.ContainerStatus, bool) {
	for i := range list {
		if list[i].Name == name {
			return &list[i], true
		}
	}
	return nil, false
}

// podPhase is the kubelet's phase of a pod from its containers' states:
// pending while init containers have not all succeeded or a container has
// not started; running while one runs (or will restart); succeeded or
// failed once all stopped for good. terminal: the pod is being deleted
// and its containers will not restart.
func podPhase(pod *corev1.Pod, initSt, st []corev1.ContainerStatus, terminal bool) corev1.PodPhase {
	spec := &pod.Spec
	pendingInit, failedInit, pendingSidecars := 0, 0, 0
	unknown, running, waiting, stopped, succeeded := 0, 0, 0, 0, 0
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		cs, ok := statusOf(initSt, c.Name)
		if isSidecar(c) {
			switch {
			case !ok:
				unknown++
			case cs.State.Running != nil:
				if cs.Started == nil || !*cs.Started {
					pendingSidecars++
				}
				running++
			case cs.State.Terminated != nil:
			case cs.State.Waiting != nil:
				if cs.LastTerminationState.Terminated == nil {
					pendingSidecars++
					waiting++
				}
			default:
				pendingSidecars++
				unknown++
			}
			continue
		}
		switch {
		case !ok:
			pendingInit++
		case cs.State.Running != nil:
			pendingInit++
		case cs.State.Terminated != nil:
			if cs.State.Terminated.ExitCode != 0 {
				failedInit++
			}
		case cs.State.Waiting != nil:
			if t := cs.LastTerminationState.Terminated; t != nil {
				if t.ExitCode != 0 {
					failedInit++
				}
			} else {
				pendingInit++
			}
		default:
			pendingInit++
		}
	}
	for i := range spec.Containers {
		cs, ok := statusOf(st, spec.Containers[i].Name)
		switch {
		case !ok:
			unknown++
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				stopped++
			} else {
				waiting++
			}
		default:
			unknown++
		}
	}
	if failedInit > 0 && spec.RestartPolicy == corev1.RestartPolicyNever {
		return corev1.PodFailed
	}
	initialized := anyRegularStarted(spec, st)
	switch {
	case pendingInit > 0 || (pendingSidecars > 0 && !initialized):
		return corev1.PodPending
	case waiting > 0:
		return corev1.PodPending
	case running > 0 && unknown == 0:
		return corev1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		if terminal {
			if stopped == succeeded {
				return corev1.PodSucceeded
			}
			return corev1.PodFailed
		}
		if spec.RestartPolicy == corev1.RestartPolicyAlways {
			return corev1.PodRunning
		}
		if stopped == succeeded {
			return corev1.PodSucceeded
		}
		if spec.RestartPolicy == corev1.RestartPolicyNever {
			return corev1.PodFailed
		}
		return corev1.PodRunning
	default:
		return corev1.PodPending
	}
}

func anyRegularStarted(spec *corev1.PodSpec, st []corev1.ContainerStatus) bool {
	for i := range spec.Containers {
		if cs, ok := statusOf(st, spec.Containers[i].Name); ok {
			if cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil {
				return true
			}
		}
	}
	return false
}

// QOSClass is the pod's quality of service class: Guaranteed when every
// container has cpu and memory limits equal to its requests, BestEffort
// when none asks for or limits anything, else Burstable.
func QOSClass(pod *corev1.Pod) corev1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	requests, limits := corev1.ResourceList{}, corev1.ResourceList{}
	guaranteed := true
	all := append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		for n, q := range c.Resources.Requests {
			if (n == corev1.ResourceCPU || n == corev1.ResourceMemory) && !q.IsZero() {
				requests[n] = q
			}
		}
		have := 0
		for n, q := range c.Resources.Limits {
			if (n == corev1.ResourceCPU || n == corev1.ResourceMemory) && !q.IsZero() {
				limits[n] = q
				have++
			}
		}
		if have < 2 {
			guaranteed = false
		}
		for _, n := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			r, rok := c.Resources.Requests[n]
			l, lok := c.Resources.Limits[n]
			if rok && lok && r.Cmp(l) != 0 {
				guaranteed = false
			}
		}
	}
	if len(requests) == 0 && len(limits) == 0 {
		return corev1.PodQOSBestEffort
	}
	if guaranteed {
		return corev1.PodQOSGuaranteed
	}
	return corev1.PodQOSBurstable
}

// conditions are the kubelet's pod conditions, in its order, with the
// conditions of others kept.
func conditions(pod *corev1.Pod, rs *PodStatus, initSt, st []corev1.ContainerStatus, phase corev1.PodPhase) []corev1.PodCondition {
	var out []corev1.PodCondition
	sandbox := corev1.PodCondition{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue}
	if !rs.SandboxReady {
		sandbox = corev1.PodCondition{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionFalse}
	}
	out = append(out, sandbox)
	out = append(out, initializedCondition(pod, initSt, st, phase))
	cr := containersReady(pod, initSt, st, phase)
	ready := corev1.PodCondition{Type: corev1.PodReady, Status: cr.Status, Reason: cr.Reason, Message: cr.Message}
	if cr.Status == corev1.ConditionTrue {
		var msgs []string
		for _, rg := range pod.Spec.ReadinessGates {
			var c *corev1.PodCondition
			for i := range pod.Status.Conditions {
				if pod.Status.Conditions[i].Type == rg.ConditionType {
					c = &pod.Status.Conditions[i]
				}
			}
			if c == nil {
				msgs = append(msgs, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", string(rg.ConditionType)))
			} else if c.Status != corev1.ConditionTrue {
				msgs = append(msgs, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", string(rg.ConditionType), c.Status))
			}
		}
		if len(msgs) > 0 {
			ready = corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: reasonReadinessGatesNotReady, Message: strings.Join(msgs, ", ")}
		}
	}
	out = append(out, ready, cr, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue})
	for _, c := range pod.Status.Conditions {
		if !kubeletConditions[c.Type] {
			out = append(out, c)
		}
	}
	// Keep transition times of conditions whose status did not change.
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	for i := range out {
		if !kubeletConditions[out[i].Type] {
			continue
		}
		out[i].LastTransitionTime = now
		for _, old := range pod.Status.Conditions {
			if old.Type == out[i].Type && old.Status == out[i].Status {
				out[i].LastTransitionTime = old.LastTransitionTime
			}
		}
		if pod.Generation > 0 {
			out[i].ObservedGeneration = pod.Generation
		}
	}
	return out
}

func initializedCondition(pod *corev1.Pod, initSt, st []corev1.ContainerStatus, phase corev1.PodPhase) corev1.PodCondition {
	var unknown, incomplete []string
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs, ok := statusOf(initSt, c.Name)
		if !ok {
			unknown = append(unknown, c.Name)
			continue
		}
		if isSidecar(c) {
			if cs.Started == nil || !*cs.Started {
				incomplete = append(incomplete, c.Name)
			}
		} else if !cs.Ready {
			incomplete = append(incomplete, c.Name)
		}
	}
	if phase == corev1.PodSucceeded && len(unknown) == 0 {
		return corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, Reason: reasonPodCompleted}
	}
	if anyRegularStarted(&pod.Spec, st) {
		return corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}
	}
	var msgs []string
	if len(unknown) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unknown status: %s", unknown))
	}
	if len(incomplete) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with incomplete status: %s", incomplete))
	}
	if len(msgs) > 0 {
		return corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionFalse, Reason: reasonContainersNotInitialized, Message: strings.Join(msgs, ", ")}
	}
	return corev1.PodCondition{Type: corev1.PodInitialized, Status: corev1.ConditionTrue}
}

func containersReady(pod *corev1.Pod, initSt, st []corev1.ContainerStatus, phase corev1.PodPhase) corev1.PodCondition {
	var unknown, unready []string
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if !isSidecar(c) {
			continue
		}
		if cs, ok := statusOf(initSt, c.Name); !ok {
			unknown = append(unknown, c.Name)
		} else if !cs.Ready {
			unready = append(unready, c.Name)
		}
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if cs, ok := statusOf(st, c.Name); !ok {
			unknown = append(unknown, c.Name)
		} else if !cs.Ready {
			unready = append(unready, c.Name)
		}
	}
	if (phase == corev1.PodSucceeded && len(unknown) == 0) || phase == corev1.PodFailed {
		reason := reasonPodCompleted
		if phase == corev1.PodFailed {
			reason = reasonPodFailed
		}
		return corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: reason}
	}
	var msgs []string
	if len(unknown) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unknown status: %s", unknown))
	}
	if len(unready) > 0 {
		msgs = append(msgs, fmt.Sprintf("containers with unready status: %s", unready))
	}
	if len(msgs) > 0 {
		return corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionFalse, Reason: reasonContainersNotReady, Message: strings.Join(msgs, ", ")}
	}
	return corev1.PodCondition{Type: corev1.ContainersReady, Status: corev1.ConditionTrue}
}

// apiStatus is the status the agent reports for a pod from what its
// runtime says, as a kubelet's generateAPIPodStatus.
func apiStatus(pod *corev1.Pod, node *Node, rs *PodStatus, terminal bool) corev1.PodStatus {
	old := &pod.Status
	st := corev1.PodStatus{
		HostIP:                old.HostIP,
		HostIPs:               old.HostIPs,
		StartTime:             old.StartTime,
		QOSClass:              QOSClass(pod),
		NominatedNodeName:     old.NominatedNodeName,
		ResourceClaimStatuses: old.ResourceClaimStatuses,
		Resize:                old.Resize,
	}
	if node.InternalIP != "" {
		st.HostIP = node.InternalIP
		st.HostIPs = []corev1.HostIP{{IP: node.InternalIP}}
	}
	if st.StartTime == nil {
		t := metav1.NewTime(time.Now().Truncate(time.Second))
		st.StartTime = &t
	}
	st.InitContainerStatuses = rs.InitContainerStatuses
	st.ContainerStatuses = rs.ContainerStatuses
	if len(rs.PodIPs) > 0 {
		st.PodIP = rs.PodIPs[0]
		for _, ip := range rs.PodIPs {
			st.PodIPs = append(st.PodIPs, corev1.PodIP{IP: ip})
		}
	} else {
		st.PodIP, st.PodIPs = old.PodIP, old.PodIPs
	}
	st.Phase = podPhase(pod, rs.InitContainerStatuses, rs.ContainerStatuses, terminal)
	// A pod that finished stays finished.
	if old.Phase == corev1.PodSucceeded || old.Phase == corev1.PodFailed {
		st.Phase = old.Phase
	}
	st.Conditions = conditions(pod, rs, rs.InitContainerStatuses, rs.ContainerStatuses, st.Phase)
	if pod.Generation > 0 {
		st.ObservedGeneration = pod.Generation
	}
	st.Reason, st.Message = rs.Reason, rs.Message
	return st
}

// statusEqual: nothing to write.
func statusEqual(a, b *corev1.PodStatus) bool { return apiequality.Semantic.DeepEqual(a, b) }
