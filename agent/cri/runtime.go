// Package cri is the node agent's real runtime: a CRI client (gRPC over a
// unix socket) of containerd, as a kubelet is. It runs each pod as a CRI
// sandbox with its containers, prepares their volumes and environment
// (agent/podfiles), runs their probes (agent/probe), restarts them per
// restartPolicy with back-off, and stops them with the pod's grace
// period.
//
// Pods use the host's network for now (pod IP = node IP); a pod that did
// not ask for the host network still gets its own /etc/hostname and
// /etc/hosts naming it.
package cri

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/pgkube/pgkube/agent"
	"github.com/pgkube/pgkube/agent/containerd"
	"github.com/pgkube/pgkube/agent/probe"
)

// Labels the runtime puts on sandboxes and containers to find them again
// after a restart (the names a kubelet uses, so crictl users feel at
// home).
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
	labelInit          = "pgkube.io/init-container"
	labelCluster       = "pgkube.io/cluster"
)

// Options configure the runtime.
type Options struct {
	// Endpoint is the CRI socket, unix:///path.
	Endpoint string
	// RootDir holds the pods' volumes, logs and files.
	RootDir string
	// PollInterval: how often container states are read to notice exits
	// (containerd 1.6 has no CRI event stream). Default 1s.
	PollInterval time.Duration
	// RestartBackoff is the first restart back-off (doubling to 5m).
	// Default 10s.
	RestartBackoff time.Duration
	Log            *slog.Logger
}

// Runtime is the CRI runtime.
type Runtime struct {
	opts    Options
	log     *slog.Logger
	conn    *grpc.ClientConn
	rt      runtimeapi.RuntimeServiceClient
	img     runtimeapi.ImageServiceClient
	probes  *probe.Manager
	changes chan types.UID
	clients func(pod *corev1.Pod) kubernetes.Interface

	mu   sync.Mutex
	pods map[types.UID]*podState
	seen map[string]runtimeapi.ContainerState // container id → last state polled
}

var _ agent.Runtime = (*Runtime)(nil)

// New dials the runtime (lazily: a runtime not up yet is reported by
// Ready, not here).
func New(o Options) (*Runtime, error) {
	if o.PollInterval == 0 {
		o.PollInterval = time.Second
	}
	if o.RestartBackoff == 0 {
		o.RestartBackoff = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if !strings.HasPrefix(o.Endpoint, "unix://") {
		return nil, fmt.Errorf("container runtime endpoint %q: want unix:///path/to/socket", o.Endpoint)
	}
	if err := os.MkdirAll(o.RootDir, 0o750); err != nil {
		return nil, fmt.Errorf("runtime root: %w", err)
	}
	conn, err := grpc.NewClient("unix://"+strings.TrimPrefix(o.Endpoint, "unix://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", o.Endpoint, err)
	}
	r := &Runtime{opts: o, log: o.Log, conn: conn,
		rt: runtimeapi.NewRuntimeServiceClient(conn), img: runtimeapi.NewImageServiceClient(conn),
		changes: make(chan types.UID, 1024), pods: map[types.UID]*podState{}, seen: map[string]runtimeapi.ContainerState{}}
	r.probes = probe.NewManager(probe.Config{OnChange: r.notify, Exec: r})
	return r, nil
}

// UseClients gives the runtime the API clients it reads ConfigMaps,
// Secrets and tokens with, per pod (the pod's logical cluster).
func (r *Runtime) UseClients(f func(pod *corev1.Pod) kubernetes.Interface) { r.clients = f }

// Name implements agent.Runtime.
func (r *Runtime) Name() string { return "containerd" }

// Version implements agent.Runtime.
func (r *Runtime) Version(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := r.rt.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return "", r.unreachable(err)
	}
	return v.RuntimeVersion, nil
}

func (r *Runtime) unreachable(err error) error {
	if _, serr := os.Stat(strings.TrimPrefix(r.opts.Endpoint, "unix://")); serr != nil {
		if ierr := containerd.Available(); ierr != nil {
			return ierr
		}
		if os.Geteuid() != 0 {
			return fmt.Errorf("no container runtime at %s: pgkube up starts containerd only when run as root (or give --container-runtime-endpoint)", r.opts.Endpoint)
		}
		return fmt.Errorf("no container runtime at %s: start containerd there, or give the agent --container-runtime-endpoint", r.opts.Endpoint)
	}
	return fmt.Errorf("container runtime at %s is not answering: %s", r.opts.Endpoint, grpcMessage(err))
}

// Ready implements agent.Runtime: the runtime answers and says it is
// ready. (Its network condition is not asked for: pods use the host's
// network.)
func (r *Runtime) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := r.rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return r.unreachable(err)
	}
	for _, c := range st.GetStatus().GetConditions() {
		if c.Type == runtimeapi.RuntimeReady && !c.Status {
			return fmt.Errorf("container runtime not ready: %s %s", c.Reason, c.Message)
		}
	}
	return nil
}

// Changes implements agent.Runtime.
func (r *Runtime) Changes() <-chan types.UID { return r.changes }

func (r *Runtime) notify(uid types.UID) {
	select {
	case r.changes <- uid:
	default: // the agent is behind; the next poll brings it again
	}
}

// Run polls container states until ctx ends, telling the agent of pods
// whose containers changed on their own (exited, mostly).
func (r *Runtime) Run(ctx context.Context) {
	t := time.NewTicker(r.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.Close()
			return
		case <-t.C:
		}
		r.poll(ctx)
		r.wakeDue()
	}
}

func (r *Runtime) poll(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := r.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return
	}
	now := map[string]runtimeapi.ContainerState{}
	changed := map[types.UID]bool{}
	r.mu.Lock()
	for _, c := range resp.Containers {
		now[c.Id] = c.State
		// A container not seen before may have started and exited
		// between two polls.
		if old, ok := r.seen[c.Id]; !ok || old != c.State {
			changed[types.UID(c.Labels[labelPodUID])] = true
		}
	}
	r.seen = now
	r.mu.Unlock()
	for uid := range changed {
		r.notify(uid)
	}
}

// wakeDue tells the agent of pods whose back-off (or another wait) ended.
func (r *Runtime) wakeDue() {
	now := time.Now()
	var due []types.UID
	r.mu.Lock()
	for uid, p := range r.pods {
		if !p.wakeAt.IsZero() && !now.Before(p.wakeAt) {
			p.wakeAt = time.Time{}
			due = append(due, uid)
		}
	}
	r.mu.Unlock()
	for _, uid := range due {
		r.notify(uid)
	}
}

// Close drops the connection to the runtime (Run does it when it ends).
func (r *Runtime) Close() error {
	r.probes.Close()
	return r.conn.Close()
}

// podDir is where a pod's volumes and files live.
func (r *Runtime) podDir(uid types.UID) string {
	return filepath.Join(r.opts.RootDir, "pods", string(uid))
}

// logDir is the pod's CRI log directory, named as a kubelet names it.
func (r *Runtime) logDir(pod *corev1.Pod) string {
	return filepath.Join(r.opts.RootDir, "logs", pod.Namespace+"_"+pod.Name+"_"+string(pod.UID))
}

var errNoClients = errors.New("the runtime has no API clients (UseClients)")
