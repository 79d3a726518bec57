package printers

import (
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// nodeLostReason is what the node lifecycle controller writes into
// status.reason when it gives up on an unreachable node's pods; such pods are
// shown as Unknown rather than Terminating while they are being deleted.
const nodeLostReason = "NodeLost"

// restartTally accumulates restart counts together with the most recent time
// any of the counted containers last exited, for the "N (5m ago)" cell.
type restartTally struct {
	count int
	last  time.Time
}

func (t *restartTally) add(cs *corev1.ContainerStatus) {
	t.count += int(cs.RestartCount)
	if term := cs.LastTerminationState.Terminated; term != nil && term.FinishedAt.Time.After(t.last) {
		t.last = term.FinishedAt.Time
	}
}

func (t restartTally) String(now time.Time) string {
	if t.count == 0 || t.last.IsZero() {
		return strconv.Itoa(t.count)
	}
	return fmt.Sprintf("%d (%s ago)", t.count, since(metav1.NewTime(t.last), now))
}

// isSidecar reports whether an init container keeps running alongside the
// app containers (restartPolicy: Always), which makes it count towards READY.
func isSidecar(c *corev1.Container) bool {
	return c != nil && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// exitSummary describes how a container terminated when the runtime gave no
// reason, falling back to the signal and then the exit code.
func exitSummary(t *corev1.ContainerStateTerminated) string {
	switch {
	case t.Reason != "":
		return t.Reason
	case t.Signal != 0:
		return fmt.Sprintf("Signal:%d", t.Signal)
	default:
		return fmt.Sprintf("ExitCode:%d", t.ExitCode)
	}
}

func podConditionTrue(st *corev1.PodStatus, t corev1.PodConditionType) bool {
	for _, c := range st.Conditions {
		if c.Type == t {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podRow(pod *corev1.Pod, now time.Time) []any {
	st := &pod.Status
	status := string(st.Phase)
	if st.Reason != "" {
		status = st.Reason
	}
	for _, c := range st.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonSchedulingGated {
			status = corev1.PodReasonSchedulingGated
		}
	}

	sidecars := map[string]bool{}
	total := len(pod.Spec.Containers)
	for i := range pod.Spec.InitContainers {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			sidecars[pod.Spec.InitContainers[i].Name] = true
			total++
		}
	}

	ready := 0
	// While init containers are still the story, every init restart counts;
	// once the pod is past init, only sidecars (which keep running) do.
	var initRestarts, sidecarRestarts restartTally
	initializing := false
	for i := range st.InitContainerStatuses {
		cs := &st.InitContainerStatuses[i]
		initRestarts.add(cs)
		sidecar := sidecars[cs.Name]
		if sidecar {
			sidecarRestarts.add(cs)
		}
		if cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0 {
			continue
		}
		if sidecar && cs.Started != nil && *cs.Started {
			if cs.Ready {
				ready++
			}
			continue
		}
		// The first init container that is neither done nor a started
		// sidecar determines the status.
		initializing = true
		switch w := cs.State.Waiting; {
		case cs.State.Terminated != nil:
			status = "Init:" + exitSummary(cs.State.Terminated)
		case w != nil && w.Reason != "" && w.Reason != "PodInitializing":
			status = "Init:" + w.Reason
		default:
			status = fmt.Sprintf("Init:%d/%d", i, len(pod.Spec.InitContainers))
		}
		break
	}

	restarts := initRestarts
	if !initializing || podConditionTrue(st, corev1.PodInitialized) {
		restarts = sidecarRestarts
		running := false
		// Walk backwards so the first container's state wins the status.
		for i := len(st.ContainerStatuses) - 1; i >= 0; i-- {
			cs := &st.ContainerStatuses[i]
			restarts.add(cs)
			switch {
			case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
				status = cs.State.Waiting.Reason
			case cs.State.Terminated != nil:
				status = exitSummary(cs.State.Terminated)
			case cs.Ready && cs.State.Running != nil:
				running = true
				ready++
			}
		}
		// A finished container must not make a still-serving pod look done.
		if status == "Completed" && running {
			if podConditionTrue(st, corev1.PodReady) {
				status = "Running"
			} else {
				status = "NotReady"
			}
		}
	}

	if pod.DeletionTimestamp != nil {
		switch {
		case st.Reason == nodeLostReason:
			status = "Unknown"
		case st.Phase != corev1.PodSucceeded && st.Phase != corev1.PodFailed:
			status = "Terminating"
		}
	}

	return []any{
		pod.Name,
		fmt.Sprintf("%d/%d", ready, total),
		status,
		restarts.String(now),
		age(&pod.ObjectMeta, now),
		orNone(podIP(st)),
		orNone(pod.Spec.NodeName),
		orNone(st.NominatedNodeName),
		readinessGates(pod),
	}
}

// podIP prefers the legacy singular field, matching how the v1->internal
// conversion treats it as authoritative when both are set.
func podIP(st *corev1.PodStatus) string {
	if st.PodIP != "" {
		return st.PodIP
	}
	if len(st.PodIPs) > 0 {
		return st.PodIPs[0].IP
	}
	return ""
}

func readinessGates(pod *corev1.Pod) string {
	gates := pod.Spec.ReadinessGates
	if len(gates) == 0 {
		return none
	}
	passed := 0
	for _, g := range gates {
		if podConditionTrue(&pod.Status, g.ConditionType) {
			passed++
		}
	}
	return fmt.Sprintf("%d/%d", passed, len(gates))
}
