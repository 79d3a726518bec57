package agent

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
)

// What a simulated container uses: its requests, so that kubectl top shows
// what the scheduler accounted for and scale tests see believable, stable
// figures; a container that requests nothing uses a little (best-effort
// pods are not free). Nodes use the sum of their pods (Stats reports no
// host: the agent's machine is not any one simulated node).
const (
	simDefaultNanoCores = 1_000_000 // 1m
	simDefaultMemory    = 4 << 20   // 4Mi
	// simWindow is the window the rates stand for, a kubelet's usual
	// housekeeping interval.
	simWindow = 10 * time.Second
)

var _ StatsProvider = (*Simulated)(nil)

// Stats implements StatsProvider.
func (s *Simulated) Stats(_ context.Context, pods []*corev1.Pod) (*Usage, []ContainerUsage, error) {
	specs := make(map[types.UID]*corev1.Pod, len(pods))
	for _, p := range pods {
		specs[p.UID] = p
	}
	now := s.now()
	var out []ContainerUsage
	s.mu.Lock()
	defer s.mu.Unlock()
	for uid, p := range s.pods {
		pod := specs[uid]
		if pod == nil {
			continue
		}
		for _, list := range [][]*simContainer{p.init, p.cont} {
			for _, c := range list {
				if c.id == "" {
					continue
				}
				cpu, mem := simulatedUsage(pod, c.name)
				out = append(out, ContainerUsage{PodUID: uid, ID: c.id,
					Usage: Usage{Time: now, CPUNanoCores: &cpu, Window: simWindow, MemoryWorkingSetBytes: mem}})
			}
		}
	}
	return nil, out, nil
}

// simulatedUsage is what the named container of pod uses.
func simulatedUsage(pod *corev1.Pod, name string) (nanoCores, memory uint64) {
	nanoCores, memory = simDefaultNanoCores, simDefaultMemory
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if c.Name != name {
				continue
			}
			if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok && q.Sign() > 0 {
				nanoCores = uint64(q.ScaledValue(-9))
			}
			if q, ok := c.Resources.Requests[corev1.ResourceMemory]; ok && q.Sign() > 0 {
				memory = uint64(q.Value())
			}
			if v, ok := setting(pod, AnnMemoryUsage, name, true); ok {
				if q, err := resource.ParseQuantity(v); err == nil && q.Sign() >= 0 {
					memory = uint64(q.Value())
				}
			}
			return nanoCores, memory
		}
	}
	return nanoCores, memory
}
