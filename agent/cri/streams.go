package cri

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/pgkube/pgkube/agent"
)

var _ agent.Streams = (*Runtime)(nil)

// instanceOf is the latest (or the previous) instance of a container of
// the pod's current sandbox.
func (r *Runtime) instanceOf(ctx context.Context, pod *corev1.Pod, container string, previous bool) (*instance, error) {
	sandbox, err := r.sandboxOf(ctx, pod)
	if err != nil {
		return nil, err
	}
	latest, prev, err := r.instances(ctx, sandbox)
	if err != nil {
		return nil, err
	}
	in := latest[container]
	if previous {
		in = prev[container]
		if in == nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("previous terminated container %q in pod %q not found", container, pod.Name))
		}
	}
	if in == nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("container %q in pod %q is waiting to start: ContainerCreating", container, pod.Name))
	}
	return in, nil
}

// sandboxOf is the pod's ready sandbox.
func (r *Runtime) sandboxOf(ctx context.Context, pod *corev1.Pod) (string, error) {
	p := r.state(pod.UID)
	if p.sandboxID == "" {
		if err := r.findSandbox(ctx, pod, p); err != nil {
			return "", err
		}
	}
	if p.sandboxID == "" {
		return "", apierrors.NewBadRequest(fmt.Sprintf("pod %q has no running sandbox on this node", pod.Name))
	}
	return p.sandboxID, nil
}

// LogPath implements agent.Streams.
func (r *Runtime) LogPath(ctx context.Context, pod *corev1.Pod, container string, previous bool) (string, error) {
	in, err := r.instanceOf(ctx, pod, container, previous)
	if err != nil {
		return "", err
	}
	if p := in.status.LogPath; p != "" {
		return p, nil
	}
	return filepath.Join(r.logDir(pod), attemptLog(container, in.attempt)), nil
}

func (r *Runtime) running(ctx context.Context, pod *corev1.Pod, container string) (*instance, error) {
	in, err := r.instanceOf(ctx, pod, container, false)
	if err != nil {
		return nil, err
	}
	if !in.running() {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s: it is not running", container, pod.Name))
	}
	return in, nil
}

// Exec implements agent.Streams.
func (r *Runtime) Exec(ctx context.Context, pod *corev1.Pod, container string, cmd []string, tty, stdin, stdout, stderr bool) (*url.URL, error) {
	in, err := r.running(ctx, pod, container)
	if err != nil {
		return nil, err
	}
	resp, err := r.rt.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: in.id, Cmd: cmd, Tty: tty, Stdin: stdin, Stdout: stdout, Stderr: stderr && !tty})
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %s", container, grpcMessage(err))
	}
	return url.Parse(resp.Url)
}

// Attach implements agent.Streams.
func (r *Runtime) Attach(ctx context.Context, pod *corev1.Pod, container string, tty, stdin, stdout, stderr bool) (*url.URL, error) {
	in, err := r.running(ctx, pod, container)
	if err != nil {
		return nil, err
	}
	resp, err := r.rt.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: in.id, Tty: tty, Stdin: stdin, Stdout: stdout, Stderr: stderr && !tty})
	if err != nil {
		return nil, fmt.Errorf("attach to %s: %s", container, grpcMessage(err))
	}
	return url.Parse(resp.Url)
}

// PortForward implements agent.Streams.
func (r *Runtime) PortForward(ctx context.Context, pod *corev1.Pod, ports []int32) (*url.URL, error) {
	sandbox, err := r.sandboxOf(ctx, pod)
	if err != nil {
		return nil, err
	}
	resp, err := r.rt.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: sandbox, Port: ports})
	if err != nil {
		return nil, fmt.Errorf("port forward to %s: %s", pod.Name, grpcMessage(err))
	}
	return url.Parse(resp.Url)
}
