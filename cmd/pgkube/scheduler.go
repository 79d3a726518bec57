package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pgkube/pgkube/scheduler"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// runScheduler places pending pods on nodes, as a client of the API
// server: `pgkube scheduler --kubeconfig K`.
func runScheduler(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("scheduler", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the cluster, as its admin (default: $KUBECONFIG, else DATA_DIR/kubeconfig)")
	dataDir := fs.String("data-dir", defaultDataDir(), "pgkube up's data dir, for its kubeconfig")
	var o scheduler.Options
	fs.BoolVar(&o.LeaderElect, "leader-elect", true, "schedule only while holding the Lease kube-system/"+scheduler.LeaseName+" in the root cluster, so several schedulers can run and one acts")
	fs.DurationVar(&o.LeaseDuration, "leader-elect-lease-duration", 10*time.Second, "how long a leader's Lease holds off the other candidates")
	fs.DurationVar(&o.RenewDeadline, "leader-elect-renew-deadline", 7*time.Second, "how long the leader tries to renew before it gives up leading")
	fs.DurationVar(&o.RetryPeriod, "leader-elect-retry-period", 2*time.Second, "how often candidates try to acquire or renew the Lease")
	fs.StringVar(&o.Identity, "leader-elect-identity", "", "this scheduler's name in the Lease (default: hostname_random)")
	fs.StringVar(&o.SchedulerName, "scheduler-name", scheduler.DefaultSchedulerName, "spec.schedulerName of the pods to place")
	fs.IntVar(&o.BindWorkers, "bind-workers", 16, "bindings written at once")
	fs.Parse(args) //nolint:errcheck // ExitOnError
	cfg, err := clientConfig(*kubeconfig, *dataDir)
	if err != nil {
		return err
	}
	o.Config = cfg
	o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "scheduler")
	return scheduler.Run(ctx, o)
}

// clientConfig reads the kubeconfig a client subcommand is given: the
// flag, else $KUBECONFIG, else the data dir's.
func clientConfig(kubeconfig, dataDir string) (*rest.Config, error) {
	path := kubeconfig
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path == "" {
		path = filepath.Join(dataDir, "kubeconfig")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return cfg, nil
}

// childProcess is a client process `pgkube up` runs (the same binary with
// a subcommand), started again when it exits on its own, stopped with
// SIGINT when up stops.
type childProcess struct {
	name string // for logs
	args []string
	log  *slog.Logger
	done chan struct{}
}

// startChild runs `pgkube ARGS...` until ctx ends; wait returns once it has
// stopped.
func startChild(ctx context.Context, name string, args []string, log *slog.Logger) (wait func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := &childProcess{name: name, args: args, log: log, done: make(chan struct{})}
	go c.loop(ctx, exe)
	return func() { <-c.done }, nil
}

func (c *childProcess) loop(ctx context.Context, exe string) {
	defer close(c.done)
	backoff := time.Second
	for {
		started := time.Now()
		cmd := exec.Command(exe, c.args...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		setChildAttrs(cmd)
		if err := cmd.Start(); err != nil {
			c.log.Error(c.name+" did not start", "err", err)
		} else {
			c.log.Info(c.name+" started", "pid", cmd.Process.Pid)
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				if ctx.Err() != nil {
					return
				}
				c.log.Error(c.name+" exited; starting it again", "err", err)
			case <-ctx.Done():
				cmd.Process.Signal(os.Interrupt) //nolint:errcheck
				select {
				case <-exited:
				case <-time.After(10 * time.Second):
					cmd.Process.Kill() //nolint:errcheck
					<-exited
				}
				return
			}
		}
		if time.Since(started) > time.Minute {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// startNodeComponents starts what `pgkube up` runs besides the controller
// manager: the scheduler, and a node agent with the given runtime for one
// node named after the host ("none" for no agent); wait returns once they
// have stopped.
func startNodeComponents(ctx context.Context, kubeconfig string, withScheduler bool, agentRuntime string, agentArgs []string, log *slog.Logger) (wait func(), err error) {
	var waits []func()
	wait = func() {
		for _, w := range waits {
			w()
		}
	}
	if withScheduler {
		w, err := startChild(ctx, "scheduler", []string{"scheduler", "--kubeconfig", kubeconfig}, log)
		if err != nil {
			return wait, err
		}
		waits = append(waits, w)
	}
	switch agentRuntime {
	case "none", "":
	case "simulated", "cri":
		args := append([]string{"agent", "--kubeconfig", kubeconfig, "--runtime", agentRuntime, "--node-name", hostNodeName()}, agentArgs...)
		w, err := startChild(ctx, "agent", args, log)
		if err != nil {
			return wait, err
		}
		waits = append(waits, w)
	default:
		return wait, fmt.Errorf("--agent %q: want simulated, cri or none", agentRuntime)
	}
	return wait, nil
}

// hostNodeName is the host's name made a valid node name.
func hostNodeName() string {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, r := range strings.ToLower(host) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			b.WriteRune(r)
		default:
			b.WriteRune('-')
		}
	}
	name := strings.Trim(b.String(), "-.")
	if name == "" {
		name = "node"
	}
	return name
}
