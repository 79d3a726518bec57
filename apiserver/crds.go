package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/pgkube/pgkube/clusters"
	"github.com/pgkube/pgkube/registry"
	"github.com/pgkube/pgkube/storage"
	"github.com/pgkube/pgkube/watch"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

const crdKey = "apiextensions.k8s.io/customresourcedefinitions"

// crdController serves what CRDs define: every API server process follows
// the CRDs of its cluster through the watch hub and registers their
// resources, so a CRD created through any process is served by all within
// moments. It also keeps CRD status current (names accepted, established)
// and removes a deleted CRD's custom resources before letting it go.
type crdController struct {
	s       *Server
	reg     *registry.Registry
	store   *storage.Store
	hub     *watch.Hub
	cluster string
	log     *slog.Logger
	// schemaChanged is told a CRD's definition, or nil when it is gone
	// (OpenAPI documents, validators).
	schemaChanged func(name string, crd *apiextensionsv1.CustomResourceDefinition)
	// validator gives a version's schema check for a CRD, if known.
	validator func(crd *apiextensionsv1.CustomResourceDefinition, version string) registry.SchemaValidator
	// unknown finds fields a version's schema does not know, if known.
	unknown func(crd *apiextensionsv1.CustomResourceDefinition, version string) registry.UnknownFinder
	// kick wakes the worker that settles status and cleanup.
	kick    chan struct{}
	mu      sync.Mutex // guards pending
	pending map[string]*apiextensionsv1.CustomResourceDefinition
}

func newCRDController(s *Server, reg *registry.Registry, store *storage.Store, hub *watch.Hub, cluster string, log *slog.Logger) *crdController {
	return &crdController{s: s, reg: reg, store: store, hub: hub, cluster: cluster, log: log,
		kick: make(chan struct{}, 1), pending: map[string]*apiextensionsv1.CustomResourceDefinition{}}
}

// load registers every CRD at the cluster's current version and returns
// that version.
func (c *crdController) load(ctx context.Context) (int64, error) {
	rv, _, err := c.store.CurrentRV(ctx, c.cluster)
	if err != nil {
		return 0, err
	}
	res, err := c.store.List(ctx, c.cluster, storage.ListOptions{Resource: crdKey, AtRV: rv})
	if err != nil {
		return 0, fmt.Errorf("load CRDs: %w", err)
	}
	for _, o := range res.Items {
		c.apply(o.Data, false)
	}
	return rv, nil
}

// run follows CRD changes after rv until ctx ends.
func (c *crdController) run(ctx context.Context, rv int64) {
	go c.worker(ctx)
	for ctx.Err() == nil {
		err := c.follow(ctx, rv)
		if ctx.Err() != nil {
			return
		}
		c.log.Warn("CRD feed restarting", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		if next, err := c.load(ctx); err == nil {
			rv = next
		}
	}
}

func (c *crdController) follow(ctx context.Context, rv int64) error {
	return follow(ctx, c.hub, c.cluster, crdKey, rv, c.apply)
}

// apply serves (or, deleted, stops serving) one CRD as stored, and queues
// its status and cleanup for the worker.
func (c *crdController) apply(data []byte, deleted bool) {
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := json.Unmarshal(data, crd); err != nil {
		c.log.Warn("CRD does not decode", "err", err)
		return
	}
	if deleted {
		if err := c.reg.SetCustom(c.cluster, crd.Name, nil); err != nil {
			c.log.Warn("unregister CRD", "crd", crd.Name, "err", err)
		}
		if c.schemaChanged != nil {
			c.schemaChanged(crd.Name, nil)
		}
		return
	}
	var validator func(string) registry.SchemaValidator
	if c.validator != nil {
		validator = func(v string) registry.SchemaValidator { return c.validator(crd, v) }
	}
	var unknown func(string) registry.UnknownFinder
	if c.unknown != nil {
		unknown = func(v string) registry.UnknownFinder { return c.unknown(crd, v) }
	}
	rs, err := registry.CustomResources(crd, validator, unknown)
	if err == nil {
		err = c.reg.SetCustom(c.cluster, crd.Name, rs)
	}
	if err != nil {
		c.log.Warn("register CRD", "crd", crd.Name, "err", err)
		return
	}
	if c.schemaChanged != nil {
		c.schemaChanged(crd.Name, crd)
	}
	c.mu.Lock()
	c.pending[crd.Name] = crd
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// worker settles queued CRDs: status conditions, and cleanup of deleted
// ones. Writes go through the API as the server itself; a failure is
// retried on the next change or after a second.
func (c *crdController) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		case <-time.After(time.Second):
		}
		// apply runs on the feed's goroutine; take the queue over.
		c.mu.Lock()
		queue := c.pending
		c.pending = map[string]*apiextensionsv1.CustomResourceDefinition{}
		c.mu.Unlock()
		for name, crd := range queue {
			if err := c.settle(ctx, crd); err != nil && ctx.Err() == nil {
				c.log.Warn("CRD status", "crd", name, "err", err)
				c.mu.Lock()
				if _, newer := c.pending[name]; !newer {
					c.pending[name] = crd
				}
				c.mu.Unlock()
			}
		}
	}
}

func (c *crdController) settle(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) error {
	if crd.DeletionTimestamp != nil && slices.Contains(crd.Finalizers, registry.CRDCleanupFinalizer) {
		return c.cleanup(ctx, crd)
	}
	want := crd.DeepCopy()
	want.Status.AcceptedNames = crd.Spec.Names
	registry.SetCRDCondition(want, apiextensionsv1.CustomResourceDefinitionCondition{Type: apiextensionsv1.NamesAccepted,
		Status: apiextensionsv1.ConditionTrue, Reason: "NoConflicts", Message: "no conflicts found"})
	if crd.DeletionTimestamp == nil {
		registry.SetCRDCondition(want, apiextensionsv1.CustomResourceDefinitionCondition{Type: apiextensionsv1.Established,
			Status: apiextensionsv1.ConditionTrue, Reason: "InitialNamesAccepted", Message: "the initial names have been accepted"})
	}
	for _, v := range crd.Spec.Versions {
		if v.Storage && !slices.Contains(want.Status.StoredVersions, v.Name) {
			want.Status.StoredVersions = append(want.Status.StoredVersions, v.Name)
		}
	}
	if equality.Semantic.DeepEqual(want.Status, crd.Status) {
		return nil
	}
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": crd.ResourceVersion}, "status": want.Status})
	if err != nil {
		return err
	}
	code, resp, err := c.s.callRaw(clusters.With(ctx, c.cluster), http.MethodPatch, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"+crd.Name+"/status",
		"application/merge-patch+json", body)
	if err != nil {
		return err
	}
	if code == http.StatusConflict || code == http.StatusNotFound {
		return nil // a newer version is on its way through the feed
	}
	if code != http.StatusOK {
		return fmt.Errorf("update status: %d %s", code, resp)
	}
	return nil
}

// cleanup deletes a deleted CRD's custom resources, then lets the CRD go.
func (c *crdController) cleanup(ctx context.Context, crd *apiextensionsv1.CustomResourceDefinition) error {
	var storageVersion string
	for _, v := range crd.Spec.Versions {
		if v.Storage {
			storageVersion = v.Name
		}
	}
	collection := "/apis/" + crd.Spec.Group + "/" + storageVersion + "/" + crd.Spec.Names.Plural
	code, resp, err := c.s.callRaw(clusters.With(ctx, c.cluster), http.MethodDelete, collection, "application/json", nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK && code != http.StatusNotFound {
		return fmt.Errorf("delete custom resources: %d %s", code, resp)
	}
	left, err := c.store.List(ctx, c.cluster, storage.ListOptions{Resource: crd.Spec.Group + "/" + crd.Spec.Names.Plural, Limit: 1})
	if err != nil {
		return err
	}
	if len(left.Items) > 0 {
		return fmt.Errorf("%d or more custom resources still held by finalizers", len(left.Items))
	}
	finalizers := slices.DeleteFunc(slices.Clone(crd.Finalizers), func(f string) bool { return f == registry.CRDCleanupFinalizer })
	body, err := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": crd.ResourceVersion, "finalizers": finalizers}})
	if err != nil {
		return err
	}
	code, resp, err = c.s.callRaw(clusters.With(ctx, c.cluster), http.MethodPatch, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"+crd.Name,
		"application/merge-patch+json", body)
	if err != nil {
		return err
	}
	if code != http.StatusOK && code != http.StatusConflict && code != http.StatusNotFound {
		return fmt.Errorf("remove cleanup finalizer: %d %s", code, resp)
	}
	return nil
}
