package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/pgkube/pgkube/authz"
	"github.com/pgkube/pgkube/clusters"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// rbacKinds are the RBAC resources the authorizer's cache follows.
var rbacKinds = []feedKind{
	{"rbac.authorization.k8s.io/roles", func() runtime.Object { return &rbacv1.Role{} }},
	{"rbac.authorization.k8s.io/rolebindings", func() runtime.Object { return &rbacv1.RoleBinding{} }},
	{"rbac.authorization.k8s.io/clusterroles", func() runtime.Object { return &rbacv1.ClusterRole{} }},
	{"rbac.authorization.k8s.io/clusterrolebindings", func() runtime.Object { return &rbacv1.ClusterRoleBinding{} }},
}

// aggregator keeps aggregated ClusterRoles (admin, edit, view and any with
// an aggregationRule) equal to the union of the roles they select, as
// upstream's clusterrole-aggregation controller does. Every API server
// process runs one; they compute the same result, so racing is harmless.
type aggregator struct {
	s       *Server
	rbac    *authz.RBAC
	cluster string
	kick    chan struct{}
	mu      sync.Mutex // one pass at a time
}

func newAggregator(s *Server, rbac *authz.RBAC, cluster string) *aggregator {
	return &aggregator{s: s, rbac: rbac, cluster: cluster, kick: make(chan struct{}, 1)}
}

// changed asks for a pass soon; calls in a burst cause one pass.
func (a *aggregator) changed() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

func (a *aggregator) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kick:
		}
		// Let a burst of role changes (a bootstrap, an apply of many
		// files) settle into one pass.
		select {
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		if _, err := a.pass(ctx); err != nil && ctx.Err() == nil {
			a.s.opts.Log.Warn("ClusterRole aggregation", "err", err)
			a.changed() // try again
			time.Sleep(time.Second)
		}
	}
}

// pass writes the rules every aggregated ClusterRole should have, from the
// cache's view of the roles, and reports how many it changed. Roles that
// aggregate aggregated roles (admin takes in edit) settle over several
// passes; each write comes back through the feed and causes the next.
func (a *aggregator) pass(ctx context.Context) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	changes := authz.Aggregate(a.rbac.ClusterRoles(a.cluster))
	for name, rules := range changes {
		if rules == nil {
			rules = []rbacv1.PolicyRule{}
		}
		patch, err := json.Marshal(map[string]any{"rules": rules})
		if err != nil {
			return 0, err
		}
		code, body, err := a.s.callRaw(clusters.With(ctx, a.cluster), http.MethodPatch, "/apis/rbac.authorization.k8s.io/v1/clusterroles/"+name,
			"application/merge-patch+json", patch)
		if err != nil {
			errs = append(errs, err)
		} else if code != http.StatusOK && code != http.StatusNotFound {
			errs = append(errs, fmt.Errorf("aggregate into ClusterRole %s: %d %s", name, code, body))
		}
	}
	return len(changes), errors.Join(errs...)
}

// bootstrapPolicy creates the default roles and bindings that are missing.
// Existing ones are left as the cluster's admins made them, except that
// default objects still marked autoupdate get default rules they lack,
// as kube-apiserver's reconciliation does.
func (s *Server) bootstrapPolicy(ctx context.Context) error {
	p := authz.DefaultPolicy()
	const base = "/apis/rbac.authorization.k8s.io/v1"
	// The objects are independent: written concurrently, they share storage
	// transactions, which makes a new tenant's provisioning quick.
	var steps []func() error
	for i := range p.ClusterRoles {
		r := &p.ClusterRoles[i]
		steps = append(steps, func() error {
			if err := s.ensure(ctx, base+"/clusterroles", r); err != nil {
				return err
			}
			return s.reconcileRules(ctx, base+"/clusterroles/"+r.Name, r.Rules, r.AggregationRule != nil)
		})
	}
	for i := range p.ClusterRoleBindings {
		b := &p.ClusterRoleBindings[i]
		steps = append(steps, func() error { return s.ensure(ctx, base+"/clusterrolebindings", b) })
	}
	for i := range p.Roles {
		r := &p.Roles[i]
		steps = append(steps, func() error {
			if err := s.ensure(ctx, base+"/namespaces/"+r.Namespace+"/roles", r); err != nil {
				return err
			}
			return s.reconcileRules(ctx, base+"/namespaces/"+r.Namespace+"/roles/"+r.Name, r.Rules, false)
		})
	}
	for i := range p.RoleBindings {
		b := &p.RoleBindings[i]
		steps = append(steps, func() error { return s.ensure(ctx, base+"/namespaces/"+b.Namespace+"/rolebindings", b) })
	}
	return concurrently(16, steps)
}

// concurrently runs steps on up to n goroutines and returns their errors.
func concurrently(n int, steps []func() error) error {
	work := make(chan func() error)
	errs := make(chan error, len(steps))
	var wg sync.WaitGroup
	for range min(n, len(steps)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for step := range work {
				errs <- step()
			}
		}()
	}
	for _, step := range steps {
		work <- step
	}
	close(work)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// reconcileRules adds the default rules an existing role lacks, if it
// still allows updates (annotation rbac.authorization.kubernetes.io/autoupdate
// is not "false"). Aggregated roles get their rules from aggregation.
func (s *Server) reconcileRules(ctx context.Context, path string, want []rbacv1.PolicyRule, aggregated bool) error {
	if aggregated {
		return nil
	}
	code, body, err := s.call(ctx, http.MethodGet, path, nil)
	if err != nil || code != http.StatusOK {
		return err
	}
	var cur struct {
		metav1.ObjectMeta `json:"metadata"`
		Rules             []rbacv1.PolicyRule `json:"rules"`
	}
	if err := json.Unmarshal([]byte(body), &cur); err != nil {
		return fmt.Errorf("reconcile %s: %w", path, err)
	}
	if cur.Annotations[rbacv1.AutoUpdateAnnotationKey] == "false" {
		return nil
	}
	rules, changed := cur.Rules, false
	for _, w := range want {
		found := false
		for _, r := range cur.Rules {
			if equality.Semantic.DeepEqual(r, w) {
				found = true
				break
			}
		}
		if !found {
			rules, changed = append(rules, w), true
		}
	}
	if !changed {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"rules": rules})
	if err != nil {
		return err
	}
	code, resp, err := s.callRaw(ctx, http.MethodPatch, path, "application/merge-patch+json", patch)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("reconcile %s: %d %s", path, code, resp)
	}
	return err
}
