package probe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
)

// doExec runs the command in the container through the runtime: exit code
// 0 is a success, any other a failure whose message is the command's
// output (stdout then stderr, as the kubelet joins them).
func doExec(ctx context.Context, e *corev1.ExecAction, t Target, timeout time.Duration) (Result, string, error) {
	if t.Exec == nil {
		return Unknown, "", errors.New("exec probes are not supported by this runtime")
	}
	if t.ContainerID == "" {
		return Unknown, "", errors.New("exec probe: the container has no ID yet")
	}
	// The runtime enforces timeout; the slack bounds a runtime that does
	// not, so that a worker never hangs on it.
	ctx, cancel := context.WithTimeout(ctx, timeout+time.Second)
	defer cancel()
	stdout, stderr, code, err := t.Exec.ExecSync(ctx, t.ContainerID, e.Command, timeout)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded {
			// Output of a command cut short is lost with it; the
			// timeout is what the user needs to see.
			return Failure, fmt.Sprintf("command %q timed out", strings.Join(e.Command, " ")), nil
		}
		return Unknown, "", fmt.Errorf("exec probe %q in container %s: %w", strings.Join(e.Command, " "), t.ContainerID, err)
	}
	out := append(append([]byte{}, stdout...), stderr...)
	if len(out) > maxOutput {
		out = out[:maxOutput]
	}
	if code != 0 {
		return Failure, string(out), nil
	}
	return Success, string(out), nil
}
