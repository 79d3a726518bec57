package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pgkube/pgkube/controllers/manager"
	"k8s.io/client-go/tools/clientcmd"
)

// runControllerManager runs the controllers against an API server, as its
// client: `pgkube controller-manager --kubeconfig K`.
func runControllerManager(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("controller-manager", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster to manage, as its admin (default: $KUBECONFIG, else DATA_DIR/kubeconfig)")
	dataDir := fs.String("data-dir", defaultDataDir(), "pgkube up's data dir, for its kubeconfig")
	var o manager.Options
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "run the controllers only while holding the Lease kube-system/"+manager.LeaseName+" in the root cluster, so several managers can run and one acts")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", 10*time.Second, "how long a leader's Lease holds off the other candidates")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", 7*time.Second, "how long the leader tries to renew before it gives up leading")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "how often candidates try to acquire or renew the Lease")
	fs.StringVar(&o.Identity, "leader-elect-identity", "", "this manager's name in the Lease (default: hostname_random)")
	controllers := fs.String("controllers", "*", "controllers to run: * for all enabled by default, NAME to add one, -NAME to leave one out; known: "+strings.Join(knownControllers(), ", "))
	fs.IntVar(&o.Workers, "concurrent-syncs", 5, "objects each controller syncs at once")
	rootCA := fs.String("root-ca-file", "", "CA published in every namespace as kube-root-ca.crt (default: the kubeconfig's certificate authority)")
	fs.DurationVar(&o.Framework.NodeMonitorGracePeriod, "node-monitor-grace-period", 40*time.Second, "a node whose heartbeat is older is marked not ready")
	fs.Int64Var(&o.Framework.DefaultTolerationSeconds, "default-not-ready-toleration-seconds", 300, "how long pods tolerate their node being unreachable or not ready")
	fs.IntVar(&o.Framework.TerminatedPodGCThreshold, "terminated-pod-gc-threshold", 12500, "terminated pods kept before the oldest are deleted")
	fs.StringVar(&o.Framework.HostPathDir, "hostpath-dir", os.Getenv("PGKUBE_HOSTPATH_DIR"), "directory under which volumes for claims of pgkube.io/hostpath storage classes are provisioned (empty: none)")
	fs.Parse(args) //nolint:errcheck // ExitOnError
	path := *kubeconfig
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path == "" {
		path = filepath.Join(*dataDir, "kubeconfig")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	o.Config = cfg
	o.Controllers = strings.Split(*controllers, ",")
	if *rootCA != "" {
		if o.Framework.RootCAData, err = os.ReadFile(*rootCA); err != nil {
			return fmt.Errorf("root CA: %w", err)
		}
	}
	o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "controller-manager")
	return manager.Run(ctx, o)
}

func knownControllers() []string {
	var names []string
	for n := range manager.Controllers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// startControllerManager runs `pgkube controller-manager` as a child of
// `pgkube up` until ctx ends; wait returns once it has stopped.
// flags are more of its flags (up's --controller-manager-flags).
func startControllerManager(ctx context.Context, kubeconfig string, flags []string, log *slog.Logger) (wait func(), err error) {
	return startChild(ctx, "controller manager", append([]string{"controller-manager", "--kubeconfig", kubeconfig}, flags...), log)
}
