package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/pgkube/pgkube/agent"
	"github.com/pgkube/pgkube/agent/podfiles"
	"github.com/pgkube/pgkube/agent/probe"
)

const maxBackoff = 5 * time.Minute

// podState is what the runtime remembers of a pod between syncs; all
// else is read back from the runtime each time, so that an agent
// restarted carries on with the pods already running.
type podState struct {
	sandboxID string
	ctrs      map[string]*ctrState
	events    []agent.ContainerEvent
	wakeAt    time.Time // tell the agent to sync again then (a back-off ends)
	volumes   map[string]string
	mountErr  string // the last volume set-up failure reported

	killing  bool
	killDone bool
	killErr  error
}

// ctrState is a container's waiting reason and back-offs.
type ctrState struct {
	waitReason, waitMsg string
	nextStart           time.Time // restart back-off
	pullBackoff         time.Duration
	nextPull            time.Time
	handledExit         string // id of the instance whose exit started a back-off
}

func (p *podState) ctr(name string) *ctrState {
	c := p.ctrs[name]
	if c == nil {
		c = &ctrState{}
		p.ctrs[name] = c
	}
	return c
}

func (p *podState) event(c string, init bool, typ, reason, format string, args ...any) {
	p.events = append(p.events, agent.ContainerEvent{Container: c, Init: init, Type: typ, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

func (p *podState) wake(at time.Time) {
	if p.wakeAt.IsZero() || at.Before(p.wakeAt) {
		p.wakeAt = at
	}
}

func (r *Runtime) state(uid types.UID) *podState {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pods[uid]
	if p == nil {
		p = &podState{ctrs: map[string]*ctrState{}}
		r.pods[uid] = p
	}
	return p
}

// instance is one CRI container of a pod: a container name's attempt.
type instance struct {
	id      string
	attempt uint32
	status  *runtimeapi.ContainerStatus
}

func (i *instance) running() bool {
	return i != nil && i.status.State == runtimeapi.ContainerState_CONTAINER_RUNNING
}
func (i *instance) exited() bool {
	return i != nil && i.status.State == runtimeapi.ContainerState_CONTAINER_EXITED
}

// instances are the latest and the previous instance of each container
// of the pod's current sandbox.
func (r *Runtime) instances(ctx context.Context, sandboxID string) (latest, previous map[string]*instance, err error) {
	resp, err := r.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{PodSandboxId: sandboxID}})
	if err != nil {
		return nil, nil, fmt.Errorf("listing containers: %w", err)
	}
	byName := map[string][]*runtimeapi.Container{}
	for _, c := range resp.Containers {
		byName[c.Metadata.Name] = append(byName[c.Metadata.Name], c)
	}
	latest, previous = map[string]*instance{}, map[string]*instance{}
	for name, cs := range byName {
		sort.Slice(cs, func(i, j int) bool { return cs[i].Metadata.Attempt > cs[j].Metadata.Attempt })
		for i, c := range cs[:min(2, len(cs))] {
			st, err := r.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: c.Id})
			if err != nil {
				return nil, nil, fmt.Errorf("status of container %s: %w", c.Id, err)
			}
			in := &instance{id: c.Id, attempt: c.Metadata.Attempt, status: st.Status}
			if i == 0 {
				latest[name] = in
			} else {
				previous[name] = in
			}
		}
		// Older instances are of no more use (kubelet keeps a few dead
		// ones for logs; one previous is what `logs --previous` reads).
		for _, c := range cs[min(2, len(cs)):] {
			r.rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: c.Id}) //nolint:errcheck
		}
	}
	return latest, previous, nil
}

// SyncPod implements agent.Runtime, as a kubelet's SyncPod: sandbox,
// volumes, init containers one by one, then the containers, restarting
// per restartPolicy.
func (r *Runtime) SyncPod(ctx context.Context, node agent.Node, pod *corev1.Pod) (*agent.PodStatus, error) {
	p := r.state(pod.UID)
	if r.clients == nil {
		return nil, errNoClients
	}
	cs := r.clients(pod)

	vols, err := podfiles.Prepare(ctx, cs, pod, r.podDir(pod.UID), podfiles.Node{Name: node.Name, IP: node.InternalIP})
	if err != nil {
		msg := err.Error()
		if msg != p.mountErr {
			p.event("", false, corev1.EventTypeWarning, "FailedMount", "%s", msg)
			p.mountErr = msg
		}
		p.wake(time.Now().Add(2 * time.Second))
		return r.report(ctx, node, pod, p, nil, nil)
	}
	p.mountErr, p.volumes = "", vols

	if err := r.ensureSandbox(ctx, node, pod, p); err != nil {
		p.event("", false, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		p.wake(time.Now().Add(5 * time.Second))
		return r.report(ctx, node, pod, p, nil, nil)
	}
	latest, previous, err := r.instances(ctx, p.sandboxID)
	if err != nil {
		return nil, err
	}
	r.probes.Update(pod, node.InternalIP, probeStates(latest))
	changed := false

	// Init containers, in order: each must finish well before the next.
	initDone := true
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		in := latest[c.Name]
		if in.exited() && in.status.ExitCode == 0 {
			continue
		}
		initDone = false
		switch {
		case in == nil:
			changed = r.start(ctx, node, pod, p, c, true, 0) || changed
		case in.exited():
			if pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
				break // the pod has failed
			}
			changed = r.restart(ctx, node, pod, p, c, true, in) || changed
		}
		break
	}
	if initDone {
		kills := map[string]probe.Kill{}
		for _, k := range r.probes.LivenessFailed(pod.UID) {
			kills[k.Container] = k
		}
		for i := range pod.Spec.Containers {
			c := &pod.Spec.Containers[i]
			in := latest[c.Name]
			switch {
			case in == nil:
				changed = r.start(ctx, node, pod, p, c, false, 0) || changed
			case in.running():
				if k, failed := kills[c.Name]; failed && k.ContainerID == in.id {
					r.stopForRestart(ctx, pod, p, c, in, k.Message)
					changed = true
				}
			case in.exited():
				policy := pod.Spec.RestartPolicy
				if policy == corev1.RestartPolicyAlways || (policy == corev1.RestartPolicyOnFailure && in.status.ExitCode != 0) {
					changed = r.restart(ctx, node, pod, p, c, false, in) || changed
				}
			}
		}
	}
	if changed {
		if latest, previous, err = r.instances(ctx, p.sandboxID); err != nil {
			return nil, err
		}
		r.probes.Update(pod, node.InternalIP, probeStates(latest))
	}
	for _, e := range r.probes.Events(pod.UID) {
		p.event(e.Container, false, e.Type, e.Reason, "%s", e.Message)
	}
	return r.report(ctx, node, pod, p, latest, previous)
}

func probeStates(latest map[string]*instance) map[string]probe.ContainerState {
	out := map[string]probe.ContainerState{}
	for name, in := range latest {
		out[name] = probe.ContainerState{ID: in.id, Running: in.running(), StartedAt: time.Unix(0, in.status.StartedAt)}
	}
	return out
}

// restart starts a new instance of an exited container once its back-off
// is over.
func (r *Runtime) restart(ctx context.Context, node agent.Node, pod *corev1.Pod, p *podState, c *corev1.Container, init bool, in *instance) bool {
	cst := p.ctr(c.Name)
	if cst.handledExit != in.id {
		cst.handledExit = in.id
		delay := agent.RestartBackoff(r.opts.RestartBackoff, int(in.attempt))
		// A container that ran long and well starts its back-off afresh.
		if ran := time.Duration(in.status.FinishedAt - in.status.StartedAt); ran > 2*maxBackoff {
			delay = 0
		}
		cst.nextStart = time.Unix(0, in.status.FinishedAt).Add(delay)
		if delay > 0 {
			cst.waitReason = "CrashLoopBackOff"
			cst.waitMsg = fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", delay, c.Name, podRef(pod))
		}
	}
	if now := time.Now(); now.Before(cst.nextStart) {
		p.event(c.Name, init, corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s", c.Name, podRef(pod))
		p.wake(cst.nextStart)
		return false
	}
	return r.start(ctx, node, pod, p, c, init, in.attempt+1)
}

// stopForRestart stops a container its liveness (or startup) probe found
// failing; the restart follows as for any exit.
func (r *Runtime) stopForRestart(ctx context.Context, pod *corev1.Pod, p *podState, c *corev1.Container, in *instance, msg string) {
	p.event(c.Name, false, corev1.EventTypeNormal, "Killing", "%s", msg)
	grace := int64(30)
	if g := pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	r.stopContainer(ctx, pod, c, in.id, grace)
}

func podRef(pod *corev1.Pod) string {
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}

// ensureSandbox finds the pod's ready sandbox, or makes one (again: a
// sandbox that died takes its containers with it, as in a kubelet).
func (r *Runtime) ensureSandbox(ctx context.Context, node agent.Node, pod *corev1.Pod, p *podState) error {
	resp, err := r.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		LabelSelector: map[string]string{labelPodUID: string(pod.UID)}}})
	if err != nil {
		return fmt.Errorf("listing sandboxes: %w", err)
	}
	var attempt uint32
	var ready *runtimeapi.PodSandbox
	for _, sb := range resp.Items {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY && (ready == nil || sb.Metadata.Attempt > ready.Metadata.Attempt) {
			ready = sb
		}
		attempt = max(attempt, sb.Metadata.Attempt+1)
	}
	if ready != nil {
		p.sandboxID = ready.Id
		return nil
	}
	for _, sb := range resp.Items {
		r.rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})     //nolint:errcheck
		r.rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}) //nolint:errcheck
	}
	if err := os.MkdirAll(r.logDir(pod), 0o750); err != nil {
		return err
	}
	if err := r.writeHostFiles(node, pod); err != nil {
		return err
	}
	out, err := r.rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sandboxConfig(pod, r.logDir(pod), attempt)})
	if err != nil {
		return err
	}
	p.sandboxID = out.PodSandboxId
	return nil
}

// writeHostFiles writes the /etc/hostname and /etc/hosts of a pod that
// did not ask for the host's network (it gets it anyway, for now, but is
// named as it would be on its own).
func (r *Runtime) writeHostFiles(node agent.Node, pod *corev1.Pod) error {
	if pod.Spec.HostNetwork {
		return nil
	}
	dir := filepath.Join(r.podDir(pod.UID), "etc")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	host := podHostname(pod)
	fqdn := host
	if pod.Spec.Subdomain != "" {
		fqdn = host + "." + pod.Spec.Subdomain + "." + pod.Namespace + ".svc.cluster.local"
	}
	hosts := "# Kubernetes-managed hosts file (pgkube).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		node.InternalIP + "\t" + fqdn
	if fqdn != host {
		hosts += "\t" + host
	}
	hosts += "\n"
	for _, a := range pod.Spec.HostAliases {
		for _, h := range a.Hostnames {
			hosts += a.IP + "\t" + h + "\n"
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "hostname"), []byte(host+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts), 0o644)
}

func podHostname(pod *corev1.Pod) string {
	h := pod.Name
	if pod.Spec.Hostname != "" {
		h = pod.Spec.Hostname
	}
	if len(h) > 63 {
		h = h[:63]
	}
	return h
}

// start makes and starts one instance of a container: image, config,
// create, start, postStart hook.
func (r *Runtime) start(ctx context.Context, node agent.Node, pod *corev1.Pod, p *podState, c *corev1.Container, init bool, attempt uint32) bool {
	cst := p.ctr(c.Name)
	if !r.ensureImage(ctx, pod, p, c, init) {
		return false
	}
	cfg, err := r.containerConfig(ctx, node, pod, p, c, init, attempt)
	if err != nil {
		var fe *podfiles.Error
		reason, msg := "CreateContainerConfigError", err.Error()
		if errors.As(err, &fe) {
			reason, msg = fe.Reason, fe.Message
		}
		cst.waitReason, cst.waitMsg = reason, msg
		p.event(c.Name, init, corev1.EventTypeWarning, "Failed", "Error: %s", msg)
		p.wake(time.Now().Add(2 * time.Second))
		return false
	}
	sbCfg := sandboxConfig(pod, r.logDir(pod), 0)
	created, err := r.rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.sandboxID, Config: cfg, SandboxConfig: sbCfg})
	if err != nil {
		cst.waitReason, cst.waitMsg = "CreateContainerError", err.Error()
		p.event(c.Name, init, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		p.wake(time.Now().Add(2 * time.Second))
		return false
	}
	p.event(c.Name, init, corev1.EventTypeNormal, "Created", "Created container: %s", c.Name)
	if _, err := r.rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		cst.waitReason, cst.waitMsg = "RunContainerError", err.Error()
		p.event(c.Name, init, corev1.EventTypeWarning, "Failed", "Error: %v", err)
		p.wake(time.Now().Add(2 * time.Second))
		return true
	}
	cst.waitReason, cst.waitMsg = "", ""
	p.event(c.Name, init, corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
	if c.Lifecycle != nil && c.Lifecycle.PostStart != nil {
		if msg, err := r.runHook(ctx, pod, c, created.ContainerId, c.Lifecycle.PostStart, node); err != nil {
			p.event(c.Name, init, corev1.EventTypeWarning, "FailedPostStartHook", "PostStartHook failed: %s", msg)
			r.stopContainer(ctx, pod, c, created.ContainerId, 0)
		}
	}
	return true
}

// ensureImage has the container's image present per its pull policy;
// false (with the waiting reason set) when it is not.
func (r *Runtime) ensureImage(ctx context.Context, pod *corev1.Pod, p *podState, c *corev1.Container, init bool) bool {
	cst := p.ctr(c.Name)
	spec := &runtimeapi.ImageSpec{Image: c.Image}
	st, err := r.img.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: spec})
	present := err == nil && st.Image != nil
	policy := c.ImagePullPolicy
	if policy == "" {
		policy = corev1.PullIfNotPresent
	}
	switch {
	case present && policy != corev1.PullAlways:
		p.event(c.Name, init, corev1.EventTypeNormal, "Pulled", "Container image %q already present on machine", c.Image)
		return true
	case policy == corev1.PullNever:
		cst.waitReason = "ErrImageNeverPull"
		cst.waitMsg = fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
		p.event(c.Name, init, corev1.EventTypeWarning, "ErrImageNeverPull", "%s", cst.waitMsg)
		return false
	}
	now := time.Now()
	if now.Before(cst.nextPull) {
		cst.waitReason = "ImagePullBackOff"
		cst.waitMsg = fmt.Sprintf("Back-off pulling image %q", c.Image)
		p.event(c.Name, init, corev1.EventTypeNormal, "BackOff", "%s", cst.waitMsg)
		p.wake(cst.nextPull)
		return false
	}
	p.event(c.Name, init, corev1.EventTypeNormal, "Pulling", "Pulling image %q", c.Image)
	pullCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	_, err = r.img.PullImage(pullCtx, &runtimeapi.PullImageRequest{Image: spec, Auth: r.pullAuth(ctx, pod, c.Image),
		SandboxConfig: sandboxConfig(pod, r.logDir(pod), 0)})
	if err != nil {
		cst.pullBackoff = min(max(2*cst.pullBackoff, r.opts.RestartBackoff), maxBackoff)
		cst.nextPull = now.Add(cst.pullBackoff)
		cst.waitReason = "ErrImagePull"
		cst.waitMsg = fmt.Sprintf("failed to pull and unpack image %q: %v", c.Image, grpcMessage(err))
		p.event(c.Name, init, corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %s", c.Image, grpcMessage(err))
		p.event(c.Name, init, corev1.EventTypeWarning, "Failed", "Error: ErrImagePull")
		p.wake(cst.nextPull)
		return false
	}
	cst.pullBackoff, cst.nextPull = 0, time.Time{}
	p.event(c.Name, init, corev1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %s", c.Image, time.Since(start).Round(time.Millisecond))
	return true
}

// stopContainer stops one instance: the preStop hook, then SIGTERM and,
// after grace seconds, SIGKILL (the runtime does those two).
func (r *Runtime) stopContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id string, grace int64) {
	deadline := time.Now().Add(time.Duration(grace) * time.Second)
	if c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil && grace > 0 {
		hctx, cancel := context.WithDeadline(ctx, deadline)
		r.runHook(hctx, pod, c, id, c.Lifecycle.PreStop, agent.Node{}) //nolint:errcheck // a failing preStop does not hold the stop
		cancel()
	}
	left := int64(time.Until(deadline).Round(time.Second) / time.Second)
	if left < 0 || grace == 0 {
		left = 0
	}
	r.rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: left}) //nolint:errcheck // seen in the next status
}

func attemptLog(name string, attempt uint32) string {
	return filepath.Join(name, strconv.FormatUint(uint64(attempt), 10)+".log")
}

// statusTime is a CRI nanosecond time as the API's second-precision one.
func statusTime(ns int64) metav1.Time {
	if ns == 0 {
		return metav1.Time{}
	}
	return metav1.NewTime(time.Unix(0, ns).Truncate(time.Second))
}
