// Package policy runs ValidatingAdmissionPolicies and their bindings
// (admissionregistration.k8s.io/v1) in the validating admission phase, as
// kube-apiserver does: CEL validations over the object, the old object, the
// request, a param object and the request's namespace.
//
// Policies and bindings are fed in by the caller (Apply). Each policy's
// expressions are compiled once, when it is applied, and every logical
// cluster has its own immutable snapshot, replaced whole on each change.
package policy

import (
	"context"
	"sort"
	"sync"

	"github.com/pgkube/pgkube/admission"
	admcel "github.com/pgkube/pgkube/admission/cel"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Options configure the policies.
type Options struct {
	// Store reads namespaces (namespaceSelector, namespaceObject) and param
	// objects: a *storage.Store or an admission.ReadCache in front of one.
	Store admission.Reader
	// ParamResource names where objects of a paramKind are stored: the
	// storage resource ("group/resource", core group empty) and whether
	// they are namespaced. ok is false for a kind pgkube does not serve.
	ParamResource func(gvk schema.GroupVersionKind) (resource string, namespaced bool, ok bool)
	// Typer names the kind of typed objects that carry no apiVersion and
	// kind; nil falls back to the Go type's name (see admcel.KindOf).
	Typer runtime.ObjectTyper
	// Warn records a warning for the client (bindings with the Warn
	// action); admission.AddWarning when nil.
	Warn func(ctx context.Context, msg string)
}

// Policies holds the policies and bindings of every logical cluster.
type Policies struct {
	opts Options
	env  *admcel.Env

	// applyMu serialises Apply, so compiling (slow) happens outside mu,
	// which admission only ever holds to read a snapshot pointer.
	applyMu  sync.Mutex
	mu       sync.RWMutex
	clusters map[string]*snapshot
}

// snapshot is one cluster's policies and bindings. It is never modified
// once published: Apply builds a new one.
type snapshot struct {
	policies map[string]*policy
	bindings map[string]*binding
	// hooks pairs each policy (by name) with its bindings (by name).
	hooks []hook
}

type hook struct {
	policy   *policy
	bindings []*binding
}

// New returns an empty set of policies.
func New(opts Options) *Policies {
	if opts.Warn == nil {
		opts.Warn = admission.AddWarning
	}
	env, err := admcel.NewEnv(admcel.Object, admcel.OldObject, admcel.RequestVar, admcel.Params,
		admcel.NamespaceObject, admcel.Variables)
	if err != nil {
		// The declarations are fixed: failing here is a programming error.
		panic(err)
	}
	return &Policies{opts: opts, env: env, clusters: map[string]*snapshot{}}
}

// Apply records a ValidatingAdmissionPolicy or
// ValidatingAdmissionPolicyBinding (typed, or unstructured as read from a
// watch) of cluster as created or updated, or as deleted. Other objects are
// ignored.
func (p *Policies) Apply(cluster string, obj runtime.Object, deleted bool) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		typed, ok := fromUnstructured(u)
		if !ok {
			return
		}
		obj = typed
	}
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	old := p.snapshot(cluster)
	next := &snapshot{policies: map[string]*policy{}, bindings: map[string]*binding{}}
	if old != nil {
		for k, v := range old.policies {
			next.policies[k] = v
		}
		for k, v := range old.bindings {
			next.bindings[k] = v
		}
	}
	switch o := obj.(type) {
	case *admissionregistrationv1.ValidatingAdmissionPolicy:
		switch prev := next.policies[o.Name]; {
		case deleted:
			delete(next.policies, o.Name)
		case prev != nil && apiequality.Semantic.DeepEqual(prev.spec, o.Spec):
			// A status or metadata change: the compiled policy stands.
		default:
			next.policies[o.Name] = p.compile(o)
		}
	case *admissionregistrationv1.ValidatingAdmissionPolicyBinding:
		if deleted {
			delete(next.bindings, o.Name)
		} else {
			next.bindings[o.Name] = newBinding(o)
		}
	default:
		return
	}
	next.hooks = pair(next.policies, next.bindings)

	p.mu.Lock()
	defer p.mu.Unlock()
	if len(next.policies) == 0 && len(next.bindings) == 0 {
		delete(p.clusters, cluster)
	} else {
		p.clusters[cluster] = next
	}
}

func fromUnstructured(u *unstructured.Unstructured) (runtime.Object, bool) {
	if u.GroupVersionKind().GroupVersion() != admissionregistrationv1.SchemeGroupVersion {
		return nil, false
	}
	var out runtime.Object
	switch u.GetKind() {
	case "ValidatingAdmissionPolicy":
		out = &admissionregistrationv1.ValidatingAdmissionPolicy{}
	case "ValidatingAdmissionPolicyBinding":
		out = &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
	default:
		return nil, false
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		return nil, false
	}
	return out, true
}

// pair lists the policies that have bindings, by name, each with its
// bindings by name. Bindings of missing policies wait for them.
func pair(policies map[string]*policy, bindings map[string]*binding) []hook {
	byPolicy := map[string][]*binding{}
	for _, b := range bindings {
		byPolicy[b.policyName] = append(byPolicy[b.policyName], b)
	}
	var out []hook
	for name, bs := range byPolicy {
		pol := policies[name]
		if pol == nil {
			continue
		}
		sort.Slice(bs, func(i, j int) bool { return bs[i].name < bs[j].name })
		out = append(out, hook{policy: pol, bindings: bs})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].policy.name < out[j].policy.name })
	return out
}

func (p *Policies) snapshot(cluster string) *snapshot {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.clusters[cluster]
}

// Plugin is the plugin for the validating admission phase.
func (p *Policies) Plugin() admission.Plugin { return plugin{p} }
