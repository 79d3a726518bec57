package agent

import (
	"context"
	"net/url"

	corev1 "k8s.io/api/core/v1"
)

// Streams is what a runtime offers for logs and streams. A Runtime that
// also implements Streams gets them served by the agent's server; the
// simulated runtime does not, and the server says so.
type Streams interface {
	// LogPath is the CRI-format log file of the container (previous: of
	// the instance before the current one). The agent has checked the
	// container's status first, so an error here is unexpected (the file
	// went away) and reaches the user as it is.
	LogPath(ctx context.Context, pod *corev1.Pod, container string, previous bool) (string, error)
	// Exec, Attach and PortForward return the runtime's streaming-server
	// URL for the request (CRI's Exec/Attach/PortForward answers carry
	// one), plain HTTP on the node; the agent proxies the client's
	// upgrade request there. An error that is an API status (apierrors)
	// keeps its code.
	Exec(ctx context.Context, pod *corev1.Pod, container string, cmd []string, tty, stdin, stdout, stderr bool) (*url.URL, error)
	Attach(ctx context.Context, pod *corev1.Pod, container string, tty, stdin, stdout, stderr bool) (*url.URL, error)
	PortForward(ctx context.Context, pod *corev1.Pod, ports []int32) (*url.URL, error)
}
