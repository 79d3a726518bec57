package cri

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/pgkube/pgkube/agent"
)

var _ agent.StatsProvider = (*Runtime)(nil)

// Stats implements agent.StatsProvider: the containers' figures from CRI's
// ListContainerStats, the host's from /proc. Cumulative CPU time is passed
// on as it is (the agent takes rates between its own measurements); a
// rate the runtime computed between its samples (containerd fills
// usage_nano_cores once it has two) is passed on too, for the agent's
// first measurement.
func (r *Runtime) Stats(ctx context.Context, _ []*corev1.Pod) (*agent.Usage, []agent.ContainerUsage, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := r.rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
	if err != nil {
		return nil, nil, fmt.Errorf("listing container stats: %w", r.unreachable(err))
	}
	now := time.Now()
	out := make([]agent.ContainerUsage, 0, len(resp.GetStats()))
	for _, s := range resp.GetStats() {
		if u, ok := containerUsage(s, now); ok {
			out = append(out, u)
		}
	}
	host, err := agent.HostUsage("/proc")
	if err != nil {
		// Without /proc the nodes' figures are their pods' sums.
		r.log.Debug("no host usage", "err", err)
		host = nil
	}
	return host, out, nil
}

// containerUsage reads one container's figures; false when the runtime
// gave no CPU figure at all (a container that is not running).
func containerUsage(s *runtimeapi.ContainerStats, now time.Time) (agent.ContainerUsage, bool) {
	attrs, cpu := s.GetAttributes(), s.GetCpu()
	if attrs.GetId() == "" || cpu == nil || (cpu.GetUsageCoreNanoSeconds() == nil && cpu.GetUsageNanoCores() == nil) {
		return agent.ContainerUsage{}, false
	}
	u := agent.ContainerUsage{PodUID: types.UID(attrs.GetLabels()[labelPodUID]), ID: attrs.GetId(), Usage: agent.Usage{Time: now}}
	if ts := cpu.GetTimestamp(); ts > 0 {
		u.Time = time.Unix(0, ts)
	}
	if v := cpu.GetUsageCoreNanoSeconds(); v != nil {
		n := v.GetValue()
		u.CPUNanoSeconds = &n
	}
	if v := cpu.GetUsageNanoCores(); v != nil {
		n := v.GetValue()
		// Over a window CRI does not tell (between the runtime's last
		// two samples): Window stays unknown, zero.
		u.CPUNanoCores = &n
	}
	if m := s.GetMemory().GetWorkingSetBytes(); m != nil {
		u.MemoryWorkingSetBytes = m.GetValue()
	}
	return u, true
}
