package admission

import (
	corev1 "k8s.io/api/core/v1"
)

// containerRequests returns what a container requests once pod defaulting
// has run: a limit stands in for a missing request. pgkube does not default
// pods yet, and both the limit checks and quota must see what upstream
// would have stored.
func containerRequests(c *corev1.Container) corev1.ResourceList {
	if len(c.Resources.Limits) == 0 {
		return c.Resources.Requests
	}
	out := make(corev1.ResourceList, len(c.Resources.Requests)+len(c.Resources.Limits))
	for k, v := range c.Resources.Limits {
		out[k] = v
	}
	for k, v := range c.Resources.Requests {
		out[k] = v
	}
	return out
}

func containerLimits(c *corev1.Container) corev1.ResourceList { return c.Resources.Limits }

// podTotal adds up what a pod needs of each resource: its containers run
// side by side, then each init container runs alone next to the sidecars
// (restartable init containers) started before it, so the pod needs the
// larger of the two phases. Pod-level cpu and memory, when set, replace
// the containers' sum.
func podTotal(pod *corev1.Pod, of func(*corev1.Container) corev1.ResourceList, podLevel corev1.ResourceList) corev1.ResourceList {
	total := corev1.ResourceList{}
	for i := range pod.Spec.Containers {
		addResources(total, of(&pod.Spec.Containers[i]))
	}
	sidecars := corev1.ResourceList{}
	initPeak := corev1.ResourceList{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		need := corev1.ResourceList{}
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			addResources(total, of(c))
			addResources(sidecars, of(c))
			addResources(need, sidecars)
		} else {
			addResources(need, of(c))
			addResources(need, sidecars)
		}
		maxResources(initPeak, need)
	}
	maxResources(total, initPeak)
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := podLevel[name]; ok {
			total[name] = q.DeepCopy()
		}
	}
	return total
}

func podLevelRequests(pod *corev1.Pod) corev1.ResourceList {
	if pod.Spec.Resources == nil {
		return nil
	}
	return pod.Spec.Resources.Requests
}

func podLevelLimits(pod *corev1.Pod) corev1.ResourceList {
	if pod.Spec.Resources == nil {
		return nil
	}
	return pod.Spec.Resources.Limits
}

func addResources(into, more corev1.ResourceList) {
	for k, v := range more {
		if cur, ok := into[k]; ok {
			cur.Add(v)
			into[k] = cur
		} else {
			into[k] = v.DeepCopy()
		}
	}
}

func maxResources(into, other corev1.ResourceList) {
	for k, v := range other {
		if cur, ok := into[k]; !ok || v.Cmp(cur) > 0 {
			into[k] = v.DeepCopy()
		}
	}
}
