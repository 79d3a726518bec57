package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgkube/pgkube/agent"
	"github.com/pgkube/pgkube/agent/containerd"
	"github.com/pgkube/pgkube/agent/cri"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// runAgent is the node agent: `pgkube agent --kubeconfig K --node-name N
// --runtime simulated|cri`.
func runAgent(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("agent", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster, as its admin (default: $KUBECONFIG, else DATA_DIR/kubeconfig)")
	dataDir := fs.String("data-dir", defaultDataDir(), "pgkube up's data dir, for its kubeconfig")
	host, _ := os.Hostname()
	var o agent.Options
	fs.StringVar(&o.NodeName, "node-name", strings.ToLower(host), "the node's name (with --nodes N: NAME-0 ... NAME-(N-1))")
	runtimeName := fs.String("runtime", "simulated", "container runtime: simulated (runs nothing; see the pgkube.io/simulate-* pod annotations) or cri")
	fs.IntVar(&o.Nodes, "nodes", 1, "simulated nodes this agent stands for")
	fs.StringVar(&o.NodeIP, "node-ip", "", "the node's InternalIP (default: the host's first address; simulated nodes get 172.16.x.y)")
	capacity := fs.String("capacity", "", "what each node offers, merged over cpu=8,memory=32Gi,pods=110,ephemeral-storage=100Gi (e.g. cpu=4,example.com/gpu=2)")
	reserved := fs.String("system-reserved", "", "taken off the capacity to give allocatable (e.g. cpu=100m,memory=256Mi)")
	labels := fs.String("node-labels", "", "more node labels, k=v,...")
	taints := fs.String("register-with-taints", "", "node taints, key=value:Effect,...")
	fs.IntVar(&o.Zones, "zones", 0, "with several nodes: spread them over this many zones (topology.kubernetes.io/zone=zone-I)")
	fs.DurationVar(&o.LeaseDuration, "node-lease-duration", 40*time.Second, "the nodes' Lease duration")
	fs.DurationVar(&o.RenewInterval, "node-lease-renew-interval", 10*time.Second, "how often the Leases are renewed")
	fs.DurationVar(&o.StatusInterval, "node-status-report-frequency", time.Minute, "how often node status is written when nothing changed")
	fs.IntVar(&o.Workers, "workers", 16, "pods synced at once")
	fs.BoolVar(&o.Events, "events", true, "record container Events (Pulled, Created, Started, Killing, BackOff)")
	fs.StringVar(&o.CertDir, "cert-dir", "", "the API server's certificate directory (its CA signs the agent's serving certificate and the API server's client certificate); unset, logs, exec, attach and port forwarding are not served")
	fs.IntVar(&o.Port, "port", agent.DefaultPort, "port of the agent's HTTPS server for the API server, on the node IP (0: any free port)")
	evictionHard := fs.String("eviction-hard", agent.DefaultEvictionHard, "evict pods when a node's memory.available (capacity minus its pods' working sets, and at most the host's MemAvailable for a real node) falls below this: QUANTITY or PERCENT% of capacity (\"\": never); simulated pods use their memory requests, or pgkube.io/simulate-memory-usage")
	fs.DurationVar(&o.EvictionInterval, "eviction-monitoring-interval", 10*time.Second, "how often the nodes' memory is checked against --eviction-hard")
	fs.DurationVar(&o.EvictionPressureTransitionPeriod, "eviction-pressure-transition-period", 5*time.Minute, "how long a node keeps MemoryPressure (and its taint) after it was last under --eviction-hard")
	var sim agent.SimulatedOptions
	fs.DurationVar(&sim.StartDelay, "start-delay", 0, "simulated: containers start this long after the pod reaches the node")
	fs.DurationVar(&sim.ReadyDelay, "ready-delay", 0, "simulated: running containers are ready after this long")
	fs.DurationVar(&sim.RestartBackoff, "restart-backoff", 10*time.Second, "simulated: first back-off of a crashing container (doubling to 5m)")
	endpoint := fs.String("container-runtime-endpoint", "", "cri: the CRI socket, unix:///path (default: the private containerd of pgkube up, DATA_DIR/containerd/containerd.sock)")
	rootDir := fs.String("root-dir", "", "cri: where pods' volumes, files and logs live (default DATA_DIR/agent)")
	fs.Parse(args) //nolint:errcheck // ExitOnError
	cfg, err := clientConfig(*kubeconfig, *dataDir)
	if err != nil {
		return err
	}
	o.Config = cfg
	o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "agent")
	if *runtimeName == "cri" {
		if *endpoint == "" {
			*endpoint = containerd.Endpoint(filepath.Join(*dataDir, "containerd"))
		}
		if *rootDir == "" {
			*rootDir = filepath.Join(*dataDir, "agent")
		}
		rt, err := cri.New(cri.Options{Endpoint: *endpoint, RootDir: *rootDir, Log: o.Log})
		if err != nil {
			return err
		}
		o.Runtime = rt
		// Mounted ConfigMaps and Secrets follow their changes within
		// this, as a kubelet's sync period.
		o.Resync = 10 * time.Second
	} else if o.Runtime, err = agent.NewRuntime(*runtimeName, sim); err != nil {
		return err
	}
	o.Capacity = agent.DefaultCapacity()
	if err := parseResources(*capacity, o.Capacity); err != nil {
		return fmt.Errorf("--capacity: %w", err)
	}
	if *reserved != "" {
		o.Reserved = corev1.ResourceList{}
		if err := parseResources(*reserved, o.Reserved); err != nil {
			return fmt.Errorf("--system-reserved: %w", err)
		}
	}
	if o.Labels, err = parsePairs(*labels); err != nil {
		return fmt.Errorf("--node-labels: %w", err)
	}
	if o.Taints, err = parseTaints(*taints); err != nil {
		return fmt.Errorf("--register-with-taints: %w", err)
	}
	if o.EvictionHard, err = agent.ParseEvictionHard(*evictionHard); err != nil {
		return fmt.Errorf("--eviction-hard: %w", err)
	}
	return agent.Run(ctx, o)
}

func parsePairs(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

func parseResources(s string, into corev1.ResourceList) error {
	pairs, err := parsePairs(s)
	if err != nil {
		return err
	}
	for k, v := range pairs {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		into[corev1.ResourceName(k)] = q
	}
	return nil
}

// parseTaints reads key[=value]:Effect,...
func parseTaints(s string) ([]corev1.Taint, error) {
	var out []corev1.Taint
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		kv, effect, ok := strings.Cut(t, ":")
		if !ok {
			return nil, fmt.Errorf("%q has no :Effect", t)
		}
		switch corev1.TaintEffect(effect) {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			return nil, fmt.Errorf("%q: effect must be NoSchedule, PreferNoSchedule or NoExecute", t)
		}
		k, v, _ := strings.Cut(kv, "=")
		out = append(out, corev1.Taint{Key: k, Value: v, Effect: corev1.TaintEffect(effect)})
	}
	return out, nil
}
