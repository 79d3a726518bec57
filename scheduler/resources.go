package scheduler

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
)

// Scoring counts a container without requests as asking for this much, as
// upstream does, so that nodes full of best-effort pods still look full.
const (
	defaultMilliCPURequest = 100               // 0.1 core
	defaultMemoryRequest   = 200 * 1024 * 1024 // 200 MiB
)

// resources are amounts of the resources a node offers and pods request:
// cpu in millicores, memory and ephemeral storage in bytes, anything else
// (extended resources, hugepages) in its unit, by name.
type resources struct {
	milliCPU  int64
	memory    int64
	ephemeral int64
	scalar    map[corev1.ResourceName]int64
}

func (r *resources) isZero() bool {
	if r.milliCPU != 0 || r.memory != 0 || r.ephemeral != 0 {
		return false
	}
	for _, v := range r.scalar {
		if v != 0 {
			return false
		}
	}
	return true
}

func (r *resources) get(name corev1.ResourceName) int64 {
	switch name {
	case corev1.ResourceCPU:
		return r.milliCPU
	case corev1.ResourceMemory:
		return r.memory
	case corev1.ResourceEphemeralStorage:
		return r.ephemeral
	}
	return r.scalar[name]
}

func (r *resources) set(name corev1.ResourceName, v int64) {
	switch name {
	case corev1.ResourceCPU:
		r.milliCPU = v
	case corev1.ResourceMemory:
		r.memory = v
	case corev1.ResourceEphemeralStorage:
		r.ephemeral = v
	default:
		if r.scalar == nil {
			r.scalar = map[corev1.ResourceName]int64{}
		}
		r.scalar[name] = v
	}
}

// add adds o, times sign (1 or -1).
func (r *resources) add(o *resources, sign int64) {
	r.milliCPU += sign * o.milliCPU
	r.memory += sign * o.memory
	r.ephemeral += sign * o.ephemeral
	for n, v := range o.scalar {
		if r.scalar == nil {
			r.scalar = map[corev1.ResourceName]int64{}
		}
		r.scalar[n] += sign * v
		if r.scalar[n] == 0 {
			delete(r.scalar, n)
		}
	}
}

func (r *resources) clone() resources {
	c := *r
	if r.scalar != nil {
		c.scalar = make(map[corev1.ResourceName]int64, len(r.scalar))
		for n, v := range r.scalar {
			c.scalar[n] = v
		}
	}
	return c
}

// scheduledResource: the resources the scheduler accounts. Pods are
// counted apart; anything that is not a count of something a node has
// (e.g. "pods") is left out.
func scheduledResource(name corev1.ResourceName) bool {
	return name != corev1.ResourcePods
}

// fromList reads a ResourceList.
func fromList(l corev1.ResourceList) resources {
	var r resources
	for n, q := range l {
		if !scheduledResource(n) {
			continue
		}
		if n == corev1.ResourceCPU {
			r.milliCPU = q.MilliValue()
		} else {
			r.set(n, q.Value())
		}
	}
	return r
}

// max sets each resource of r to the larger of r's and o's.
func (r *resources) max(o *resources) {
	r.milliCPU = max(r.milliCPU, o.milliCPU)
	r.memory = max(r.memory, o.memory)
	r.ephemeral = max(r.ephemeral, o.ephemeral)
	for n, v := range o.scalar {
		if v > r.scalar[n] {
			r.set(n, v)
		}
	}
}

// podRequests is what a pod asks of a node, as upstream computes it: the
// sum of its containers' requests, or the largest init container's request
// (plus the sidecars started before it) when that is more, each resource on
// its own; sidecars (init containers that restart always) run beside the
// containers and add to them; pod-level requests, when set, replace the
// containers' cpu and memory; the runtime's overhead is added.
func podRequests(pod *corev1.Pod) resources {
	var sum resources
	for i := range pod.Spec.Containers {
		c := fromList(pod.Spec.Containers[i].Resources.Requests)
		sum.add(&c, 1)
	}
	var sidecars, initMax resources
	for i := range pod.Spec.InitContainers {
		ic := &pod.Spec.InitContainers[i]
		c := fromList(ic.Resources.Requests)
		if isSidecar(ic) {
			sum.add(&c, 1)
			sidecars.add(&c, 1)
			c = sidecars.clone()
		} else {
			c.add(&sidecars, 1)
		}
		initMax.max(&c)
	}
	sum.max(&initMax)
	if pr := pod.Spec.Resources; pr != nil {
		if q, ok := pr.Requests[corev1.ResourceCPU]; ok {
			sum.milliCPU = q.MilliValue()
		}
		if q, ok := pr.Requests[corev1.ResourceMemory]; ok {
			sum.memory = q.Value()
		}
	}
	if pod.Spec.Overhead != nil {
		o := fromList(pod.Spec.Overhead)
		sum.add(&o, 1)
	}
	return sum
}

// nonZeroRequests is podRequests' cpu and memory with the defaults for
// containers that request none, which scoring uses.
func nonZeroRequests(pod *corev1.Pod) (milliCPU, memory int64) {
	nz := func(l corev1.ResourceList) (int64, int64) {
		cpu, mem := int64(defaultMilliCPURequest), int64(defaultMemoryRequest)
		if q, ok := l[corev1.ResourceCPU]; ok {
			cpu = q.MilliValue()
		}
		if q, ok := l[corev1.ResourceMemory]; ok {
			mem = q.Value()
		}
		return cpu, mem
	}
	for i := range pod.Spec.Containers {
		c, m := nz(pod.Spec.Containers[i].Resources.Requests)
		milliCPU += c
		memory += m
	}
	var scCPU, scMem, initCPU, initMem int64
	for i := range pod.Spec.InitContainers {
		ic := &pod.Spec.InitContainers[i]
		c, m := nz(ic.Resources.Requests)
		if isSidecar(ic) {
			milliCPU += c
			memory += m
			scCPU += c
			scMem += m
			c, m = scCPU, scMem
		} else {
			c += scCPU
			m += scMem
		}
		initCPU = max(initCPU, c)
		initMem = max(initMem, m)
	}
	milliCPU = max(milliCPU, initCPU)
	memory = max(memory, initMem)
	if pr := pod.Spec.Resources; pr != nil {
		if q, ok := pr.Requests[corev1.ResourceCPU]; ok {
			milliCPU = q.MilliValue()
		}
		if q, ok := pr.Requests[corev1.ResourceMemory]; ok {
			memory = q.Value()
		}
	}
	if pod.Spec.Overhead != nil {
		if q, ok := pod.Spec.Overhead[corev1.ResourceCPU]; ok {
			milliCPU += q.MilliValue()
		}
		if q, ok := pod.Spec.Overhead[corev1.ResourceMemory]; ok {
			memory += q.Value()
		}
	}
	return milliCPU, memory
}

func isSidecar(c *corev1.Container) bool {
	return c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
}

// insufficient lists the reasons pod requests (req) do not fit in what is
// left of a node (alloc minus used), in upstream's words and order: pods,
// cpu, memory, ephemeral-storage, then other resources by name. unresolvable
// is set when a request exceeds the node's whole allocatable, which no
// preemption can help.
func insufficient(req *resources, alloc *resources, allowedPods int64, used *resources, podCount int64) (reasons []string, unresolvable bool) {
	if podCount+1 > allowedPods {
		reasons = append(reasons, "Too many pods")
	}
	if req.isZero() {
		return reasons, false
	}
	check := func(name string, want, have, inUse int64) {
		if want > 0 && want > have-inUse {
			reasons = append(reasons, "Insufficient "+name)
			if want > have {
				unresolvable = true
			}
		}
	}
	check("cpu", req.milliCPU, alloc.milliCPU, used.milliCPU)
	check("memory", req.memory, alloc.memory, used.memory)
	check("ephemeral-storage", req.ephemeral, alloc.ephemeral, used.ephemeral)
	if len(req.scalar) > 0 {
		names := make([]string, 0, len(req.scalar))
		for n := range req.scalar {
			names = append(names, string(n))
		}
		sort.Strings(names)
		for _, n := range names {
			rn := corev1.ResourceName(n)
			check(n, req.scalar[rn], alloc.scalar[rn], used.scalar[rn])
		}
	}
	return reasons, unresolvable
}
