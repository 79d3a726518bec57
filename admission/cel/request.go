package cel

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"

	"github.com/pgkube/pgkube/admission"
	"github.com/pgkube/pgkube/authn"
	"github.com/pgkube/pgkube/storage"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Request is one admission call as configuration sees it. Build one per
// call to a plugin: it caches the conversions and reads that several
// webhooks or policies of the same call share. Not safe for concurrent use.
type Request struct {
	Attrs *admission.Attributes
	// Kind is the kind of the object (or, for a delete, the old object).
	Kind schema.GroupVersionKind
	User *authn.User

	object, oldObject converted
	request           map[string]any

	// The request's namespace, read once.
	nsRead   bool
	ns       map[string]any
	nsLabels map[string]string
	nsErr    error
}

type converted struct {
	done bool
	val  any
	err  error
}

// NewRequest describes a. typer, if not nil, names the kind of typed
// objects that do not carry apiVersion and kind themselves.
func NewRequest(ctx context.Context, a *admission.Attributes, typer runtime.ObjectTyper) *Request {
	r := &Request{Attrs: a, User: authn.UserFrom(ctx)}
	obj := a.Object
	if obj == nil {
		obj = a.OldObject
	}
	r.Kind = KindOf(obj, a, typer)
	return r
}

// KindOf names obj's kind: from the object itself, else from typer, else
// from its Go type in the request's group and version (every k8s.io/api
// type is named after its kind).
func KindOf(obj runtime.Object, a *admission.Attributes, typer runtime.ObjectTyper) schema.GroupVersionKind {
	if obj == nil {
		return schema.GroupVersionKind{}
	}
	if gvk := obj.GetObjectKind().GroupVersionKind(); gvk.Kind != "" {
		return gvk
	}
	if typer != nil {
		if kinds, _, err := typer.ObjectKinds(obj); err == nil && len(kinds) > 0 {
			for _, k := range kinds {
				if k.Group == a.Group && k.Version == a.Version {
					return k
				}
			}
			return kinds[0]
		}
	}
	t := reflect.TypeOf(obj)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return schema.GroupVersionKind{Group: a.Group, Version: a.Version, Kind: t.Name()}
}

// Resource is the resource the request is for.
func (r *Request) Resource() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: r.Attrs.Group, Version: r.Attrs.Version, Resource: r.Attrs.Resource}
}

// Namespace is the request's namespace as kube-apiserver reports it, where
// a namespace object is in the namespace of its own name.
func (r *Request) Namespace() string {
	if r.IsNamespace() && r.Attrs.Namespace == "" {
		return r.Attrs.Name
	}
	return r.Attrs.Namespace
}

// IsNamespace tells whether the request is for a namespace object.
func (r *Request) IsNamespace() bool {
	return r.Attrs.Group == "" && r.Attrs.Resource == "namespaces"
}

// ObjectChanged forgets the converted object after a mutation.
func (r *Request) ObjectChanged() { r.object = converted{} }

func (r *Request) objectValue() (any, error) {
	return r.object.get(r.Attrs.Object, r.Kind)
}

func (r *Request) oldObjectValue() (any, error) {
	return r.oldObject.get(r.Attrs.OldObject, r.Kind)
}

func (c *converted) get(obj runtime.Object, gvk schema.GroupVersionKind) (any, error) {
	if !c.done {
		c.val, c.err = ObjectValue(obj, gvk)
		c.done = true
	}
	return c.val, c.err
}

// ObjectValue converts obj to the JSON-like value CEL reads, with
// apiVersion and kind set (gvk when obj does not carry them). A nil obj is
// null.
func ObjectValue(obj runtime.Object, gvk schema.GroupVersionKind) (any, error) {
	if obj == nil || reflect.ValueOf(obj).IsNil() {
		return nil, nil
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		// CEL never writes to its input, so the object's own map serves.
		return u.Object, nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	if _, ok := m["kind"]; !ok && gvk.Kind != "" {
		m["apiVersion"], m["kind"] = gvk.GroupVersion().String(), gvk.Kind
	}
	return m, nil
}

// DecodeJSON decodes data into the value CEL reads: integers stay int64,
// where encoding/json would make every number a float64.
func DecodeJSON(data []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return numbers(v), nil
}

func numbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		f, _ := strconv.ParseFloat(string(x), 64)
		return f
	}
	return v
}

// Options is the typed options object of the request's operation, as the
// AdmissionReview and the request variable carry it.
func (r *Request) Options() runtime.Object {
	var dryRun []string
	if r.Attrs.DryRun {
		dryRun = []string{metav1.DryRunAll}
	}
	meta := func(kind string) metav1.TypeMeta {
		return metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: kind}
	}
	switch r.Attrs.Operation {
	case admission.Create:
		return &metav1.CreateOptions{TypeMeta: meta("CreateOptions"), DryRun: dryRun}
	case admission.Update:
		return &metav1.UpdateOptions{TypeMeta: meta("UpdateOptions"), DryRun: dryRun}
	case admission.Delete:
		return &metav1.DeleteOptions{TypeMeta: meta("DeleteOptions"), DryRun: dryRun}
	}
	return nil
}

// UserInfo is the requesting user in authentication/v1 form.
func (r *Request) UserInfo() (name, uid string, groups []string, extra map[string][]string) {
	if r.User == nil {
		return "", "", nil, nil
	}
	return r.User.Name, r.User.UID, r.User.Groups, r.User.Extra
}

// requestValue is the request variable: what an AdmissionReview's request
// carries, without the objects. Absent fields are present with zero
// values, so expressions need no has() for them.
func (r *Request) requestValue() map[string]any {
	if r.request != nil {
		return r.request
	}
	a := r.Attrs
	kind := map[string]any{"group": r.Kind.Group, "version": r.Kind.Version, "kind": r.Kind.Kind}
	resource := map[string]any{"group": a.Group, "version": a.Version, "resource": a.Resource}
	name, uid, groups, extra := r.UserInfo()
	g := make([]any, len(groups))
	for i, x := range groups {
		g[i] = x
	}
	e := make(map[string]any, len(extra))
	for k, vs := range extra {
		l := make([]any, len(vs))
		for i, x := range vs {
			l[i] = x
		}
		e[k] = l
	}
	var options any
	if o := r.Options(); o != nil {
		options, _ = ObjectValue(o, schema.GroupVersionKind{})
	}
	r.request = map[string]any{
		"uid":                "",
		"kind":               kind,
		"resource":           resource,
		"subResource":        a.Subresource,
		"requestKind":        kind,
		"requestResource":    resource,
		"requestSubResource": a.Subresource,
		"name":               a.Name,
		"namespace":          r.Namespace(),
		"operation":          string(a.Operation),
		"userInfo":           map[string]any{"username": name, "uid": uid, "groups": g, "extra": e},
		"dryRun":             a.DryRun,
		"options":            options,
	}
	return r.request
}

// namespaceMetadata are the metadata fields a policy's namespaceObject
// shows; the rest (managed fields, owner references) is left out as
// kube-apiserver does.
func namespaceMetadata(field string) bool {
	switch field {
	case "name", "generateName", "namespace", "uid", "resourceVersion", "generation",
		"creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
		"labels", "annotations", "finalizers":
		return true
	}
	return false
}

// NamespaceObject returns the request's namespace as policies see it
// (namespaceObject), read once per request through store. Cluster-scoped
// requests, namespaces themselves included, have none.
func (r *Request) NamespaceObject(ctx context.Context, store admission.Getter) (map[string]any, error) {
	if r.IsNamespace() || r.Attrs.Namespace == "" {
		return nil, nil
	}
	if err := r.readNamespace(ctx, store, r.Attrs.Namespace); err != nil {
		return nil, err
	}
	return r.ns, nil
}

// NamespaceLabels returns the labels a namespaceSelector is matched
// against: those of the request's namespace, or for a namespace created or
// updated, the object's own (it is not stored yet). ok is false for
// cluster-scoped requests, which namespace selectors do not filter.
func (r *Request) NamespaceLabels(ctx context.Context, store admission.Getter) (ls map[string]string, ok bool, err error) {
	if r.IsNamespace() {
		if r.Attrs.Subresource == "" && (r.Attrs.Operation == admission.Create || r.Attrs.Operation == admission.Update) {
			m, err := meta.Accessor(r.Attrs.Object)
			if err != nil {
				return nil, true, apierrors.NewInternalError(err)
			}
			return m.GetLabels(), true, nil
		}
		if err := r.readNamespace(ctx, store, r.Namespace()); err != nil {
			return nil, true, err
		}
		return r.nsLabels, true, nil
	}
	if r.Attrs.Namespace == "" {
		return nil, false, nil
	}
	if err := r.readNamespace(ctx, store, r.Attrs.Namespace); err != nil {
		return nil, true, err
	}
	return r.nsLabels, true, nil
}

// readNamespace reads namespace name once per request. A missing namespace
// is a NotFound status, as kube-apiserver answers.
func (r *Request) readNamespace(ctx context.Context, store admission.Getter, name string) error {
	if r.nsRead {
		return r.nsErr
	}
	r.nsRead = true
	r.nsErr = r.decodeNamespace(ctx, store, name)
	return r.nsErr
}

func (r *Request) decodeNamespace(ctx context.Context, store admission.Getter, name string) error {
	if store == nil {
		return apierrors.NewInternalError(errors.New("no namespace store configured"))
	}
	o, err := store.Get(ctx, r.Attrs.Cluster, storage.Key{Resource: "/namespaces", Name: name})
	if errors.Is(err, storage.ErrNotFound) {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, name)
	}
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	v, err := DecodeJSON(o.Data)
	m, ok := v.(map[string]any)
	if err != nil || !ok {
		return apierrors.NewInternalError(fmt.Errorf("decode namespace %q: %v", name, err))
	}
	if md, ok := m["metadata"].(map[string]any); ok {
		for k := range md {
			if !namespaceMetadata(k) {
				delete(md, k)
			}
		}
		if ls, ok := md["labels"].(map[string]any); ok {
			r.nsLabels = make(map[string]string, len(ls))
			for k, v := range ls {
				r.nsLabels[k], _ = v.(string)
			}
		}
	}
	r.ns = m
	return nil
}
