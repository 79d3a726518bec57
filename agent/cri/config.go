package cri

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/pgkube/pgkube/agent"
	"github.com/pgkube/pgkube/agent/podfiles"
)

func podLabels(pod *corev1.Pod) map[string]string {
	return map[string]string{labelPodName: pod.Name, labelPodNamespace: pod.Namespace, labelPodUID: string(pod.UID),
		labelCluster: clusterOf(pod)}
}

func clusterOf(pod *corev1.Pod) string { return pod.Annotations["pgkube.io/cluster"] }

func namespaceOptions(pod *corev1.Pod) *runtimeapi.NamespaceOption {
	// The host's network always, for now (see the package comment).
	o := &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE,
		Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD}
	if pod.Spec.HostPID {
		o.Pid = runtimeapi.NamespaceMode_NODE
	} else if pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace {
		o.Pid = runtimeapi.NamespaceMode_POD
	}
	if pod.Spec.HostIPC {
		o.Ipc = runtimeapi.NamespaceMode_NODE
	}
	return o
}

// sandboxConfig is the pod's CRI sandbox. Its hostname stays empty: a
// sandbox on the host's network shares the host's UTS namespace, where
// runc may not set one.
func sandboxConfig(pod *corev1.Pod, logDir string, attempt uint32) *runtimeapi.PodSandboxConfig {
	privileged := false
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			privileged = true
		}
	}
	return &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt},
		LogDirectory: logDir,
		Labels:       podLabels(pod),
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: cgroupParent(pod),
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: namespaceOptions(pod),
				Privileged:       privileged,
			},
		},
	}
}

// cgroupParent is the pod's cgroup, under its QoS class's (cgroupfs
// layout), so that limits and accounting group as on a kubelet's node.
func cgroupParent(pod *corev1.Pod) string {
	qos := strings.ToLower(string(pod.Status.QOSClass))
	if qos == "" {
		qos = strings.ToLower(string(agent.QOSClass(pod)))
	}
	if qos == "guaranteed" {
		return "/pgkube/pod" + string(pod.UID)
	}
	return "/pgkube/" + qos + "/pod" + string(pod.UID)
}

// containerConfig is the CRI config of one instance of a container.
func (r *Runtime) containerConfig(ctx context.Context, node agent.Node, pod *corev1.Pod, p *podState, c *corev1.Container, init bool, attempt uint32) (*runtimeapi.ContainerConfig, error) {
	// The downward API reads the pod's addresses from its status, which
	// the agent has not written yet for a first start.
	withIPs := pod.DeepCopy()
	withIPs.Status.PodIP, withIPs.Status.HostIP = node.InternalIP, node.InternalIP
	withIPs.Status.PodIPs = []corev1.PodIP{{IP: node.InternalIP}}
	withIPs.Status.HostIPs = []corev1.HostIP{{IP: node.InternalIP}}
	env, err := podfiles.Env(ctx, r.clients(pod), withIPs, c, podfiles.Node{Name: node.Name, IP: node.InternalIP})
	if err != nil {
		return nil, err
	}
	mounts, err := podfiles.Mounts(pod, c, p.volumes, env)
	if err != nil {
		return nil, err
	}
	if err := checkNonRoot(pod, c); err != nil {
		return nil, err
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: attempt},
		Image:      &runtimeapi.ImageSpec{Image: c.Image},
		Command:    podfiles.Expand(c.Command, env),
		Args:       podfiles.Expand(c.Args, env),
		WorkingDir: c.WorkingDir,
		Labels:     podLabels(pod),
		LogPath:    attemptLog(c.Name, attempt),
		Stdin:      c.Stdin,
		StdinOnce:  c.StdinOnce,
		Tty:        c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       resources(c),
			SecurityContext: securityContext(pod, c),
		},
	}
	cfg.Labels[labelContainerName] = c.Name
	if init {
		cfg.Labels[labelInit] = "true"
	}
	for _, e := range env {
		cfg.Envs = append(cfg.Envs, &runtimeapi.KeyValue{Key: e.Name, Value: []byte(e.Value)})
	}
	for _, m := range mounts {
		cfg.Mounts = append(cfg.Mounts, &runtimeapi.Mount{HostPath: m.HostPath, ContainerPath: m.ContainerPath, Readonly: m.ReadOnly})
	}
	if !pod.Spec.HostNetwork {
		etc := filepath.Join(r.podDir(pod.UID), "etc")
		cfg.Mounts = append(cfg.Mounts,
			&runtimeapi.Mount{HostPath: filepath.Join(etc, "hostname"), ContainerPath: "/etc/hostname"},
			&runtimeapi.Mount{HostPath: filepath.Join(etc, "hosts"), ContainerPath: "/etc/hosts"})
	}
	if path := c.TerminationMessagePath; path != "" {
		f := r.terminationLog(pod, c.Name, attempt)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(f, nil, 0o666); err != nil {
			return nil, err
		}
		cfg.Mounts = append(cfg.Mounts, &runtimeapi.Mount{HostPath: f, ContainerPath: path})
	}
	return cfg, nil
}

func (r *Runtime) terminationLog(pod *corev1.Pod, name string, attempt uint32) string {
	return filepath.Join(r.podDir(pod.UID), "containers", name, strconv.FormatUint(uint64(attempt), 10)+"-termination-log")
}

// checkNonRoot refuses, as a kubelet does, a container that must not run
// as root but would (the images pgkube builds have no USER).
func checkNonRoot(pod *corev1.Pod, c *corev1.Container) error {
	nonRoot, uid := false, (*int64)(nil)
	if s := pod.Spec.SecurityContext; s != nil {
		if s.RunAsNonRoot != nil {
			nonRoot = *s.RunAsNonRoot
		}
		uid = s.RunAsUser
	}
	if s := c.SecurityContext; s != nil {
		if s.RunAsNonRoot != nil {
			nonRoot = *s.RunAsNonRoot
		}
		if s.RunAsUser != nil {
			uid = s.RunAsUser
		}
	}
	switch {
	case !nonRoot:
		return nil
	case uid == nil:
		return &podfiles.Error{Reason: "CreateContainerConfigError", Message: "container has runAsNonRoot and image will run as root (pod: \"" + podRef(pod) + "\", container: " + c.Name + ")"}
	case *uid == 0:
		return &podfiles.Error{Reason: "CreateContainerConfigError", Message: "container's runAsUser breaks non-root policy (pod: \"" + podRef(pod) + "\", container: " + c.Name + ")"}
	}
	return nil
}

// resources are the container's cgroup limits: CPU shares from its
// request, a CFS quota from its limit, a memory limit (the kernel's OOM
// killer enforces it, reported as OOMKilled).
func resources(c *corev1.Container) *runtimeapi.LinuxContainerResources {
	res := &runtimeapi.LinuxContainerResources{CpuShares: 2}
	req, lim := c.Resources.Requests.Cpu(), c.Resources.Limits.Cpu()
	milli := req.MilliValue()
	if req.IsZero() {
		milli = lim.MilliValue()
	}
	if milli > 0 {
		res.CpuShares = max(2, milli*1024/1000)
	}
	if m := lim.MilliValue(); m > 0 {
		res.CpuPeriod = 100000
		res.CpuQuota = max(1000, m*100000/1000)
	}
	if m := c.Resources.Limits.Memory().Value(); m > 0 {
		res.MemoryLimitInBytes = m
	}
	return res
}

func securityContext(pod *corev1.Pod, c *corev1.Container) *runtimeapi.LinuxContainerSecurityContext {
	sc := &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: namespaceOptions(pod)}
	if ps := pod.Spec.SecurityContext; ps != nil {
		if ps.RunAsUser != nil {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: *ps.RunAsUser}
		}
		if ps.RunAsGroup != nil {
			sc.RunAsGroup = &runtimeapi.Int64Value{Value: *ps.RunAsGroup}
		}
		sc.SupplementalGroups = append(sc.SupplementalGroups, ps.SupplementalGroups...)
		if ps.FSGroup != nil {
			sc.SupplementalGroups = append(sc.SupplementalGroups, *ps.FSGroup)
		}
	}
	cs := c.SecurityContext
	if cs == nil {
		return sc
	}
	if cs.RunAsUser != nil {
		sc.RunAsUser = &runtimeapi.Int64Value{Value: *cs.RunAsUser}
	}
	if cs.RunAsGroup != nil {
		sc.RunAsGroup = &runtimeapi.Int64Value{Value: *cs.RunAsGroup}
	}
	if cs.Privileged != nil {
		sc.Privileged = *cs.Privileged
	}
	if cs.ReadOnlyRootFilesystem != nil {
		sc.ReadonlyRootfs = *cs.ReadOnlyRootFilesystem
	}
	if cs.AllowPrivilegeEscalation != nil {
		sc.NoNewPrivs = !*cs.AllowPrivilegeEscalation
	}
	if caps := cs.Capabilities; caps != nil {
		sc.Capabilities = &runtimeapi.Capability{}
		for _, a := range caps.Add {
			sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, string(a))
		}
		for _, d := range caps.Drop {
			sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, string(d))
		}
	}
	return sc
}

// runHook runs a postStart or preStop handler: exec in the container, an
// HTTP GET, or a sleep.
func (r *Runtime) runHook(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id string, h *corev1.LifecycleHandler, node agent.Node) (string, error) {
	switch {
	case h.Exec != nil:
		resp, err := r.rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: h.Exec.Command, Timeout: 30})
		if err != nil {
			return grpcMessage(err), err
		}
		if resp.ExitCode != 0 {
			msg := fmt.Sprintf("command '%s' exited with %d: %s", strings.Join(h.Exec.Command, " "), resp.ExitCode, string(resp.Stdout)+string(resp.Stderr))
			return msg, fmt.Errorf("%s", msg)
		}
		return "", nil
	case h.HTTPGet != nil:
		host := h.HTTPGet.Host
		if host == "" {
			host = node.InternalIP
		}
		if host == "" {
			host = "127.0.0.1"
		}
		port := portOf(c, h.HTTPGet.Port)
		scheme := strings.ToLower(string(h.HTTPGet.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		u := scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + h.HTTPGet.Path
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err.Error(), err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error(), err
		}
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			msg := fmt.Sprintf("HTTP lifecycle hook (%s) for Container %q in Pod %q failed - error: %s", h.HTTPGet.Path, c.Name, pod.Name, resp.Status)
			return msg, fmt.Errorf("%s", msg)
		}
		return "", nil
	case h.Sleep != nil:
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(h.Sleep.Seconds) * time.Second):
		}
		return "", nil
	}
	return "", nil
}

func portOf(c *corev1.Container, p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	n, _ := strconv.Atoi(p.StrVal)
	return n
}

// pullAuth is the credential of the pod's image pull secrets for the
// image's registry, if any.
func (r *Runtime) pullAuth(ctx context.Context, pod *corev1.Pod, image string) *runtimeapi.AuthConfig {
	registry := "docker.io"
	if first, _, ok := strings.Cut(image, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		registry = first
	}
	for _, ref := range pod.Spec.ImagePullSecrets {
		s, err := r.clients(pod).CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			continue
		}
		var cfg struct {
			Auths map[string]struct {
				Username, Password, Auth string
			} `json:"auths"`
		}
		data := s.Data[corev1.DockerConfigJsonKey]
		if len(data) == 0 {
			data = []byte(`{"auths":` + string(s.Data[corev1.DockerConfigKey]) + `}`)
		}
		if json.Unmarshal(data, &cfg) != nil {
			continue
		}
		for host, a := range cfg.Auths {
			h := strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://")
			h, _, _ = strings.Cut(h, "/")
			if h == registry || (registry == "docker.io" && h == "index.docker.io") {
				if a.Username == "" && a.Auth != "" {
					if dec, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
						a.Username, a.Password, _ = strings.Cut(string(dec), ":")
					}
				}
				return &runtimeapi.AuthConfig{Username: a.Username, Password: a.Password, ServerAddress: h}
			}
		}
	}
	return nil
}

// grpcMessage is the runtime's own words from a gRPC error.
func grpcMessage(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}
