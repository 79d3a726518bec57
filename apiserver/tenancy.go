package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgkube/pgkube/authz"
	"github.com/pgkube/pgkube/clusters"
	"github.com/pgkube/pgkube/pki"
	"github.com/pgkube/pgkube/storage"
	"github.com/pgkube/pgkube/watch"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// LogicalCluster objects, in the root cluster, are the tenants: creating
// one provisions a cluster, deleting one removes every row of it.
const (
	tenancyGroup     = "tenancy.pgkube.io"
	logicalClusters  = tenancyGroup + "/logicalclusters"
	tenancyFinalizer = "tenancy.pgkube.io/cleanup"
)

// logicalClusterCRD is the LogicalCluster kind, served by the root cluster.
var logicalClusterCRD = map[string]any{
	"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
	"metadata": map[string]any{"name": "logicalclusters." + tenancyGroup},
	"spec": map[string]any{
		"group": tenancyGroup, "scope": "Cluster",
		"names": map[string]any{"plural": "logicalclusters", "singular": "logicalcluster", "kind": "LogicalCluster",
			"shortNames": []string{"lc"}},
		"versions": []any{map[string]any{
			"name": "v1alpha1", "served": true, "storage": true,
			"subresources": map[string]any{"status": map[string]any{}},
			"additionalPrinterColumns": []any{
				map[string]any{"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
				map[string]any{"name": "URL", "type": "string", "jsonPath": ".status.url"},
				map[string]any{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
			},
			"schema": map[string]any{"openAPIV3Schema": map[string]any{
				"type": "object",
				"properties": map[string]any{
					"spec": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true},
					"status": map[string]any{"type": "object", "properties": map[string]any{
						"phase": map[string]any{"type": "string"},
						"url":   map[string]any{"type": "string"},
					}},
				},
			}},
		}},
	},
}

// tenancy provisions and removes logical clusters as LogicalCluster objects
// come and go, and starts each cluster's in-memory state on first use.
type tenancy struct {
	s       *Server
	store   *storage.Store
	hub     *watch.Hub
	tenants *tenants
	rbac    *authz.RBAC
	log     *slog.Logger
	// start readies a cluster's feeds (RBAC, admission configuration).
	start func(ctx context.Context, cluster string) error
	base  context.Context
	// idleAfter: see defaultIdleAfter.
	idleAfter time.Duration

	ready sync.Map // cluster → *readyOnce
}

type readyOnce struct {
	once   sync.Once
	err    error
	cancel context.CancelFunc
	used   atomic.Int64 // unix nanoseconds of the last request
}

// defaultIdleAfter is how long a tenant may go without requests before its
// feeds stop: an idle tenant then costs no goroutine, only its cached
// policy.
const defaultIdleAfter = 5 * time.Minute

// Ready starts a cluster's feeds once; later calls cost a map lookup.
func (t *tenancy) Ready(ctx context.Context, cluster string) error {
	v, _ := t.ready.LoadOrStore(cluster, &readyOnce{})
	r := v.(*readyOnce)
	r.used.Store(time.Now().UnixNano())
	r.once.Do(func() {
		fctx, cancel := context.WithCancel(t.base)
		r.cancel = cancel
		if r.err = t.start(fctx, cluster); r.err != nil {
			cancel()
		}
	})
	if r.err != nil {
		t.ready.CompareAndDelete(cluster, r) // try again on the next request
	}
	return r.err
}

// stopIdle ends the feeds of tenants without recent requests; the next
// request starts them again from a fresh snapshot.
func (t *tenancy) stopIdle(ctx context.Context) {
	if t.idleAfter <= 0 {
		t.idleAfter = defaultIdleAfter
	}
	tick := time.NewTicker(t.idleAfter / 5)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cutoff := time.Now().Add(-t.idleAfter).UnixNano()
		t.ready.Range(func(k, v any) bool {
			r := v.(*readyOnce)
			if r.used.Load() < cutoff && t.ready.CompareAndDelete(k, r) && r.cancel != nil {
				r.cancel()
			}
			return true
		})
	}
}

func (t *tenancy) Exists(ctx context.Context, name string) (bool, error) {
	return t.tenants.Exists(ctx, name)
}

// run follows LogicalCluster objects of the root cluster.
func (t *tenancy) run(ctx context.Context) {
	for ctx.Err() == nil {
		rv, _, err := t.store.CurrentRV(ctx, clusters.Root)
		if err == nil {
			var list storage.ListResult
			if list, err = t.store.List(ctx, clusters.Root, storage.ListOptions{Resource: logicalClusters, AtRV: rv}); err == nil {
				for _, o := range list.Items {
					t.handle(ctx, o.Data, false)
				}
				err = t.follow(ctx, rv)
			}
		}
		if ctx.Err() != nil {
			return
		}
		t.log.Warn("tenancy feed restarting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (t *tenancy) follow(ctx context.Context, rv int64) error {
	return follow(ctx, t.hub, clusters.Root, logicalClusters, rv, func(data []byte, deleted bool) { t.handle(ctx, data, deleted) })
}

// handle settles one LogicalCluster: provision it, or clean it up once it
// is being deleted. Every API server process does this; the steps are
// idempotent, so racing processes converge.
func (t *tenancy) handle(ctx context.Context, data []byte, deleted bool) {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		return
	}
	name := u.GetName()
	if deleted {
		t.forget(name)
		return
	}
	var err error
	switch {
	case !clusters.ValidName(name) || name == clusters.Root:
		err = t.setPhase(ctx, u, "Invalid")
	case u.GetDeletionTimestamp() != nil:
		err = t.remove(ctx, u)
	default:
		err = t.provision(ctx, u)
	}
	if err != nil && ctx.Err() == nil {
		t.log.Warn("logical cluster", "cluster", name, "err", err)
		// A later event, or the next restart of the feed, retries.
		go func() {
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
				t.handle(ctx, data, false)
			}
		}()
	}
}

// provision makes the cluster: its counter row, its credentials, its
// default namespaces and RBAC policy.
func (t *tenancy) provision(ctx context.Context, u *unstructured.Unstructured) error {
	name := u.GetName()
	if u.Object["status"] != nil {
		if phase, _, _ := unstructured.NestedString(u.Object, "status", "phase"); phase == "Ready" {
			return nil
		}
	}
	if !slices.Contains(u.GetFinalizers(), tenancyFinalizer) {
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": append(u.GetFinalizers(), tenancyFinalizer),
			"resourceVersion": u.GetResourceVersion()}})
		code, body, err := t.s.callRaw(ctx, http.MethodPatch, "/apis/"+tenancyGroup+"/v1alpha1/logicalclusters/"+name,
			"application/merge-patch+json", patch)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("add finalizer: %d %s", code, body)
		}
		return nil // the change comes back through the feed
	}
	if err := t.store.EnsureCluster(ctx, name); err != nil {
		return err
	}
	if err := t.ensureSecret(ctx, name); err != nil {
		return err
	}
	tctx := clusters.With(ctx, name)
	if err := t.s.bootstrap(tctx, t.s.kubernetesIP); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := t.s.bootstrapPolicy(tctx); err != nil {
		return fmt.Errorf("bootstrap policy: %w", err)
	}
	return t.setPhase(ctx, u, "Ready")
}

// ensureSecret stores the tenant's credentials (CA, service-account key
// and an admin client certificate) unless they exist.
func (t *tenancy) ensureSecret(ctx context.Context, name string) error {
	_, err := t.store.Get(ctx, clusters.Root, storage.Key{Resource: "/secrets", Namespace: tenantSecretNamespace, Name: tenantSecretName(name)})
	if err == nil {
		return nil
	}
	a, stored, err := pki.NewAuthority()
	if err != nil {
		return err
	}
	adminCert, adminKey, err := a.IssueClient("admin", []string{"system:masters"}, 365*24*time.Hour)
	if err != nil {
		return err
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: tenantSecretName(name), Namespace: tenantSecretNamespace,
		Labels: map[string]string{"tenancy.pgkube.io/cluster": name}},
		Type: "tenancy.pgkube.io/credentials",
		Data: map[string][]byte{"ca.crt": stored.CACert, "ca.key": stored.CAKey, "sa.key": stored.SAKey,
			"admin.crt": adminCert, "admin.key": adminKey}}
	return t.s.ensure(ctx, "/api/v1/namespaces/"+tenantSecretNamespace+"/secrets", sec)
}

func (t *tenancy) setPhase(ctx context.Context, u *unstructured.Unstructured, phase string) error {
	status := map[string]any{"phase": phase}
	if phase == "Ready" {
		status["url"] = clusters.URLPrefix + u.GetName()
	}
	patch, _ := json.Marshal(map[string]any{"status": status})
	code, body, err := t.s.callRaw(ctx, http.MethodPatch, "/apis/"+tenancyGroup+"/v1alpha1/logicalclusters/"+u.GetName()+"/status",
		"application/merge-patch+json", patch)
	if err != nil {
		return err
	}
	if code != http.StatusOK && code != http.StatusNotFound {
		return fmt.Errorf("set phase: %d %s", code, body)
	}
	return nil
}

// remove deletes every row of the cluster, then its credentials, then lets
// the LogicalCluster go.
func (t *tenancy) remove(ctx context.Context, u *unstructured.Unstructured) error {
	name := u.GetName()
	if !slices.Contains(u.GetFinalizers(), tenancyFinalizer) {
		return nil
	}
	if err := t.store.RemoveCluster(ctx, name); err != nil {
		return err
	}
	t.forget(name)
	code, body, err := t.s.callRaw(ctx, http.MethodDelete, "/api/v1/namespaces/"+tenantSecretNamespace+"/secrets/"+tenantSecretName(name), "application/json", nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK && code != http.StatusNotFound {
		return fmt.Errorf("remove credentials: %d %s", code, body)
	}
	finalizers := slices.DeleteFunc(slices.Clone(u.GetFinalizers()), func(f string) bool { return f == tenancyFinalizer })
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": finalizers}})
	code, body, err = t.s.callRaw(ctx, http.MethodPatch, "/apis/"+tenancyGroup+"/v1alpha1/logicalclusters/"+name,
		"application/merge-patch+json", patch)
	if err != nil {
		return err
	}
	if code != http.StatusOK && code != http.StatusNotFound {
		return fmt.Errorf("remove finalizer: %d %s", code, body)
	}
	return nil
}

// forget drops what this process holds of a deleted tenant: its feeds, its
// credentials, its custom resources and its RBAC policy.
func (t *tenancy) forget(name string) {
	t.tenants.forget(name)
	if v, ok := t.ready.LoadAndDelete(name); ok && v.(*readyOnce).cancel != nil {
		v.(*readyOnce).cancel()
	}
	if t.s != nil {
		t.s.reg.Forget(name)
	}
	t.rbac.Replace(name, nil)
}
