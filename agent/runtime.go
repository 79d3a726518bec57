package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Node is what a runtime is told of the node a pod runs on.
type Node struct {
	Name       string
	InternalIP string
	PodCIDR    string
}

// PodStatus is what a runtime reports of one pod: its sandbox and its
// containers, in the API's form (the agent adds phase, conditions and the
// rest, as a kubelet does).
type PodStatus struct {
	// SandboxReady: the pod's sandbox (and network) is up.
	SandboxReady bool
	PodIPs       []string
	// Statuses of the init containers and containers that have one yet,
	// in the spec's order.
	InitContainerStatuses []corev1.ContainerStatus
	ContainerStatuses     []corev1.ContainerStatus
	// Reason and Message of the pod (e.g. a pod the node rejects).
	Reason, Message string
	// Events that happened since the last report (Pulled, Created,
	// Started, Killing, BackOff, ...), which the agent records.
	Events []ContainerEvent
}

// ContainerEvent is an Event about one container of a pod.
type ContainerEvent struct {
	Container string // "" for the pod
	Init      bool   // an init container
	Type      string // Normal or Warning
	Reason    string
	Message   string
}

// Runtime runs the containers of the pods bound to the agent's nodes. The
// agent calls it from several goroutines, never for one pod at once.
type Runtime interface {
	// Name is the runtime's name, as in containerID URLs (NAME://ID)
	// and the node's containerRuntimeVersion.
	Name() string
	// Version is the runtime's version.
	Version(ctx context.Context) (string, error)
	// Ready is nil when pods can run; else the reason the node is not
	// ready.
	Ready(ctx context.Context) error
	// SyncPod makes the pod's containers what its spec asks (sandbox,
	// init containers in order, containers, restarts per restartPolicy)
	// and reports them. The pod's current status helps a runtime that
	// lost its state (the agent restarted) to carry on.
	SyncPod(ctx context.Context, node Node, pod *corev1.Pod) (*PodStatus, error)
	// KillPod stops the pod's containers, giving them grace to exit;
	// done once all have stopped (else Changes says when to ask again).
	KillPod(ctx context.Context, node Node, pod *corev1.Pod, grace time.Duration) (st *PodStatus, done bool, err error)
	// RemovePod frees what is left of a pod whose API object is gone.
	RemovePod(ctx context.Context, uid types.UID) error
	// Changes names pods whose containers changed on their own (started,
	// became ready, exited), for the agent to sync them.
	Changes() <-chan types.UID
}

// ClientsUser is a runtime that reads API objects for its pods (ConfigMaps,
// Secrets, tokens): the agent gives it a client of each pod's cluster.
type ClientsUser interface {
	UseClients(func(pod *corev1.Pod) kubernetes.Interface)
}

// Runner is a runtime with background work (polling its containers, say)
// that the agent runs for as long as it runs.
type Runner interface {
	Run(ctx context.Context)
}

// ErrNotImplemented is what a runtime not built yet answers.
var ErrNotImplemented = errors.New("not implemented yet")

// NewRuntime makes the simulated runtime (see Simulated); the real one is
// package agent/cri.
func NewRuntime(name string, sim SimulatedOptions) (Runtime, error) {
	switch name {
	case "simulated":
		return NewSimulated(sim), nil
	}
	return nil, fmt.Errorf("unknown runtime %q: want simulated or cri", name)
}
