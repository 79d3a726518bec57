// Package webhook runs MutatingWebhookConfigurations and
// ValidatingWebhookConfigurations (admissionregistration.k8s.io/v1) the way
// kube-apiserver does: it matches each webhook against the request, posts
// an AdmissionReview v1 over HTTPS and applies the answer.
//
// The configurations are fed in by the caller (Apply) from the watch of
// each logical cluster; every cluster has its own immutable snapshot,
// replaced whole on each change, so admission never waits on a feed.
package webhook

import (
	"context"
	"crypto/tls"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/pgkube/pgkube/admission"
	admcel "github.com/pgkube/pgkube/admission/cel"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Options configure the webhooks.
type Options struct {
	// Store reads namespaces (for namespaceSelector) and, for webhooks
	// addressed by service, the Service and its EndpointSlices (through
	// List, when Store has it) or Endpoints. A *storage.Store or an
	// admission.ReadCache in front of one.
	Store admission.Getter
	// TLSConfig is the base of every webhook connection's TLS settings
	// (for example a client certificate pgkube presents to webhooks). A
	// webhook's caBundle is added to its RootCAs (nil: the system roots);
	// a service reference sets ServerName unless it is set here.
	TLSConfig *tls.Config
	// Dial, if set, opens connections instead of a net.Dialer: for tests
	// and for networks pgkube reaches through a proxy.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Typer names the kind of typed objects that carry no apiVersion and
	// kind; nil falls back to the Go type's name (see admcel.KindOf).
	Typer runtime.ObjectTyper
	// Warn records a warning the webhook returned for the client;
	// admission.AddWarning when nil.
	Warn func(ctx context.Context, msg string)
	// NewUID names each AdmissionReview request; random UUIDs when nil.
	NewUID func() string
}

// Webhooks holds the webhook configurations of every logical cluster.
type Webhooks struct {
	opts Options
	env  *admcel.Env

	mu       sync.RWMutex
	clusters map[string]*snapshot
}

// snapshot is one cluster's configurations. It is never modified once
// published: Apply builds a new one.
type snapshot struct {
	mutatingConfigs   map[string][]*hook
	validatingConfigs map[string][]*hook
	// In kube-apiserver's order: configurations by name, then each
	// configuration's webhooks in their order.
	mutating, validating []*hook
}

// New returns an empty set of webhooks.
func New(opts Options) *Webhooks {
	if opts.Warn == nil {
		opts.Warn = admission.AddWarning
	}
	env, err := admcel.NewEnv(admcel.Object, admcel.OldObject, admcel.RequestVar)
	if err != nil {
		// The declarations are fixed: failing here is a programming error.
		panic(err)
	}
	return &Webhooks{opts: opts, env: env, clusters: map[string]*snapshot{}}
}

// Apply records a MutatingWebhookConfiguration or
// ValidatingWebhookConfiguration (typed, or unstructured as read from a
// watch) of cluster as created or updated, or as deleted. Other objects are
// ignored.
func (w *Webhooks) Apply(cluster string, obj runtime.Object, deleted bool) {
	var (
		name     string
		hooks    []*hook
		mutating bool
	)
	switch o := obj.(type) {
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		name, mutating = o.Name, true
		if !deleted {
			hooks = w.compileMutating(cluster, o)
		}
	case *admissionregistrationv1.ValidatingWebhookConfiguration:
		name = o.Name
		if !deleted {
			hooks = w.compileValidating(cluster, o)
		}
	case *unstructured.Unstructured:
		typed, ok := fromUnstructured(o)
		if ok {
			w.Apply(cluster, typed, deleted)
		}
		return
	default:
		return
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.clusters[cluster]
	next := &snapshot{mutatingConfigs: map[string][]*hook{}, validatingConfigs: map[string][]*hook{}}
	var replaced []*hook
	if old != nil {
		for k, v := range old.mutatingConfigs {
			next.mutatingConfigs[k] = v
		}
		for k, v := range old.validatingConfigs {
			next.validatingConfigs[k] = v
		}
	}
	configs := next.validatingConfigs
	if mutating {
		configs = next.mutatingConfigs
	}
	replaced = configs[name]
	if deleted {
		delete(configs, name)
	} else {
		configs[name] = hooks
	}
	next.mutating = flatten(next.mutatingConfigs)
	next.validating = flatten(next.validatingConfigs)
	if len(next.mutatingConfigs) == 0 && len(next.validatingConfigs) == 0 {
		delete(w.clusters, cluster)
	} else {
		w.clusters[cluster] = next
	}
	// Requests still using the old snapshot may hold these clients; closing
	// idle connections only keeps replaced ones from lingering.
	for _, h := range replaced {
		if h.client != nil {
			h.client.CloseIdleConnections()
		}
	}
}

func fromUnstructured(u *unstructured.Unstructured) (runtime.Object, bool) {
	if u.GroupVersionKind().GroupVersion() != admissionregistrationv1.SchemeGroupVersion {
		return nil, false
	}
	var out runtime.Object
	switch u.GetKind() {
	case "MutatingWebhookConfiguration":
		out = &admissionregistrationv1.MutatingWebhookConfiguration{}
	case "ValidatingWebhookConfiguration":
		out = &admissionregistrationv1.ValidatingWebhookConfiguration{}
	default:
		return nil, false
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		// Only reachable for an object the API would not have stored;
		// dropping it is what deleting it would do.
		return nil, false
	}
	return out, true
}

func flatten(configs map[string][]*hook) []*hook {
	names := make([]string, 0, len(configs))
	for n := range configs {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []*hook
	for _, n := range names {
		out = append(out, configs[n]...)
	}
	return out
}

func (w *Webhooks) snapshot(cluster string) *snapshot {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.clusters[cluster]
}

// Mutating is the plugin for the mutating admission phase.
func (w *Webhooks) Mutating() admission.Plugin { return mutatingPlugin{w} }

// Validating is the plugin for the validating admission phase.
func (w *Webhooks) Validating() admission.Plugin { return validatingPlugin{w} }

// Defaults kube-apiserver's API applies to webhooks and their bounds.
const (
	defaultTimeout = 10 * time.Second
	maxTimeout     = 30 * time.Second
)
