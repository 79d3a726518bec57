package framework

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Election is a Lease that several copies of a component compete for, so
// that one acts and another takes over when it goes.
type Election struct {
	Namespace, Name string
	Identity        string
	LeaseDuration   time.Duration
	RenewDeadline   time.Duration
	RetryPeriod     time.Duration
	Log             *slog.Logger
}

// RunElected runs run while holding the Lease in the kubeconfig's cluster,
// until ctx ends. Losing the Lease is an error: the process should exit and
// start again as a candidate, as kube-controller-manager does.
func RunElected(ctx context.Context, clients *Clients, e Election, run func(context.Context) error) error {
	cs := clients.For(clients.DefaultCluster())
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, e.Namespace, e.Name, cs.CoreV1(), cs.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: e.Identity})
	if err != nil {
		return err
	}
	var (
		mu      sync.Mutex
		runErr  error
		leading bool
	)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   e.LeaseDuration,
		RenewDeadline:   e.RenewDeadline,
		RetryPeriod:     e.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            e.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				mu.Lock()
				leading = true
				mu.Unlock()
				e.Log.Info("became leader", "identity", e.Identity)
				err := run(ctx)
				mu.Lock()
				runErr = err
				mu.Unlock()
			},
			OnStoppedLeading: func() { e.Log.Info("stopped leading", "identity", e.Identity) },
			OnNewLeader: func(id string) {
				if id != e.Identity {
					e.Log.Info("new leader elected", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return err
	}
	le.Run(ctx) // returns when ctx ends or the Lease is lost
	mu.Lock()
	defer mu.Unlock()
	if runErr != nil {
		return runErr
	}
	if ctx.Err() == nil && leading {
		return errors.New("leader election lost")
	}
	return nil
}

// WithDefaults fills what e leaves zero: a 10 s lease renewed within 7 s,
// retried every 2 s (so a successor takes over within 15 s), and a
// hostname_random identity.
func (e Election) WithDefaults() Election {
	if e.LeaseDuration == 0 {
		e.LeaseDuration = 10 * time.Second
	}
	if e.RenewDeadline == 0 {
		e.RenewDeadline = 7 * time.Second
	}
	if e.RetryPeriod == 0 {
		e.RetryPeriod = 2 * time.Second
	}
	if e.Identity == "" {
		host, _ := os.Hostname()
		e.Identity = host + "_" + rand.String(8)
	}
	return e
}
