package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/pgkube/pgkube/agent"
	"github.com/pgkube/pgkube/agent/podfiles"
)

// report is the pod's status as the runtime sees it, with the events
// since the last report.
func (r *Runtime) report(ctx context.Context, node agent.Node, pod *corev1.Pod, p *podState, latest, previous map[string]*instance) (*agent.PodStatus, error) {
	st := &agent.PodStatus{SandboxReady: p.sandboxID != "" && !p.killDone}
	if st.SandboxReady && node.InternalIP != "" {
		st.PodIPs = []string{node.InternalIP}
	}
	initRunning := false
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs, ok := r.containerStatus(pod, p, c, true, latest[c.Name], previous[c.Name], "PodInitializing")
		if ok {
			st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
		}
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			initRunning = true
		}
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		reason := "ContainerCreating"
		if initRunning {
			reason = "PodInitializing"
		}
		cs, _ := r.containerStatus(pod, p, c, false, latest[c.Name], previous[c.Name], reason)
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	st.Events, p.events = p.events, nil
	return st, nil
}

// containerStatus is one container's API status. ok is false for an init
// container with nothing to report yet.
func (r *Runtime) containerStatus(pod *corev1.Pod, p *podState, c *corev1.Container, init bool, in, prev *instance, defaultReason string) (corev1.ContainerStatus, bool) {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image}
	started := false
	cs.Started = &started
	cst := p.ctr(c.Name)
	if prev != nil {
		t := terminated(r.terminationMessage(pod, c, prev), prev)
		cs.LastTerminationState.Terminated = t
	}
	if in == nil {
		reason, msg := defaultReason, ""
		if cst.waitReason != "" {
			reason, msg = cst.waitReason, cst.waitMsg
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
		return cs, !init || cst.waitReason != "" || p.sandboxID != ""
	}
	cs.RestartCount = int32(in.attempt)
	cs.ContainerID = "containerd://" + in.id
	cs.Image = in.status.GetImage().GetImage()
	if cs.Image == "" {
		cs.Image = c.Image
	}
	cs.ImageID = in.status.ImageRef
	switch in.status.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: statusTime(in.status.StartedAt)}
		started = r.probes.Started(pod.UID, c.Name)
		cs.Ready = !init && started && r.probes.Ready(pod.UID, c.Name)
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		t := terminated(r.terminationMessage(pod, c, in), in)
		policy := pod.Spec.RestartPolicy
		restarts := policy == corev1.RestartPolicyAlways || (policy == corev1.RestartPolicyOnFailure && t.ExitCode != 0)
		if init && t.ExitCode == 0 {
			restarts = false
		}
		if restarts && !p.killing && pod.DeletionTimestamp == nil {
			// Between instances: waiting, with the exit as the last state.
			cs.LastTerminationState.Terminated = t
			reason, msg := cst.waitReason, cst.waitMsg
			if reason == "" {
				reason = "ContainerCreating"
			}
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
		} else {
			cs.State.Terminated = t
			cs.Ready = init && t.ExitCode == 0
		}
	default: // created, not started yet
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: defaultReason}
	}
	return cs, true
}

func terminated(msg string, in *instance) *corev1.ContainerStateTerminated {
	s := in.status
	reason := s.Reason
	if reason == "" {
		reason = "Error"
		if s.ExitCode == 0 {
			reason = "Completed"
		}
	}
	if msg == "" {
		msg = s.Message
	}
	return &corev1.ContainerStateTerminated{ExitCode: s.ExitCode, Reason: reason, Message: msg,
		StartedAt: statusTime(s.StartedAt), FinishedAt: statusTime(s.FinishedAt), ContainerID: "containerd://" + in.id}
}

// terminationMessage is what the container wrote to its termination
// message file, or with FallbackToLogsOnError and a failure, the tail of
// its log.
func (r *Runtime) terminationMessage(pod *corev1.Pod, c *corev1.Container, in *instance) string {
	b, _ := os.ReadFile(r.terminationLog(pod, c.Name, in.attempt))
	if len(b) > 4096 {
		b = b[:4096]
	}
	if len(b) == 0 && c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError && in.status.ExitCode != 0 {
		return tailLog(in.status.LogPath, 80, 2048)
	}
	return string(b)
}

// tailLog is the last lines of a CRI log file, without its prefixes.
func tailLog(path string, lines, bytes int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		// <time> <stream> <P|F> <text>
		parts := strings.SplitN(l, " ", 4)
		if len(parts) == 4 {
			out = append(out, parts[3])
		}
	}
	if len(out) > lines {
		out = out[len(out)-lines:]
	}
	s := strings.Join(out, "\n")
	if len(s) > bytes {
		s = s[len(s)-bytes:]
	}
	return s
}

// KillPod implements agent.Runtime: the containers stop in the background
// (preStop hook, SIGTERM, SIGKILL after the grace period), then the
// sandbox; the agent hears of the end through Changes.
func (r *Runtime) KillPod(ctx context.Context, node agent.Node, pod *corev1.Pod, grace time.Duration) (*agent.PodStatus, bool, error) {
	p := r.state(pod.UID)
	if !p.killing {
		p.killing = true
		if p.sandboxID == "" {
			if err := r.findSandbox(ctx, pod, p); err != nil {
				return nil, false, err
			}
		}
		var latest map[string]*instance
		if p.sandboxID != "" {
			var err error
			if latest, _, err = r.instances(ctx, p.sandboxID); err != nil {
				return nil, false, err
			}
		}
		for name, in := range latest {
			if in.running() {
				p.event(name, in.status.Labels[labelInit] == "true", corev1.EventTypeNormal, "Killing", "Stopping container %s", name)
			}
		}
		go r.kill(context.WithoutCancel(ctx), pod, p, latest, grace)
	}
	var latest, previous map[string]*instance
	if p.sandboxID != "" {
		latest, previous, _ = r.instances(ctx, p.sandboxID)
	}
	r.mu.Lock()
	done, err := p.killDone, p.killErr
	r.mu.Unlock()
	st, _ := r.report(ctx, node, pod, p, latest, previous)
	return st, done, err
}

func (r *Runtime) kill(ctx context.Context, pod *corev1.Pod, p *podState, latest map[string]*instance, grace time.Duration) {
	r.probes.Remove(pod.UID)
	secs := int64(grace.Round(time.Second) / time.Second)
	var wg sync.WaitGroup
	for name, in := range latest {
		if !in.running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.stopContainer(ctx, pod, specOf(pod, name), in.id, secs)
		}()
	}
	wg.Wait()
	var err error
	if p.sandboxID != "" {
		_, err = r.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: p.sandboxID})
	}
	r.mu.Lock()
	p.killDone, p.killErr = err == nil, err
	if err != nil {
		p.killing = false // try again on the next sync
	}
	r.mu.Unlock()
	r.notify(pod.UID)
}

func (r *Runtime) findSandbox(ctx context.Context, pod *corev1.Pod, p *podState) error {
	resp, err := r.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{labelPodUID: string(pod.UID)}}})
	if err != nil {
		return fmt.Errorf("listing sandboxes: %w", err)
	}
	for _, sb := range resp.Items {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
			p.sandboxID = sb.Id
		}
	}
	return nil
}

func specOf(pod *corev1.Pod, name string) *corev1.Container {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	return nil
}

// RemovePod implements agent.Runtime: sandboxes and containers go, then
// the pod's volumes, files, logs and cgroups.
func (r *Runtime) RemovePod(ctx context.Context, uid types.UID) error {
	r.probes.Remove(uid)
	resp, err := r.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{labelPodUID: string(uid)}}})
	if err != nil {
		return fmt.Errorf("listing sandboxes: %w", err)
	}
	for _, sb := range resp.Items {
		if _, err := r.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			return fmt.Errorf("stopping sandbox %s: %w", sb.Id, err)
		}
		if _, err := r.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			return fmt.Errorf("removing sandbox %s: %w", sb.Id, err)
		}
	}
	if err := podfiles.Cleanup(r.podDir(uid)); err != nil {
		return err
	}
	logs, _ := filepath.Glob(filepath.Join(r.opts.RootDir, "logs", "*_"+string(uid)))
	for _, d := range logs {
		os.RemoveAll(d)
	}
	removeCgroups(string(uid))
	r.mu.Lock()
	delete(r.pods, uid)
	r.mu.Unlock()
	return nil
}

// removeCgroups removes the pod's (empty, now) cgroup directories, which
// runc leaves behind the parent it was given.
func removeCgroups(uid string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/pgkube/*pod" + uid)
	more, _ := filepath.Glob("/sys/fs/cgroup/*/pgkube/*/pod" + uid)
	for _, d := range append(dirs, more...) {
		os.Remove(d)
	}
}

// ExecSync runs a command in a container and waits for it (probes).
func (r *Runtime) ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (stdout, stderr []byte, exitCode int, err error) {
	secs := int64(timeout.Round(time.Second) / time.Second)
	if secs < 1 {
		secs = 1
	}
	resp, err := r.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: containerID, Cmd: cmd, Timeout: secs})
	if err != nil {
		return nil, nil, 0, err // a gRPC DeadlineExceeded is the probe's timeout
	}
	return resp.Stdout, resp.Stderr, int(resp.ExitCode), nil
}

// StopAll stops and removes every sandbox of the runtime: the end of a
// private containerd's pods when `pgkube up` stops.
func (r *Runtime) StopAll(ctx context.Context) error {
	resp, err := r.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	for _, sb := range resp.Items {
		r.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})     //nolint:errcheck
		r.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}) //nolint:errcheck
		removeCgroups(sb.Labels[labelPodUID])
	}
	// Volumes too: tmpfs mounts must not outlive the cluster.
	dirs, _ := os.ReadDir(filepath.Join(r.opts.RootDir, "pods"))
	var errs []error
	for _, d := range dirs {
		errs = append(errs, podfiles.Cleanup(filepath.Join(r.opts.RootDir, "pods", d.Name())))
	}
	return errors.Join(errs...)
}
