// Package probe runs container probes (liveness, readiness, startup) the
// way a kubelet does: Do makes one attempt of a probe's handler (httpGet,
// tcpSocket, grpc or exec) and Manager runs the probes of the containers of
// many pods in background workers, keeping the results a pod's status and
// the restart of unhealthy containers are made from.
//
// The messages (the output of a probe, the Unhealthy events) follow the
// kubelet's, since users and tests match on them.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Result is the outcome of one probe attempt, or the state a worker
// publishes for a container.
type Result int

const (
	// Unknown: the probe could not be run (a bad port, an unreachable
	// runtime); a worker ignores such an attempt.
	Unknown Result = iota
	// Success: the container answered as healthy.
	Success
	// Failure: the container answered as unhealthy or not at all.
	Failure
	// Warning: a success the user should hear about (an HTTP probe that
	// stopped at a redirect to another host); it counts as Success.
	Warning
)

func (r Result) String() string {
	switch r {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Warning:
		return "warning"
	default:
		return "unknown"
	}
}

// Execer runs a command in a container and waits for it, as the CRI's
// ExecSync does. A command that outlives timeout must end in an error that
// is (or wraps) context.DeadlineExceeded, or a gRPC status with code
// DeadlineExceeded, so that the probe reports it as a timeout; a command
// that ran to its end returns err nil whatever its exit code.
type Execer interface {
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, exitCode int, err error)
}

// Target is what a probe is aimed at: one container of a pod.
type Target struct {
	// PodIP is the default host of httpGet and tcpSocket probes and the
	// host of grpc probes.
	PodIP string
	// ContainerID is the runtime's ID of the container, for exec probes.
	ContainerID string
	// Container is the container's spec, for its named ports; may be nil
	// when the probe's ports are numbers.
	Container *corev1.Container
	// Exec runs exec probes; nil makes an exec probe Unknown.
	Exec Execer
}

// UserAgent is what HTTP and gRPC probes send as User-Agent, the
// kubelet's for the Kubernetes minor the agent reports (agent.KubeletVersion).
const UserAgent = "kube-probe/1.37"

// maxOutput bounds what is kept of a response body or a command's output:
// it ends up in events and logs, and a container must not make the agent
// buffer without limit.
const maxOutput = 10 * 1024

// Do makes one attempt of probe p against t, bounded by p's timeoutSeconds
// (1 s when unset) and ctx. It returns the result and the probe's output:
// on Failure the message the kubelet puts in its Unhealthy event after
// "<Kind> probe failed: ", on Unknown the error that kept the probe from
// running, on Warning the warning.
func Do(ctx context.Context, p *corev1.Probe, t Target) (Result, string) {
	res, out, err := do(ctx, p, t, timeoutOf(p))
	if err != nil {
		return Unknown, err.Error()
	}
	return res, out
}

func timeoutOf(p *corev1.Probe) time.Duration {
	if p == nil || p.TimeoutSeconds <= 0 {
		return time.Second
	}
	return time.Duration(p.TimeoutSeconds) * time.Second
}

// do keeps the kubelet's split between a probe that ran and failed (a
// Failure and its output) and one that could not run (an error), which
// the manager reports differently.
func do(ctx context.Context, p *corev1.Probe, t Target, timeout time.Duration) (Result, string, error) {
	if p == nil {
		return Unknown, "", errors.New("no probe")
	}
	switch {
	case p.Exec != nil:
		return doExec(ctx, p.Exec, t, timeout)
	case p.HTTPGet != nil:
		return doHTTP(ctx, p.HTTPGet, t, timeout)
	case p.TCPSocket != nil:
		return doTCP(ctx, p.TCPSocket, t, timeout)
	case p.GRPC != nil:
		return doGRPC(ctx, p.GRPC, t, timeout)
	default:
		name := ""
		if t.Container != nil {
			name = t.Container.Name
		}
		return Unknown, "", fmt.Errorf("missing probe handler for container %q", name)
	}
}

// resolvePort turns a probe's port into a number, looking names up in the
// container's ports; a name that is not one but reads as a number is taken
// as that number, as the kubelet does for ports stored as strings.
func resolvePort(port intstr.IntOrString, c *corev1.Container) (int, error) {
	n := -1
	switch port.Type {
	case intstr.Int:
		n = int(port.IntVal)
	case intstr.String:
		found := false
		if c != nil {
			for _, cp := range c.Ports {
				if cp.Name == port.StrVal {
					n, found = int(cp.ContainerPort), true
					break
				}
			}
		}
		if !found {
			v, err := strconv.Atoi(port.StrVal)
			if err != nil {
				if c == nil {
					return 0, fmt.Errorf("port %q not found: no container spec to look it up in", port.StrVal)
				}
				return 0, fmt.Errorf("port %q not found in container %q", port.StrVal, c.Name)
			}
			n = v
		}
	default:
		return 0, fmt.Errorf("port %v has no type", port)
	}
	if n <= 0 || n > 65535 {
		return 0, fmt.Errorf("invalid port number: %d", n)
	}
	return n, nil
}

// dial opens a probe's TCP connection. It sets a linger of 1 s so that
// closed probe connections do not pile up in TIME_WAIT (a node probing many
// containers every few seconds would hold tens of thousands); 1 s rather
// than 0 still closes with a FIN, not a reset.
func dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		// A socket that refuses the option still probes fine.
		_ = tc.SetLinger(1)
	}
	return conn, nil
}
