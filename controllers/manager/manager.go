// Package manager runs pgkube's controllers: one process serving every
// logical cluster, with leader election so that several can run and one
// acts.
package manager

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	"github.com/pgkube/pgkube/controllers/testclock"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
)

// Lease names: the manager's leader-election Lease in the root cluster.
const (
	LeaseNamespace = "kube-system"
	LeaseName      = "pgkube-controller-manager"
)

// Options configure Run.
type Options struct {
	Config *rest.Config // the kubeconfig's

	LeaderElect   bool
	LeaseDuration time.Duration // default 10s
	RenewDeadline time.Duration // default 7s
	RetryPeriod   time.Duration // default 2s
	Identity      string        // default hostname_random

	// Controllers to run: "*" is every controller enabled by default,
	// "name" adds one, "-name" removes one (as kube-controller-manager).
	Controllers []string
	Workers     int // per controller, default 5

	Framework framework.Options
	Log       *slog.Logger
}

func (o *Options) defaults() {
	e := framework.Election{LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod,
		Identity: o.Identity}.WithDefaults()
	o.LeaseDuration, o.RenewDeadline, o.RetryPeriod, o.Identity = e.LeaseDuration, e.RenewDeadline, e.RetryPeriod, e.Identity
	if len(o.Controllers) == 0 {
		o.Controllers = []string{"*"}
	}
	if o.Workers == 0 {
		o.Workers = 5
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
}

// Enabled is the controllers names selects, sorted.
func Enabled(names []string) ([]string, error) {
	on := map[string]bool{}
	for _, n := range names {
		n = strings.TrimSpace(n)
		switch {
		case n == "*":
			for name := range Controllers {
				if !slices.Contains(DisabledByDefault, name) {
					on[name] = true
				}
			}
		case strings.HasPrefix(n, "-"):
			if _, ok := Controllers[n[1:]]; !ok {
				return nil, fmt.Errorf("unknown controller %q", n[1:])
			}
			delete(on, n[1:])
		case n != "":
			if _, ok := Controllers[n]; !ok {
				return nil, fmt.Errorf("unknown controller %q", n)
			}
			on[n] = true
		}
	}
	// "-x" anywhere wins over "*" anywhere.
	for _, n := range names {
		if strings.HasPrefix(strings.TrimSpace(n), "-") {
			delete(on, strings.TrimSpace(n)[1:])
		}
	}
	out := make([]string, 0, len(on))
	for n := range on {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// Run runs the controllers until ctx ends: at once, or while this process
// holds the leader Lease. Losing the Lease is an error (the process should
// exit, as kube-controller-manager does, and start again as a candidate).
func Run(ctx context.Context, o Options) error {
	o.defaults()
	names, err := Enabled(o.Controllers)
	if err != nil {
		return err
	}
	cfg := rest.CopyConfig(o.Config)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 200, 400
	}
	cfg.UserAgent = framework.Component
	clients, err := framework.NewClients(ctx, cfg)
	if err != nil {
		return err
	}
	log := o.Log
	log.Info("controller manager starting", "identity", o.Identity, "controllers", strings.Join(names, ","),
		"wildcard", clients.Wildcard(), "cluster", clients.DefaultCluster())
	if !o.LeaderElect {
		return runControllers(ctx, o, clients, names)
	}
	return framework.RunElected(ctx, clients, framework.Election{Namespace: LeaseNamespace, Name: LeaseName, Identity: o.Identity,
		LeaseDuration: o.LeaseDuration, RenewDeadline: o.RenewDeadline, RetryPeriod: o.RetryPeriod, Log: log},
		func(ctx context.Context) error { return runControllers(ctx, o, clients, names) })
}

// runControllers builds the controllers, starts the informers they asked
// for and runs them until ctx ends.
func runControllers(ctx context.Context, o Options, clients *framework.Clients, names []string) error {
	rec := framework.NewEventRecorder(ctx, clients)
	defer rec.Shutdown()
	fopts := o.Framework
	if len(fopts.RootCAData) == 0 {
		fopts.RootCAData = rootCA(o.Config)
	}
	fctx := &framework.Context{
		Factory:  framework.NewFactory(clients, 0),
		Clients:  clients,
		Recorder: rec,
		Clock:    clock.RealClock{},
		Workers:  o.Workers,
		Options:  fopts,
	}
	if tc := testclock.FromEnv(ctx); tc != nil {
		fctx.TestClock = tc // a nil *Clock must not become a non-nil interface
	}
	var runs []framework.Runnable
	for _, n := range names {
		r, err := Controllers[n](fctx)
		if err != nil {
			return fmt.Errorf("controller %s: %w", n, err)
		}
		if r == nil {
			continue
		}
		runs = append(runs, r)
		o.Log.Info("started controller", "controller", n)
	}
	if clients.Wildcard() && clients.DefaultCluster() == framework.RootCluster {
		go followClusters(ctx, fctx, o.Log)
	}
	fctx.Factory.Start(ctx)
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.Run(ctx)
		}()
	}
	// Controllers may ask for informers while running (Start again picks
	// them up).
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				fctx.Factory.Start(ctx)
			}
		}
	}()
	wg.Wait()
	return nil
}

// logicalClusters are the root cluster's tenants.
var logicalClusters = schema.GroupVersionResource{Group: "tenancy.pgkube.io", Version: "v1alpha1", Resource: "logicalclusters"}

// followClusters forgets what the informers hold of a tenant once its
// LogicalCluster is gone: the wildcard view sends no deletions for the
// objects of a removed cluster, and writes there fail from then on.
func followClusters(ctx context.Context, fctx *framework.Context, log *slog.Logger) {
	r := fctx.Clients.Dynamic(framework.RootCluster).Resource(logicalClusters)
	inf := framework.NewInformer[*unstructured.Unstructured](logicalClusters.GroupResource(), &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return r.List(ctx, o)
		},
		WatchFuncWithContext: r.Watch,
	})
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(o any) {
		k, ok := framework.KeyFromEvent(o)
		if !ok || k.Name == framework.RootCluster {
			return
		}
		log.Info("logical cluster removed; forgetting its objects", "cluster", k.Name)
		fctx.Factory.ForgetCluster(k.Name)
		fctx.Clients.Forget(k.Name)
	}})
	inf.Run(ctx)
}

// rootCA is the CA that verifies the API server's certificate, which pods
// find in kube-root-ca.crt.
func rootCA(cfg *rest.Config) []byte {
	if len(cfg.CAData) > 0 {
		return cfg.CAData
	}
	if cfg.CAFile != "" {
		if b, err := os.ReadFile(cfg.CAFile); err == nil {
			return b
		}
	}
	return nil
}
