package cri

import (
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestContainerUsage(t *testing.T) {
	now := time.Unix(2000, 0)
	s := &runtimeapi.ContainerStats{
		Attributes: &runtimeapi.ContainerAttributes{Id: "abc", Labels: map[string]string{labelPodUID: "u1"}},
		Cpu:        &runtimeapi.CpuUsage{Timestamp: 1_500_000_000_000, UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: 42}},
		Memory:     &runtimeapi.MemoryUsage{WorkingSetBytes: &runtimeapi.UInt64Value{Value: 7 << 20}},
	}
	u, ok := containerUsage(s, now)
	if !ok || u.ID != "abc" || u.PodUID != "u1" || u.CPUNanoSeconds == nil || *u.CPUNanoSeconds != 42 || u.CPUNanoCores != nil ||
		u.MemoryWorkingSetBytes != 7<<20 || !u.Time.Equal(time.Unix(1500, 0)) {
		t.Errorf("cumulative only: %+v %v", u, ok)
	}
	// containerd's own rate comes along; no timestamp: now.
	s.Cpu = &runtimeapi.CpuUsage{UsageCoreNanoSeconds: &runtimeapi.UInt64Value{Value: 42}, UsageNanoCores: &runtimeapi.UInt64Value{Value: 5e6}}
	if u, ok = containerUsage(s, now); !ok || u.CPUNanoCores == nil || *u.CPUNanoCores != 5e6 || !u.Time.Equal(now) {
		t.Errorf("with a rate: %+v %v", u, ok)
	}
	// A stopped container has no CPU figures: left out.
	s.Cpu = &runtimeapi.CpuUsage{}
	if _, ok = containerUsage(s, now); ok {
		t.Error("a container without CPU figures counted")
	}
}
