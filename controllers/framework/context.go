package framework

import (
	"context"
	"time"

	"k8s.io/utils/clock"
)

// Context is what a controller is built from.
type Context struct {
	Factory  *Factory
	Clients  *Clients
	Recorder Recorder
	Clock    clock.WithTicker
	// TestClock, set only in tests (see controllers/testclock), is the
	// clock of the controllers that opt into it.
	TestClock clock.WithTicker
	// Workers is how many keys a controller syncs at once (per queue).
	Workers int
	Options Options
}

// Options tune controllers; zero values mean upstream's defaults.
type Options struct {
	// NodeMonitorGracePeriod: a node whose Lease is older is NotReady/Unknown (upstream 40s).
	NodeMonitorGracePeriod time.Duration
	// DefaultTolerationSeconds for the unreachable/not-ready taints (upstream 300s).
	DefaultTolerationSeconds int64
	// TerminatedPodGCThreshold: terminated pods kept before the pod GC deletes the oldest (upstream 12500).
	TerminatedPodGCThreshold int
	// RootCAData is the CA published as kube-root-ca.crt (default: the kubeconfig's CA).
	RootCAData []byte
	// HostPathDir is where the volume binder provisions hostPath volumes
	// for claims of pgkube.io/hostpath classes ("": no provisioning).
	HostPathDir string
}

// Runnable is a controller: Run blocks until ctx ends.
type Runnable interface {
	Run(ctx context.Context)
}

// RunFunc makes a function a Runnable.
type RunFunc func(ctx context.Context)

// Run implements Runnable.
func (f RunFunc) Run(ctx context.Context) { f(ctx) }
