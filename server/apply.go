package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"unicode"

	"github.com/pgkube/pgkube/registry"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/yaml"
)

// fieldManagers keeps one FieldManager per kind and subresource: the
// structured-merge-diff machinery that records who owns which field
// (metadata.managedFields) on every write and merges server-side applies.
type fieldManagers struct {
	scheme *runtime.Scheme
	// newConverter builds the built-in kinds' type converter on first use:
	// it parses the whole OpenAPI document, which start-up need not wait
	// for.
	newConverter func() managedfields.TypeConverter
	converter    managedfields.TypeConverter
	mu           sync.Mutex
	byKey        map[fieldManagerKey]*managedfields.FieldManager
}

type fieldManagerKey struct {
	gvk         schema.GroupVersionKind
	subresource string
}

func newFieldManagers(scheme *runtime.Scheme, newConverter func() managedfields.TypeConverter) *fieldManagers {
	return &fieldManagers{scheme: scheme, newConverter: newConverter, byKey: map[fieldManagerKey]*managedfields.FieldManager{}}
}

// typeConverter makes a TypeConverter from the definitions of an OpenAPI
// v2 document: list keys and map types, so that ownership of a container
// is by its name rather than of the whole list.
func typeConverter(v2 []byte) (managedfields.TypeConverter, error) {
	var sw spec.Swagger
	if err := json.Unmarshal(v2, &sw); err != nil {
		return nil, fmt.Errorf("read OpenAPI definitions: %w", err)
	}
	defs := make(map[string]*spec.Schema, len(sw.Definitions))
	for name := range sw.Definitions {
		d := sw.Definitions[name]
		defs[name] = &d
	}
	return managedfields.NewTypeConverter(defs, false)
}

// noDefaults: objects are defaulted by the REST layer itself, before the
// field manager sees them.
type noDefaults struct{}

func (noDefaults) Default(runtime.Object) {}

// resetFields are what a write through one face of a resource may not
// change: the main resource does not own status, /status owns nothing but
// status. Apply must not claim ownership of what the write will discard.
func resetFields(res *registry.Resource, subresource string) map[fieldpath.APIVersion]fieldpath.Filter {
	if !res.Status {
		return nil
	}
	v := fieldpath.APIVersion(res.GroupVersion().String())
	switch subresource {
	case "":
		return map[fieldpath.APIVersion]fieldpath.Filter{v: fieldpath.NewExcludeSetFilter(fieldpath.NewSet(fieldpath.MakePathOrDie("status")))}
	case "status":
		return map[fieldpath.APIVersion]fieldpath.Filter{v: fieldpath.NewExcludeSetFilter(fieldpath.NewSet(
			fieldpath.MakePathOrDie("spec"), fieldpath.MakePathOrDie("metadata")))}
	}
	return nil
}

func (f *fieldManagers) get(res *registry.Resource, subresource string) (*managedfields.FieldManager, error) {
	k := fieldManagerKey{res.GVK(), subresource}
	f.mu.Lock()
	defer f.mu.Unlock()
	if m, ok := f.byKey[k]; ok {
		return m, nil
	}
	if f.converter == nil {
		if f.newConverter != nil {
			f.converter = f.newConverter()
		}
		if f.converter == nil {
			f.converter = managedfields.NewDeducedTypeConverter()
		}
	}
	var m *managedfields.FieldManager
	var err error
	if res.CRD != "" {
		// Custom resources: unstructured objects, structure deduced from
		// the objects themselves where no schema says more.
		m, err = managedfields.NewDefaultCRDFieldManager(managedfields.NewDeducedTypeConverter(), unstructuredConvertor{},
			noDefaults{}, unstructuredCreater{}, res.GVK(), res.GroupVersion(), subresource, resetFields(res, subresource))
	} else {
		m, err = managedfields.NewDefaultFieldManager(f.converter, f.scheme, noDefaults{}, f.scheme, res.GVK(),
			res.GroupVersion(), subresource, resetFields(res, subresource))
	}
	if err != nil {
		return nil, err
	}
	f.byKey[k] = m
	return m, nil
}

// managerName is who a write is recorded as: the fieldManager parameter,
// or as upstream the client's user agent up to the first '/'.
func managerName(r *http.Request) (string, error) {
	name := r.URL.Query().Get("fieldManager")
	if name == "" {
		name, _, _ = strings.Cut(r.UserAgent(), "/")
		if len(name) > 128 {
			name = name[:128]
		}
		return name, nil
	}
	var errs field.ErrorList
	if len(name) > 128 {
		errs = append(errs, field.TooLong(field.NewPath("fieldManager"), "", 128))
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			errs = append(errs, field.Invalid(field.NewPath("fieldManager"), name, "must only contain printable characters"))
			break
		}
	}
	if len(errs) > 0 {
		return "", apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "PatchOptions"}, "", errs)
	}
	return name, nil
}

// trackUpdate records a non-apply write in obj's managedFields; live is
// the version it replaces (an empty object on create). A failure keeps the
// write but not the bookkeeping, as upstream.
func (s *Server) trackUpdate(c *call, live, obj runtime.Object) (runtime.Object, error) {
	manager, err := managerName(c.r)
	if err != nil {
		return nil, err
	}
	fm, err := s.fields.get(c.res, c.ri.Subresource)
	if err != nil {
		return obj, nil
	}
	return fm.UpdateNoErrors(live, obj, manager), nil
}

// unstructuredConvertor converts custom objects between versions the way
// conversion strategy None does: only apiVersion changes.
type unstructuredConvertor struct{}

func (unstructuredConvertor) Convert(in, out, context any) error {
	u, ok1 := in.(*unstructured.Unstructured)
	o, ok2 := out.(*unstructured.Unstructured)
	if !ok1 || !ok2 {
		return fmt.Errorf("cannot convert %T to %T", in, out)
	}
	o.Object = runtime.DeepCopyJSON(u.Object)
	return nil
}

func (unstructuredConvertor) ConvertToVersion(in runtime.Object, gv runtime.GroupVersioner) (runtime.Object, error) {
	u, ok := in.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("cannot convert %T", in)
	}
	gvk, ok := gv.KindForGroupVersionKinds([]schema.GroupVersionKind{u.GroupVersionKind()})
	if !ok {
		return nil, fmt.Errorf("cannot convert %s to %v", u.GroupVersionKind(), gv)
	}
	out := u.DeepCopy()
	out.SetGroupVersionKind(gvk)
	return out, nil
}

func (unstructuredConvertor) ConvertFieldLabel(gvk schema.GroupVersionKind, label, value string) (string, string, error) {
	return label, value, nil
}

type unstructuredCreater struct{}

func (unstructuredCreater) New(gvk schema.GroupVersionKind) (runtime.Object, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	return u, nil
}

// emptyObject is the "live" object of a create.
func (s *Server) emptyObject(res *registry.Resource) (runtime.Object, error) {
	obj, err := s.cfg.Registry.NewObject(res)
	if err != nil {
		return nil, err
	}
	setGVK(obj, res.GVK())
	return obj, nil
}

// applyPatchObject merges a server-side apply configuration into cur.
func (s *Server) applyConfiguration(c *call, body []byte, cur runtime.Object) (runtime.Object, error) {
	q := c.r.URL.Query()
	manager := q.Get("fieldManager")
	if manager == "" {
		return nil, apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "PatchOptions"}, "",
			field.ErrorList{field.Required(field.NewPath("fieldManager"), "is required for apply patch")})
	}
	if _, err := managerName(c.r); err != nil {
		return nil, err
	}
	force := false
	switch q.Get("force") {
	case "", "false":
	case "true":
		force = true
	default:
		return nil, badRequest("invalid value for force: %q", q.Get("force"))
	}
	applied := &unstructured.Unstructured{}
	js, err := yaml.YAMLToJSON(body)
	if err != nil {
		return nil, badRequest("error decoding YAML: %v", err)
	}
	if err := applied.UnmarshalJSON(js); err != nil {
		return nil, badRequest("error decoding the apply configuration: %v", err)
	}
	gvk := applied.GroupVersionKind()
	if gvk != c.res.GVK() {
		return nil, badRequest("the apply configuration is a %s, but this is the %s endpoint of %s", gvk.GroupKind().String()+"/"+gvk.Version,
			c.res.Resource, c.res.GroupVersion().String())
	}
	if applied.GetName() != "" && applied.GetName() != c.ri.Name {
		return nil, badRequest("the name of the object (%s) does not match the name on the URL (%s)", applied.GetName(), c.ri.Name)
	}
	if len(applied.GetManagedFields()) > 0 {
		return nil, badRequest("metadata.managedFields must be nil")
	}
	fm, err := s.fields.get(c.res, c.ri.Subresource)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	out, err := fm.Apply(cur, applied, manager, force)
	if err != nil {
		if _, ok := err.(apierrors.APIStatus); ok {
			return nil, err
		}
		return nil, apierrors.NewInternalError(fmt.Errorf("server-side apply: %w", err))
	}
	return out, nil
}
