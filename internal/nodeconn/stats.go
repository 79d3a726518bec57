package nodeconn

import "time"

// StatsPath is where an agent serves the resource usage of its nodes and
// pods, which the API server turns into metrics.k8s.io NodeMetrics and
// PodMetrics. It is pgkube's own JSON rather than the kubelet's
// /metrics/resource Prometheus text: the API server is its only reader, and
// a pod's logical cluster, UID and node need no label conventions here.
//
// A request names a logical cluster in ClusterHeader: the answer holds the
// pods of that cluster only, and every node of the agent (a node's usage is
// the node's, whoever runs on it).
const StatsPath = "/stats/pgkube"

// Stats is an agent's answer at StatsPath.
type Stats struct {
	Nodes []NodeStats `json:"nodes"`
	Pods  []PodStats  `json:"pods"`
}

// Sample says when usage was measured and over how long a window the CPU
// rate was taken.
type Sample struct {
	Timestamp time.Time `json:"timestamp"`
	// WindowNanoseconds is the length of the CPU rate's window.
	WindowNanoseconds int64 `json:"windowNanoseconds"`
}

// Usage is CPU as a rate (nanocores: 1e9 is one core fully used) and
// memory as the working set, the two figures kubectl top shows.
type Usage struct {
	CPUNanoCores          uint64 `json:"cpuNanoCores"`
	MemoryWorkingSetBytes uint64 `json:"memoryWorkingSetBytes"`
}

// NodeStats is one node's usage.
type NodeStats struct {
	Name string `json:"name"`
	Sample
	Usage
}

// PodStats is the usage of a pod's running containers.
type PodStats struct {
	Namespace  string           `json:"namespace"`
	Name       string           `json:"name"`
	UID        string           `json:"uid"`
	Node       string           `json:"node"`
	Containers []ContainerStats `json:"containers"`
	Sample
}

// ContainerStats is one container's usage.
type ContainerStats struct {
	Name string `json:"name"`
	Usage
}
