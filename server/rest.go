package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/pgkube/pgkube/admission"
	"github.com/pgkube/pgkube/clusters"
	"github.com/pgkube/pgkube/registry"
	"github.com/pgkube/pgkube/storage"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// call carries one resource request through the handler family.
type call struct {
	w       http.ResponseWriter
	r       *http.Request
	ctx     context.Context
	ri      requestInfo
	res     *registry.Resource
	out     output
	cluster string
	// warnings go out as Warning headers, as kube-apiserver sends them.
	warnings []string
	// admissionWarnings collects what admission plugins warn about.
	admissionWarnings *admission.Warnings
	// applied: the write is a server-side apply, whose merge maintains
	// managedFields itself.
	applied bool
	// untracked: the write leaves managedFields as they are, as
	// upstream's registry does for a pod's binding (it writes the pod
	// without the field manager), which also spares the scheduler's
	// hottest write the field manager's cost.
	untracked bool
}

func schemaGR(group, resource string) schema.GroupResource {
	return schema.GroupResource{Group: group, Resource: resource}
}

func (c *call) gr() schema.GroupResource { return schemaGR(c.res.Group, c.res.Resource) }

func (c *call) key(namespace, name string) storage.Key {
	return storage.Key{Resource: c.res.StorageKey(), Namespace: namespace, Name: name}
}

func (s *Server) serveResource(w http.ResponseWriter, r *http.Request, ri requestInfo) {
	res, ok := s.view(r).Lookup(ri.Group, ri.Version, ri.Resource)
	if !ok || (!res.Namespaced && ri.Namespace != "" && ri.Resource != "namespaces") {
		writeStatusError(w, notFoundPath(r))
		return
	}
	out, ok := negotiate(r, res.CRD != "")
	if !ok && !streamingSubresource(ri.Subresource) {
		writeStatusError(w, apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", schemaGR(res.Group, res.Resource), "",
			acceptedMedia(res), 0, false))
		return
	}
	ctx, warnings := admission.WithWarnings(r.Context())
	c := &call{w: w, r: r, ctx: ctx, ri: ri, res: res, out: out, cluster: clusters.From(ctx), admissionWarnings: warnings}
	s.metrics.label(r, ri.Verb, res.Resource, ri.Subresource)
	if err := s.dispatch(c); err != nil {
		c.flushWarnings()
		writeStatusError(w, toStatus(err, c.gr(), ri.Name))
	}
}

func (c *call) flushWarnings() {
	c.warnings = append(c.warnings, c.admissionWarnings.List()...)
	c.admissionWarnings = nil
	for _, w := range c.warnings {
		c.w.Header().Add("Warning", fmt.Sprintf("299 - %q", w))
	}
	c.warnings = nil
}

func (s *Server) dispatch(c *call) error {
	ri := c.ri
	if c.res.CreateOnly {
		if ri.Verb != "create" || ri.Name != "" || ri.Subresource != "" {
			return methodNotAllowed(c)
		}
		return s.createVirtual(c)
	}
	if c.res.Computed {
		return s.serveMetrics(c)
	}
	if isWildcard(c.ctx) {
		switch {
		case ri.Subresource != "" || ri.Name != "":
			return notFoundPath(c.r)
		case ri.Verb == "list":
			return s.wildcardList(c)
		case ri.Verb == "watch":
			return s.wildcardWatch(c)
		}
		return methodNotAllowed(c)
	}
	switch ri.Subresource {
	case "":
	case "status":
		if !c.res.Status {
			return notFoundPath(c.r)
		}
	case "scale":
		if c.res.Scale == nil {
			return notFoundPath(c.r)
		}
		return s.serveScale(c)
	default:
		// Other subresources are served where the registry lists them.
		h, ok := subresourceHandlers[ri.Subresource]
		if !ok || !slices.Contains(c.res.Subresources, ri.Subresource) {
			return notFoundPath(c.r)
		}
		if !slices.Contains(h.verbs, ri.Verb) {
			return methodNotAllowed(c)
		}
		return h.serve(s, c)
	}
	if ri.Subresource == "status" && ri.Verb != "get" && ri.Verb != "update" && ri.Verb != "patch" {
		return methodNotAllowed(c)
	}
	switch ri.Verb {
	case "get":
		return s.get(c)
	case "list":
		return s.list(c)
	case "watch":
		return s.watch(c)
	case "create":
		if ri.Name != "" {
			return methodNotAllowed(c)
		}
		return s.create(c)
	case "update":
		return s.update(c)
	case "patch":
		return s.patch(c)
	case "delete":
		return s.delete(c)
	case "deletecollection":
		return s.deleteCollection(c)
	}
	return methodNotAllowed(c)
}

// subresourceHandlers serve the special subresources by name, each for its
// verbs; which resources have them is the registry's data.
var subresourceHandlers = map[string]struct {
	verbs []string
	serve func(*Server, *call) error
}{
	"binding":  {[]string{"create"}, (*Server).bindPod},
	"eviction": {[]string{"create"}, (*Server).evictPod},
	"finalize": {[]string{"update"}, (*Server).finalizeNamespace},
	"token":    {[]string{"create"}, (*Server).createVirtual},
	// Passed on to node agents (podproxy.go). Upgrades are GETs
	// (WebSocket) or POSTs (SPDY).
	"log":         {[]string{"get"}, (*Server).podLog},
	"exec":        {[]string{"create", "get"}, (*Server).podStream},
	"attach":      {[]string{"create", "get"}, (*Server).podStream},
	"portforward": {[]string{"create", "get"}, (*Server).podStream},
	"proxy":       {[]string{"create", "delete", "get", "patch", "update"}, (*Server).nodeProxy},
}

// subresourceKinds are the kinds the special subresources' bodies have,
// for decoding and discovery; one not listed has its parent's kind.
var subresourceKinds = map[string]schema.GroupVersionKind{
	"binding":     {Version: "v1", Kind: "Binding"},
	"eviction":    {Group: "policy", Version: "v1", Kind: "Eviction"},
	"token":       {Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest"},
	"exec":        {Version: "v1", Kind: "PodExecOptions"},
	"attach":      {Version: "v1", Kind: "PodAttachOptions"},
	"portforward": {Version: "v1", Kind: "PodPortForwardOptions"},
	"proxy":       {Version: "v1", Kind: "NodeProxyOptions"},
}

func methodNotAllowed(c *call) error {
	return apierrors.NewMethodNotSupported(c.gr(), c.r.Method)
}

// load reads the current version of the named object in its served form.
func (s *Server) load(c *call, namespace, name string) (runtime.Object, storage.Object, error) {
	stored, err := s.cfg.Store.Get(c.ctx, c.cluster, c.key(namespace, name))
	if err != nil {
		return nil, storage.Object{}, err
	}
	obj, err := s.fromStorage(c.res, stored.Data)
	return obj, stored, err
}

// fromStorage decodes stored bytes into the resource's served kind.
func (s *Server) fromStorage(res *registry.Resource, data []byte) (runtime.Object, error) {
	obj, err := s.codecs.decodeStored(data, storageGVK(s.cfg.Registry.For(clusters.Root), res))
	if err != nil || res.FromStorage == nil {
		return obj, err
	}
	obj, err = res.FromStorage(obj)
	if err == nil {
		setGVK(obj, res.GVK())
	}
	return obj, err
}

func (s *Server) get(c *call) error {
	if err := s.waitForRV(c, c.r.URL.Query().Get("resourceVersion")); err != nil {
		return err
	}
	stored, err := s.cfg.Store.Get(c.ctx, c.cluster, c.key(c.ri.Namespace, c.ri.Name))
	if err != nil {
		return err
	}
	return s.respondStored(c, http.StatusOK, stored)
}

// respondStored answers with one stored object. Plain JSON of a resource
// that is stored as served goes out byte for byte, without decoding.
func (s *Server) respondStored(c *call, code int, stored storage.Object) error {
	if c.out.media == mediaJSON && c.out.as == "" && c.res.FromStorage == nil {
		c.flushWarnings()
		writeBytes(c.w, code, mediaJSON, stored.Data)
		return nil
	}
	obj, err := s.fromStorage(c.res, stored.Data)
	if err != nil {
		return err
	}
	return s.respond(c, code, obj)
}

// respond answers with one object in the negotiated form.
func (s *Server) respond(c *call, code int, obj runtime.Object) error {
	var out runtime.Object = obj
	switch c.out.as {
	case "Table":
		t, err := s.table(c, []runtime.Object{obj}, metav1.ListMeta{})
		if err != nil {
			return err
		}
		out = t
	case "PartialObjectMetadata", "PartialObjectMetadataList":
		out = partialMeta(obj, c.out.version)
	}
	body, err := s.codecs.encode(out, c.out.media)
	if err != nil {
		return err
	}
	c.flushWarnings()
	writeBytes(c.w, code, c.out.media, body)
	return nil
}

func partialMeta(obj runtime.Object, version string) *metav1.PartialObjectMetadata {
	m, _ := meta.Accessor(obj)
	p := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Name: m.GetName(), GenerateName: m.GetGenerateName(), Namespace: m.GetNamespace(), UID: m.GetUID(),
		ResourceVersion: m.GetResourceVersion(), Generation: m.GetGeneration(), CreationTimestamp: m.GetCreationTimestamp(),
		DeletionTimestamp: m.GetDeletionTimestamp(), DeletionGracePeriodSeconds: m.GetDeletionGracePeriodSeconds(),
		Labels: m.GetLabels(), Annotations: m.GetAnnotations(), OwnerReferences: m.GetOwnerReferences(),
		Finalizers: m.GetFinalizers(), ManagedFields: m.GetManagedFields(),
	}}
	p.APIVersion, p.Kind = "meta.k8s.io/"+versionOr(version), "PartialObjectMetadata"
	return p
}

func versionOr(v string) string {
	if v == "" {
		return "v1"
	}
	return v
}

// rvMarker stands in for the resourceVersion while an object is encoded,
// so the JSON is built in the request's goroutine and the storage batch,
// which runs with the cluster's lock held, only splices the number in.
const rvMarker = "$rv$"

var rvField = []byte(`"resourceVersion":"` + rvMarker + `"`)

// encodeForStorage returns the Encode function of a write: the object in its
// storage form, with the resourceVersion the write is given. metadata comes
// before any user data in the encoding and names cannot hold quotes, so the
// first match is the object's own field.
func (s *Server) encodeForStorage(res *registry.Resource, obj runtime.Object) func(int64) ([]byte, error) {
	m, err := meta.Accessor(obj)
	if err != nil {
		return func(int64) ([]byte, error) { return nil, err }
	}
	saved := m.GetResourceVersion()
	m.SetResourceVersion(rvMarker)
	stored := obj
	if res.ToStorage != nil {
		if stored, err = res.ToStorage(obj); err == nil {
			setGVK(stored, storageGVK(s.cfg.Registry.For(clusters.Root), res))
		}
	}
	var data []byte
	if err == nil {
		data, err = json.Marshal(stored)
	}
	m.SetResourceVersion(saved)
	at := bytes.Index(data, rvField)
	if err == nil && at < 0 {
		err = fmt.Errorf("encode %s: no resourceVersion field", res.Kind)
	}
	return func(rv int64) ([]byte, error) {
		if err != nil {
			return nil, err
		}
		m.SetResourceVersion(strconv.FormatInt(rv, 10))
		num := strconv.AppendInt(nil, rv, 10)
		out := make([]byte, 0, len(data)+len(num))
		out = append(out, data[:at+len(`"resourceVersion":"`)]...)
		out = append(out, num...)
		return append(out, data[at+len(rvField)-1:]...), nil
	}
}

// fieldsOf computes an object's selectable fields for storage.
func fieldsOf(res *registry.Resource, obj runtime.Object) map[string]string {
	if res.Fields == nil {
		return nil
	}
	return res.Fields(obj)
}

// admit runs the admission chain for a write.
// mutate runs the mutating admission phase; validate (the REST layer's own
// checks) follows it, then admit, the validating phase.
func (s *Server) mutate(c *call, op admission.Operation, obj, old runtime.Object, namespace, name string) error {
	if s.cfg.Admission == nil {
		return nil
	}
	return s.cfg.Admission.Mutate(c.ctx, s.admissionAttributes(c, op, obj, old, namespace, name))
}

func (s *Server) admit(c *call, op admission.Operation, obj, old runtime.Object, namespace, name string) error {
	if s.cfg.Admission == nil {
		return nil
	}
	return s.cfg.Admission.Validate(c.ctx, s.admissionAttributes(c, op, obj, old, namespace, name))
}

func (s *Server) admissionAttributes(c *call, op admission.Operation, obj, old runtime.Object, namespace, name string) *admission.Attributes {
	return &admission.Attributes{
		Cluster: c.cluster, Operation: op, Group: c.res.Group, Version: c.res.Version, Resource: c.res.Resource,
		Subresource: c.ri.Subresource, Namespace: namespace, Name: name, Object: obj, OldObject: old,
		DryRun: isDryRun(c.r),
	}
}

func isDryRun(r *http.Request) bool {
	for _, v := range r.URL.Query()["dryRun"] {
		if v == "All" {
			return true
		}
	}
	return false
}

func checkDryRun(r *http.Request) error {
	for _, v := range r.URL.Query()["dryRun"] {
		if v != "All" {
			return badRequest("Invalid dry run value: %q. Valid values are: All", v)
		}
	}
	return nil
}

// fieldValidation reads the fieldValidation parameter; kube-apiserver's
// default is Warn.
func fieldValidation(r *http.Request) (string, error) {
	v := r.URL.Query().Get("fieldValidation")
	switch strings.ToLower(v) {
	case "":
		return "Warn", nil
	case "strict":
		return "Strict", nil
	case "warn":
		return "Warn", nil
	case "ignore":
		return "Ignore", nil
	}
	return "", badRequest("fieldValidation must be one of Ignore, Warn, Strict, got %q", v)
}

// decodeBody decodes a create or update body, applying fieldValidation to
// unknown and duplicate fields.
func (s *Server) decodeBody(c *call, want schema.GroupVersionKind) (runtime.Object, error) {
	mode, err := fieldValidation(c.r)
	if err != nil {
		return nil, err
	}
	body, err := readBody(c.r)
	if err != nil {
		return nil, err
	}
	d, err := s.codecs.decode(body, contentType(c.r), want)
	if err != nil {
		return nil, err
	}
	if c.res.UnknownFields != nil && want == c.res.GVK() {
		for _, path := range c.res.UnknownFields(d.obj) {
			d.warnings = append(d.warnings, fmt.Sprintf("unknown field %q", path))
		}
	}
	if err := c.fieldProblems(mode, d.warnings); err != nil {
		// As a decode failure: the body cannot be handled as the kind.
		return nil, badRequest("%s in version %q cannot be handled as a %s: %s", want.Kind, want.Version, want.Kind, errMessage(err))
	}
	stripClusterMark(d.obj)
	return d.obj, nil
}

// fieldProblems applies fieldValidation to what strict decoding reported.
func (c *call) fieldProblems(mode string, problems []string) error {
	if len(problems) == 0 || mode == "Ignore" {
		return nil
	}
	if mode == "Strict" {
		return badRequest("strict decoding error: %s", strings.Join(problems, ", "))
	}
	c.warnings = append(c.warnings, problems...)
	return nil
}

var errStop = errors.New("stop")

func acceptedMedia(res *registry.Resource) string {
	if res.CRD != "" {
		return "only the following media types are accepted: application/json, application/yaml"
	}
	return "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
}
