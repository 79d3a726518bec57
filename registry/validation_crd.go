package registry

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	admcel "github.com/pgkube/pgkube/admission/cel"
	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	openapierrors "k8s.io/kube-openapi/pkg/validation/errors"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	openapivalidate "k8s.io/kube-openapi/pkg/validation/validate"
)

// CustomResourceDefinition, checked as kube-apiserver checks it
// (apiextensions-apiserver's apis/apiextensions/validation): names, scope,
// versions, each schema's structure and Kubernetes extensions, defaults,
// printer columns, subresources and conversion.
//
// Upstream validates its internal form of the CRD, into which a v1 CRD is
// converted by hoisting: a schema, subresources or printer columns that
// every version shares move to the top of the spec and are validated once,
// so their errors are reported at spec.validation.openAPIV3Schema,
// spec.subresources and spec.additionalPrinterColumns. The paths here are
// those.
//
// On update a CRD is held only to the rules its stored form met: an error
// the stored spec has as well is not reported again, so a CRD stored
// before a rule existed can still be changed.

func validateCRD(obj, old runtime.Object) field.ErrorList {
	crd := obj.(*apiextensionsv1.CustomResourceDefinition)
	if old == nil {
		var errs field.ErrorList
		if want := crd.Spec.Names.Plural + "." + crd.Spec.Group; crd.Name != "" && crd.Name != want {
			errs = append(errs, field.Invalid(field.NewPath("metadata", "name"), crd.Name, `must be spec.names.plural+"."+spec.group`))
		}
		errs = append(errs, crdSpecErrors(&crd.Spec)...)
		errs = append(errs, crdAPIApproval(crd, nil)...)
		return append(errs, crdPreserveUnknownFields(crd, nil)...)
	}
	o := old.(*apiextensionsv1.CustomResourceDefinition)
	if specUnchanged(&crd.Spec, &o.Spec, old) {
		return crdAPIApproval(crd, o)
	}
	errs := ratchet(crdSpecErrors(&crd.Spec), crdSpecErrors(&o.Spec))
	p := field.NewPath("spec")
	// Once served, a CRD's kind and scope are what its objects are stored
	// as; group and plural make up its name, which never changes.
	if crdEstablished(o) {
		errs = append(errs, apivalidation.ValidateImmutableField(crd.Spec.Scope, o.Spec.Scope, p.Child("scope"))...)
		errs = append(errs, apivalidation.ValidateImmutableField(crd.Spec.Names.Kind, o.Spec.Names.Kind, p.Child("names", "kind"))...)
	}
	errs = append(errs, apivalidation.ValidateImmutableField(crd.Spec.Group, o.Spec.Group, p.Child("group"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(crd.Spec.Names.Plural, o.Spec.Names.Plural, p.Child("names", "plural"))...)
	errs = append(errs, crdAPIApproval(crd, o)...)
	return append(errs, crdPreserveUnknownFields(crd, o)...)
}

// ratchet drops the errors the stored object has too.
func ratchet(errs, stored field.ErrorList) field.ErrorList {
	if len(errs) == 0 || len(stored) == 0 {
		return errs
	}
	key := func(e *field.Error) string { return string(e.Type) + "\x00" + e.Field + "\x00" + e.Detail }
	had := map[string]bool{}
	for _, e := range stored {
		had[key(e)] = true
	}
	var out field.ErrorList
	for _, e := range errs {
		if !had[key(e)] {
			out = append(out, e)
		}
	}
	return out
}

func crdEstablished(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established {
			return c.Status == apiextensionsv1.ConditionTrue
		}
	}
	return false
}

// crdAPIApproval: groups of the Kubernetes project itself (k8s.io,
// kubernetes.io) need the approval annotation, with a URL or a reason
// starting "unapproved". A stored state that does not change is never
// judged again.
func crdAPIApproval(crd, old *apiextensionsv1.CustomResourceDefinition) field.ErrorList {
	g := crd.Spec.Group
	if g != "k8s.io" && !strings.HasSuffix(g, ".k8s.io") && g != "kubernetes.io" && !strings.HasSuffix(g, ".kubernetes.io") {
		return nil
	}
	state, msg := approvalState(crd.Annotations)
	if old != nil {
		if was, _ := approvalState(old.Annotations); was == state {
			return nil
		}
	}
	p := field.NewPath("metadata", "annotations").Key(apiextensionsv1.KubeAPIApprovedAnnotation)
	switch state {
	case "missing":
		return field.ErrorList{field.Required(p, msg)}
	case "invalid":
		return field.ErrorList{field.Invalid(p, crd.Annotations[apiextensionsv1.KubeAPIApprovedAnnotation], msg)}
	}
	return nil
}

func approvalState(annotations map[string]string) (state, msg string) {
	v := annotations[apiextensionsv1.KubeAPIApprovedAnnotation]
	const see = ", see https://github.com/kubernetes/enhancements/pull/1111"
	u, err := url.ParseRequestURI(v)
	switch {
	case v == "":
		return "missing", fmt.Sprintf("protected groups must have approval annotation %q", apiextensionsv1.KubeAPIApprovedAnnotation) + see
	case strings.HasPrefix(v, "unapproved"):
		return "bypassed", ""
	case err == nil && u.Host != "" && u.Scheme != "":
		return "approved", ""
	}
	return "invalid", fmt.Sprintf("protected groups must have approval annotation %q with either a URL or a reason starting with \"unapproved\"",
		apiextensionsv1.KubeAPIApprovedAnnotation) + see
}

// crdPreserveUnknownFields: the v1beta1 way of keeping unknown fields may
// stay where it was stored, but not be switched on.
func crdPreserveUnknownFields(crd, old *apiextensionsv1.CustomResourceDefinition) field.ErrorList {
	if !crd.Spec.PreserveUnknownFields || old != nil && old.Spec.PreserveUnknownFields {
		return nil
	}
	return field.ErrorList{field.Invalid(field.NewPath("spec", "preserveUnknownFields"), true,
		"cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead")}
}

// crdLayout is a spec as upstream sees it after hoisting.
type crdLayout struct {
	spec                                *apiextensionsv1.CustomResourceDefinitionSpec
	sharedSchema, sharedSub, sharedCols bool
}

func newCRDLayout(s *apiextensionsv1.CustomResourceDefinitionSpec) crdLayout {
	l := crdLayout{spec: s}
	if len(s.Versions) == 0 {
		return l
	}
	l.sharedSchema, l.sharedSub, l.sharedCols = true, true, true
	first := &s.Versions[0]
	for i := range s.Versions[1:] {
		v := &s.Versions[i+1]
		l.sharedSchema = l.sharedSchema && equality.Semantic.DeepEqual(v.Schema, first.Schema)
		l.sharedSub = l.sharedSub && equality.Semantic.DeepEqual(v.Subresources, first.Subresources)
		l.sharedCols = l.sharedCols && equality.Semantic.DeepEqual(v.AdditionalPrinterColumns, first.AdditionalPrinterColumns)
	}
	return l
}

// topSchema, topSubresources, topColumns: what is hoisted (nil if the
// versions differ).
func (l crdLayout) topSchema() *apiextensionsv1.CustomResourceValidation {
	if l.sharedSchema {
		return l.spec.Versions[0].Schema
	}
	return nil
}

func (l crdLayout) topSubresources() *apiextensionsv1.CustomResourceSubresources {
	if l.sharedSub {
		return l.spec.Versions[0].Subresources
	}
	return nil
}

func (l crdLayout) topColumns() []apiextensionsv1.CustomResourceColumnDefinition {
	if l.sharedCols {
		return l.spec.Versions[0].AdditionalPrinterColumns
	}
	return nil
}

// version i's own schema, subresources and columns: none if hoisted.
func (l crdLayout) versionSchema(i int) *apiextensionsv1.CustomResourceValidation {
	if l.sharedSchema {
		return nil
	}
	return l.spec.Versions[i].Schema
}

func (l crdLayout) versionSubresources(i int) *apiextensionsv1.CustomResourceSubresources {
	if l.sharedSub {
		return nil
	}
	return l.spec.Versions[i].Subresources
}

func (l crdLayout) versionColumns(i int) []apiextensionsv1.CustomResourceColumnDefinition {
	if l.sharedCols {
		return nil
	}
	return l.spec.Versions[i].AdditionalPrinterColumns
}

// anySchema tells whether any schema, hoisted or not, satisfies pred.
func (l crdLayout) anySchema(pred func(*apiextensionsv1.JSONSchemaProps) bool) bool {
	for _, v := range l.spec.Versions {
		if v.Schema != nil && v.Schema.OpenAPIV3Schema != nil && schemaHas(v.Schema.OpenAPIV3Schema, pred) {
			return true
		}
	}
	return false
}

// internalVersions renders the versions as upstream's messages print
// them: its internal type's JSON, after hoisting.
func (l crdLayout) internalVersions() any {
	out := make([]apiextensions.CustomResourceDefinitionVersion, len(l.spec.Versions))
	for i := range l.spec.Versions {
		v := l.spec.Versions[i]
		if l.sharedSchema {
			v.Schema = nil
		}
		if l.sharedSub {
			v.Subresources = nil
		}
		if l.sharedCols {
			v.AdditionalPrinterColumns = nil
		}
		if err := apiextensionsv1.Convert_v1_CustomResourceDefinitionVersion_To_apiextensions_CustomResourceDefinitionVersion(&v, &out[i], nil); err != nil {
			return l.spec.Versions
		}
	}
	return out
}

var (
	crdScopes     = []string{string(apiextensionsv1.ClusterScoped), string(apiextensionsv1.NamespaceScoped)}
	crdConverters = []string{string(apiextensionsv1.NoneConverter), string(apiextensionsv1.WebhookConverter)}
	columnTypes   = []string{"boolean", "date", "integer", "number", "string"}
	columnFormats = []string{"byte", "date", "date-time", "double", "float", "int32", "int64", "password"}
	openAPITypes  = []string{"array", "boolean", "integer", "number", "object", "string"}
	listTypes     = []string{"atomic", "set", "map"}
	mapTypes      = []string{"atomic", "granular"}
	ruleReasons   = []string{"FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"}
)

func crdSpecErrors(s *apiextensionsv1.CustomResourceDefinitionSpec) field.ErrorList {
	p := field.NewPath("spec")
	l := newCRDLayout(s)
	var errs field.ErrorList

	switch gp := p.Child("group"); {
	case s.Group == "":
		errs = append(errs, field.Required(gp, ""))
	case len(validation.IsDNS1123Subdomain(s.Group)) > 0:
		errs = append(errs, field.Invalid(gp, s.Group, strings.Join(validation.IsDNS1123Subdomain(s.Group), ",")))
	case !strings.Contains(s.Group, "."):
		errs = append(errs, field.Invalid(gp, s.Group, "should be a domain with at least one dot"))
	}
	switch {
	case s.Scope == "":
		errs = append(errs, field.Required(p.Child("scope"), ""))
	case !contains(crdScopes, string(s.Scope)):
		errs = append(errs, field.NotSupported(p.Child("scope"), s.Scope, crdScopes))
	}

	// Every version needs a schema (since v1): without one, everything
	// would be pruned.
	vp := p.Child("versions")
	if top := l.topSchema(); top == nil || top.OpenAPIV3Schema == nil {
		for i := range s.Versions {
			if vs := l.versionSchema(i); vs == nil || vs.OpenAPIV3Schema == nil {
				errs = append(errs, field.Required(vp.Index(i).Child("schema", "openAPIV3Schema"), ""))
			}
		}
	}
	if s.PreserveUnknownFields && l.anySchema(func(x *apiextensionsv1.JSONSchemaProps) bool { return x.Default != nil }) {
		errs = append(errs, field.Invalid(p.Child("preserveUnknownFields"), true, "must be false in order to use defaults in the schema"))
	}

	storage, unique, seen := 0, true, map[string]bool{}
	for i := range s.Versions {
		v := &s.Versions[i]
		if v.Storage {
			storage++
		}
		if seen[v.Name] {
			unique = false
		}
		seen[v.Name] = true
		ip := vp.Index(i)
		if msgs := validation.IsDNS1035Label(v.Name); len(msgs) > 0 {
			errs = append(errs, field.Invalid(ip.Child("name"), v.Name, strings.Join(msgs, ",")))
		}
		// hoisted or not, the version's own subresources apply to it
		sub := v.Subresources
		for _, msg := range deprecationWarning(v.Deprecated, v.DeprecationWarning) {
			errs = append(errs, field.Invalid(ip.Child("deprecationWarning"), v.DeprecationWarning, msg))
		}
		errs = append(errs, crdSchema(l.versionSchema(i), sub != nil && sub.Status != nil, ip.Child("schema"))...)
		errs = append(errs, crdSubresources(l.versionSubresources(i), ip.Child("subresources"))...)
		for j, c := range l.versionColumns(i) {
			errs = append(errs, printerColumn(&c, ip.Child("additionalPrinterColumns").Index(j))...)
		}
	}
	if !unique {
		errs = append(errs, field.Invalid(vp, l.internalVersions(), "must contain unique version names"))
	}
	if storage != 1 {
		errs = append(errs, field.Invalid(vp, l.internalVersions(), "must have exactly one version marked as storage version"))
	}
	// Upstream's internal form names the first version once more.
	if len(s.Versions) > 0 && s.Versions[0].Name != "" {
		if msgs := validation.IsDNS1035Label(s.Versions[0].Name); len(msgs) > 0 {
			errs = append(errs, field.Invalid(p.Child("version"), s.Versions[0].Name, strings.Join(msgs, ",")))
		}
	}

	np := p.Child("names")
	for _, n := range []struct{ name, value string }{
		{"plural", s.Names.Plural}, {"singular", s.Names.Singular}, {"kind", s.Names.Kind}, {"listKind", s.Names.ListKind},
	} {
		if n.value == "" {
			errs = append(errs, field.Required(np.Child(n.name), ""))
		}
	}
	errs = append(errs, crdNames(&s.Names, np)...)

	statusAnywhere := false
	for _, v := range s.Versions {
		statusAnywhere = statusAnywhere || v.Subresources != nil && v.Subresources.Status != nil
	}
	errs = append(errs, crdSchema(l.topSchema(), statusAnywhere, p.Child("validation"))...)
	errs = append(errs, crdSubresources(l.topSubresources(), p.Child("subresources"))...)
	for j, c := range l.topColumns() {
		errs = append(errs, printerColumn(&c, p.Child("additionalPrinterColumns").Index(j))...)
	}

	if c := s.Conversion; c != nil && c.Strategy != apiextensionsv1.NoneConverter && s.PreserveUnknownFields {
		errs = append(errs, field.Invalid(p.Child("conversion", "strategy"), c.Strategy, "must be None if spec.preserveUnknownFields is true"))
	}
	return append(errs, crdConversion(s.Conversion, p.Child("conversion"))...)
}

func deprecationWarning(deprecated bool, warning *string) []string {
	if !deprecated && warning != nil {
		return []string{"can only be set for deprecated versions"}
	}
	if warning == nil {
		return nil
	}
	var msgs []string
	w := *warning
	if len(w) > 256 {
		msgs = append(msgs, "must be <= 256 characters long")
	}
	if w == "" {
		msgs = append(msgs, "must not be an empty string")
	}
	for i, r := range w {
		if !unicode.IsPrint(r) {
			msgs = append(msgs, fmt.Sprintf("must only contain printable UTF-8 characters; non-printable character found at index %d", i))
			break
		}
		if unicode.IsControl(r) {
			msgs = append(msgs, fmt.Sprintf("must only contain printable UTF-8 characters; control character found at index %d", i))
			break
		}
	}
	if !utf8.ValidString(w) {
		msgs = append(msgs, "must only contain printable UTF-8 characters")
	}
	return msgs
}

// crdNames: every name is a DNS label (kinds in any case), and a kind and
// its list kind differ, or lists could not be told apart.
func crdNames(n *apiextensionsv1.CustomResourceDefinitionNames, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	label := func(v string, fp *field.Path) {
		if v == "" {
			return
		}
		if msgs := validation.IsDNS1035Label(v); len(msgs) > 0 {
			errs = append(errs, field.Invalid(fp, v, strings.Join(msgs, ",")))
		}
	}
	mixedCase := func(v string, fp *field.Path) {
		if v == "" {
			return
		}
		if msgs := validation.IsDNS1035Label(strings.ToLower(v)); len(msgs) > 0 {
			errs = append(errs, field.Invalid(fp, v, "may have mixed case, but should otherwise match: "+strings.Join(msgs, ",")))
		}
	}
	label(n.Plural, p.Child("plural"))
	label(n.Singular, p.Child("singular"))
	mixedCase(n.Kind, p.Child("kind"))
	mixedCase(n.ListKind, p.Child("listKind"))
	for i, s := range n.ShortNames {
		if msgs := validation.IsDNS1035Label(s); len(msgs) > 0 {
			errs = append(errs, field.Invalid(p.Child("shortNames").Index(i), s, strings.Join(msgs, ",")))
		}
	}
	if n.Kind != "" && n.Kind == n.ListKind {
		errs = append(errs, field.Invalid(p.Child("listKind"), n.ListKind, "kind and listKind may not be the same"))
	}
	for i, c := range n.Categories {
		if msgs := validation.IsDNS1035Label(c); len(msgs) > 0 {
			errs = append(errs, field.Invalid(p.Child("categories").Index(i), c, strings.Join(msgs, ",")))
		}
	}
	return errs
}

func printerColumn(c *apiextensionsv1.CustomResourceColumnDefinition, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if c.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	}
	typesMsg := "must be one of " + strings.Join(columnTypes, ",")
	switch {
	case c.Type == "":
		errs = append(errs, field.Required(p.Child("type"), typesMsg))
	case !contains(columnTypes, c.Type):
		errs = append(errs, field.Invalid(p.Child("type"), c.Type, typesMsg))
	}
	if c.Format != "" && !contains(columnFormats, c.Format) {
		errs = append(errs, field.Invalid(p.Child("format"), c.Format, "must be one of "+strings.Join(columnFormats, ",")))
	}
	// The internal type's field name.
	jp := p.Child("JSONPath")
	if c.JSONPath == "" {
		errs = append(errs, field.Required(jp, ""))
	} else {
		errs = append(errs, simpleJSONPath(c.JSONPath, jp)...)
	}
	return errs
}

// simpleJSONPath: a path in dot notation from the object's root.
func simpleJSONPath(s string, p *field.Path) field.ErrorList {
	switch {
	case s == "":
		return field.ErrorList{field.Invalid(p, s, "must not be empty")}
	case s[0] != '.':
		return field.ErrorList{field.Invalid(p, s, "must be a simple json path starting with .")}
	}
	return nil
}

func crdSubresources(sub *apiextensionsv1.CustomResourceSubresources, p *field.Path) field.ErrorList {
	if sub == nil || sub.Scale == nil {
		return nil
	}
	sc := sub.Scale
	var errs field.ErrorList
	under := func(path string, fp *field.Path, prefixes []string, msg string) {
		if e := simpleJSONPath(path, fp); len(e) > 0 {
			errs = append(errs, e...)
			return
		}
		for _, pre := range prefixes {
			if strings.HasPrefix(path, pre) {
				return
			}
		}
		errs = append(errs, field.Invalid(fp, path, msg))
	}
	if sc.SpecReplicasPath == "" {
		errs = append(errs, field.Required(p.Child("scale.specReplicasPath"), ""))
	} else {
		under(sc.SpecReplicasPath, p.Child("scale.specReplicasPath"), []string{".spec."}, "should be a json path under .spec")
	}
	if sc.StatusReplicasPath == "" {
		errs = append(errs, field.Required(p.Child("scale.statusReplicasPath"), ""))
	} else {
		under(sc.StatusReplicasPath, p.Child("scale.statusReplicasPath"), []string{".status."}, "should be a json path under .status")
	}
	if lp := sc.LabelSelectorPath; lp != nil && *lp != "" {
		under(*lp, p.Child("scale.labelSelectorPath"), []string{".spec.", ".status."}, "should be a json path under either .spec or .status")
	}
	return errs
}

// crdConversion: None needs nothing; Webhook needs a reachable webhook
// and the ConversionReview versions it understands. Upstream's internal
// type has the webhook's fields on the conversion itself, hence the paths.
func crdConversion(c *apiextensionsv1.CustomResourceConversion, p *field.Path) field.ErrorList {
	if c == nil {
		return nil
	}
	var errs field.ErrorList
	switch {
	case c.Strategy == "":
		errs = append(errs, field.Required(p.Child("strategy"), ""))
	case !contains(crdConverters, string(c.Strategy)):
		errs = append(errs, field.NotSupported(p.Child("strategy"), c.Strategy, crdConverters))
	}
	var cc *apiextensionsv1.WebhookClientConfig
	var versions []string
	if c.Webhook != nil {
		cc, versions = c.Webhook.ClientConfig, c.Webhook.ConversionReviewVersions
	}
	wp, rp := p.Child("webhookClientConfig"), p.Child("conversionReviewVersions")
	if c.Strategy != apiextensionsv1.WebhookConverter {
		if cc != nil {
			errs = append(errs, field.Forbidden(wp, "should not be set when strategy is not set to Webhook"))
		}
		if len(versions) > 0 {
			errs = append(errs, field.Forbidden(rp, "should not be set when strategy is not set to Webhook"))
		}
		return errs
	}
	switch {
	case cc == nil:
		errs = append(errs, field.Required(wp, "required when strategy is set to Webhook"))
	case (cc.URL == nil) == (cc.Service == nil):
		errs = append(errs, field.Required(wp, "exactly one of url or service is required"))
	case cc.URL != nil:
		errs = append(errs, webhookURL(*cc.URL, wp.Child("url"))...)
	default:
		port := int32(443)
		if cc.Service.Port != nil {
			port = *cc.Service.Port
		}
		errs = append(errs, webhookService(cc.Service.Namespace, cc.Service.Name, cc.Service.Path, port, wp.Child("service"))...)
	}
	if len(versions) == 0 {
		return append(errs, field.Required(rp, ""))
	}
	seen := map[string]bool{}
	for i, v := range versions {
		if seen[v] {
			errs = append(errs, field.Invalid(rp.Index(i), v, "duplicate version"))
			continue
		}
		seen[v] = true
		errs = append(errs, nameMessages(validation.IsDNS1035Label(v), v, rp.Index(i))...)
	}
	// The ConversionReview versions are the AdmissionReview ones.
	if !containsAny(versions, reviewVersions) {
		errs = append(errs, field.Invalid(rp, versions, "must include at least one of "+strings.Join(reviewVersions, ", ")))
	}
	return errs
}

// Schemas.

// rootFieldsWithStatus are the only fields a root schema may use when
// the status subresource is on (status is validated on its own then, as
// properties[status]), in the order upstream's internal type has them.
var rootFieldsWithStatus = []string{"Description", "Type", "Format", "Title", "Maximum", "ExclusiveMaximum", "Minimum",
	"ExclusiveMinimum", "MaxLength", "MinLength", "Pattern", "MaxItems", "MinItems", "UniqueItems", "MultipleOf", "Required",
	"Items", "Properties", "ExternalDocs", "Example", "XPreserveUnknownFields", "XValidations"}

func crdSchema(cv *apiextensionsv1.CustomResourceValidation, statusEnabled bool, p *field.Path) field.ErrorList {
	if cv == nil || cv.OpenAPIV3Schema == nil {
		return nil
	}
	s := cv.OpenAPIV3Schema
	sp := p.Child("openAPIV3Schema")
	var errs field.ErrorList
	if statusEnabled {
		errs = append(errs, rootWithStatus(s, p)...)
	}
	if s.Nullable {
		errs = append(errs, field.Forbidden(p.Child("openAPIV3Schema.nullable"), "nullable cannot be true at the root"))
	}
	// A schema that cannot even be read as a structural one is judged by
	// the other rules alone; why it cannot is told only if they find
	// nothing.
	unreadable := unstructurable(s)
	var structural field.ErrorList
	if unreadable == "" {
		structural = structuralErrors(s, sp)
		if len(structural) > 0 {
			errs = append(errs, structural...)
		} else {
			errs = append(errs, defaultErrors(s, sp, true, false)...)
		}
	}
	w := schemaWalk{allowDefaults: true, celOK: unreadable == "" && len(structural) == 0}
	schemaErrs, celErrs := w.check(s, sp, true)
	errs = append(append(errs, schemaErrs...), celErrs...)
	if len(errs) == 0 && unreadable != "" {
		errs = append(errs, field.Invalid(sp, "", unreadable))
	}
	return errs
}

// unstructurable tells why s has no structural form: keywords a
// structural schema has no place for, or an items array.
func unstructurable(s *apiextensionsv1.JSONSchemaProps) string {
	if s == nil {
		return ""
	}
	for _, u := range []struct {
		set  bool
		name string
	}{{s.ID != "", "id"}, {s.Schema != "", "schema"}, {s.Ref != nil && *s.Ref != "", "$ref"},
		{len(s.PatternProperties) > 0, "patternProperties"}, {len(s.Dependencies) > 0, "dependencies"},
		{s.AdditionalItems != nil, "additionalItems"}, {len(s.Definitions) > 0, "definitions"}} {
		if u.set {
			return fmt.Sprintf("OpenAPIV3Schema '%s' is not supported", u.name)
		}
	}
	for _, list := range [][]apiextensionsv1.JSONSchemaProps{s.AllOf, s.AnyOf, s.OneOf} {
		for i := range list {
			if msg := unstructurable(&list[i]); msg != "" {
				return msg
			}
		}
	}
	if msg := unstructurable(s.Not); msg != "" {
		return msg
	}
	if s.XPreserveUnknownFields != nil && !*s.XPreserveUnknownFields {
		return "internal error: 'x-kubernetes-preserve-unknown-fields' must be true or undefined"
	}
	if s.Items != nil {
		if len(s.Items.JSONSchemas) > 0 {
			return "OpenAPIV3Schema 'items' must be a schema, but is an array"
		}
		if msg := unstructurable(s.Items.Schema); msg != "" {
			return msg
		}
	}
	for _, k := range sortedStringKeys(s.Properties) {
		prop := s.Properties[k]
		if msg := unstructurable(&prop); msg != "" {
			return msg
		}
	}
	if s.AdditionalProperties != nil {
		return unstructurable(s.AdditionalProperties.Schema)
	}
	return ""
}

// rootWithStatus: the first field, in upstream's order, that a root
// schema may not have with the status subresource on.
func rootWithStatus(s *apiextensionsv1.JSONSchemaProps, p *field.Path) field.ErrorList {
	var in apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(s, &in, nil); err != nil {
		return nil
	}
	v := reflect.ValueOf(in)
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).IsZero() {
			continue
		}
		name := v.Type().Field(i).Name
		if name == "Type" {
			if in.Type != "object" {
				return field.ErrorList{field.Invalid(p.Child("openAPIV3Schema.type"), in.Type,
					`only "object" is allowed as the type at the root of the schema if the status subresource is enabled`)}
			}
			continue
		}
		if !slices.Contains(rootFieldsWithStatus, name) {
			return field.ErrorList{field.Invalid(p.Child("openAPIV3Schema"), in,
				fmt.Sprintf("only %v fields are allowed at the root of the schema if the status subresource is enabled", rootFieldsWithStatus))}
		}
	}
	return nil
}

// schemaHas visits every schema under s, depth first, until pred holds.
func schemaHas(s *apiextensionsv1.JSONSchemaProps, pred func(*apiextensionsv1.JSONSchemaProps) bool) bool {
	if s == nil {
		return false
	}
	if pred(s) {
		return true
	}
	if s.Items != nil {
		if schemaHas(s.Items.Schema, pred) {
			return true
		}
		for i := range s.Items.JSONSchemas {
			if schemaHas(&s.Items.JSONSchemas[i], pred) {
				return true
			}
		}
	}
	for _, list := range [][]apiextensionsv1.JSONSchemaProps{s.AllOf, s.AnyOf, s.OneOf} {
		for i := range list {
			if schemaHas(&list[i], pred) {
				return true
			}
		}
	}
	if schemaHas(s.Not, pred) {
		return true
	}
	for _, m := range []map[string]apiextensionsv1.JSONSchemaProps{s.Properties, s.PatternProperties, s.Definitions} {
		for _, sub := range m {
			if schemaHas(&sub, pred) {
				return true
			}
		}
	}
	if s.AdditionalProperties != nil && schemaHas(s.AdditionalProperties.Schema, pred) {
		return true
	}
	if s.AdditionalItems != nil && schemaHas(s.AdditionalItems.Schema, pred) {
		return true
	}
	for _, d := range s.Dependencies {
		if schemaHas(d.Schema, pred) {
			return true
		}
	}
	return false
}

// Structural schemas: every node says what its value is (a type, or
// int-or-string, or preserve-unknown-fields), and the logical junctors
// (allOf, anyOf, oneOf, not) only add value validations to what the
// structural part already declares.

type schemaLevel int

const (
	rootLevel schemaLevel = iota
	itemLevel
	fieldLevel
)

func structuralErrors(s *apiextensionsv1.JSONSchemaProps, p *field.Path) field.ErrorList {
	errs := structuralInvariants(s, rootLevel, p)
	errs = append(errs, completeness(s, p)...)
	// Upstream sorts these, its schemas being maps.
	slices.SortStableFunc(errs, func(a, b *field.Error) int { return strings.Compare(a.Error(), b.Error()) })
	return errs
}

func preserves(s *apiextensionsv1.JSONSchemaProps) bool {
	return s.XPreserveUnknownFields != nil && *s.XPreserveUnknownFields
}

func itemsSchema(s *apiextensionsv1.JSONSchemaProps) *apiextensionsv1.JSONSchemaProps {
	if s.Items == nil {
		return nil
	}
	return s.Items.Schema
}

var metaKeys = []string{"apiVersion", "kind", "metadata"}

func structuralInvariants(s *apiextensionsv1.JSONSchemaProps, lvl schemaLevel, p *field.Path) field.ErrorList {
	if s == nil {
		return nil
	}
	var errs field.ErrorList
	if s.Type == "array" && itemsSchema(s) == nil {
		errs = append(errs, field.Required(p.Child("items"), "must be specified"))
	}
	errs = append(errs, structuralInvariants(itemsSchema(s), itemLevel, p.Child("items"))...)
	for _, k := range sortedStringKeys(s.Properties) {
		prop := s.Properties[k]
		errs = append(errs, structuralInvariants(&prop, fieldLevel, p.Child("properties").Key(k))...)
	}
	if ap := s.AdditionalProperties; ap != nil {
		if lvl == rootLevel {
			errs = append(errs, field.Forbidden(p.Child("additionalProperties"), "must not be used at the root"))
		}
		errs = append(errs, structuralInvariants(ap.Schema, fieldLevel, p.Child("additionalProperties"))...)
	}
	if s.XIntOrString && preserves(s) {
		errs = append(errs, field.Invalid(p.Child("x-kubernetes-preserve-unknown-fields"), true, "must be false if x-kubernetes-int-or-string is true"))
	}
	if s.XIntOrString && s.XEmbeddedResource {
		errs = append(errs, field.Invalid(p.Child("x-kubernetes-embedded-resource"), true, "must be false if x-kubernetes-int-or-string is true"))
	}
	errs = append(errs, junctors(s, intOrStringAnyOf(s.AnyOf), len(s.AllOf) > 0 && intOrStringAnyOf(s.AllOf[0].AnyOf), p)...)

	switch {
	case s.XEmbeddedResource && s.Type == "":
		errs = append(errs, field.Required(p.Child("type"), "must be object if x-kubernetes-embedded-resource is true"))
	case s.XEmbeddedResource && s.Type != "object":
		errs = append(errs, field.Invalid(p.Child("type"), s.Type, "must be object if x-kubernetes-embedded-resource is true"))
	case s.Type == "" && !s.XIntOrString && !preserves(s):
		msg := map[schemaLevel]string{rootLevel: "must not be empty at the root", itemLevel: "must not be empty for specified array items",
			fieldLevel: "must not be empty for specified object fields"}[lvl]
		errs = append(errs, field.Required(p.Child("type"), msg))
	}
	if s.XEmbeddedResource && s.AdditionalProperties != nil {
		errs = append(errs, field.Forbidden(p.Child("additionalProperties"), "must not be used if x-kubernetes-embedded-resource is set"))
	}
	if lvl == rootLevel && s.Type != "" && s.Type != "object" {
		errs = append(errs, field.Invalid(p.Child("type"), s.Type, "must be object at the root"))
	}
	resourceRoot := lvl == rootLevel || s.XEmbeddedResource
	for _, k := range []string{"kind", "apiVersion"} {
		if prop, ok := s.Properties[k]; ok && resourceRoot && prop.Type != "string" {
			errs = append(errs, field.Invalid(p.Child("properties").Key(k).Child("type"), prop.Type, "must be string"))
		}
	}
	if meta, ok := s.Properties["metadata"]; ok {
		mp := p.Child("properties").Key("metadata")
		if resourceRoot && meta.Type != "object" {
			errs = append(errs, field.Invalid(mp.Child("type"), meta.Type, "must be object"))
		}
		if lvl == rootLevel && !onlyNames(&meta) {
			errs = append(errs, field.Forbidden(mp, "must not specify anything other than name and generateName, but metadata is implicitly specified"))
		}
	}
	if s.XEmbeddedResource && !preserves(s) && len(s.Properties) == 0 {
		errs = append(errs, field.Required(p.Child("properties"), "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"))
	}
	return errs
}

// onlyNames: the root's metadata is ObjectMeta, which a CRD may narrow only
// in name and generateName; beyond its type (and a default, judged
// elsewhere) nothing else may be said of it.
func onlyNames(m *apiextensionsv1.JSONSchemaProps) bool {
	c := *m
	c.Type, c.Default = "", nil
	_, name := c.Properties["name"]
	_, generateName := c.Properties["generateName"]
	if n := len(c.Properties); name && generateName && n == 2 || (name || generateName) && n == 1 {
		c.Properties = nil
	}
	if c.XPreserveUnknownFields != nil && !*c.XPreserveUnknownFields {
		c.XPreserveUnknownFields = nil // false is the structural default
	}
	return equality.Semantic.DeepEqual(c, apiextensionsv1.JSONSchemaProps{})
}

// intOrStringAnyOf is the one anyOf that may carry types: integer or
// string, the shape of x-kubernetes-int-or-string.
func intOrStringAnyOf(anyOf []apiextensionsv1.JSONSchemaProps) bool {
	return len(anyOf) == 2 && equality.Semantic.DeepEqual(anyOf[0], apiextensionsv1.JSONSchemaProps{Type: "integer"}) &&
		equality.Semantic.DeepEqual(anyOf[1], apiextensionsv1.JSONSchemaProps{Type: "string"})
}

// junctors checks the value validations of s: what its allOf, anyOf,
// oneOf and not say, and its pattern.
func junctors(s *apiextensionsv1.JSONSchemaProps, skipAnyOf, skipFirstAllOfAnyOf bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if !skipAnyOf {
		for i := range s.AnyOf {
			errs = append(errs, nestedValidation(&s.AnyOf[i], false, p.Child("anyOf").Index(i))...)
		}
	}
	for i := range s.AllOf {
		errs = append(errs, nestedValidation(&s.AllOf[i], skipFirstAllOfAnyOf && i == 0, p.Child("allOf").Index(i))...)
	}
	for i := range s.OneOf {
		errs = append(errs, nestedValidation(&s.OneOf[i], false, p.Child("oneOf").Index(i))...)
	}
	if s.Not != nil {
		errs = append(errs, nestedValidation(s.Not, false, p.Child("not"))...)
	}
	if s.Pattern != "" {
		if _, err := regexp.Compile(s.Pattern); err != nil {
			errs = append(errs, field.Invalid(p.Child("pattern"), s.Pattern, fmt.Sprintf("must be a valid regular expression, but isn't: %v", err)))
		}
	}
	return errs
}

// nestedValidation: inside a junctor, a schema only validates values; it
// may not declare types, defaults, documentation or extensions.
func nestedValidation(s *apiextensionsv1.JSONSchemaProps, skipAnyOf bool, p *field.Path) field.ErrorList {
	errs := junctors(s, skipAnyOf, false, p)
	if it := itemsSchema(s); it != nil {
		errs = append(errs, nestedValidation(it, false, p.Child("items"))...)
	}
	for _, k := range sortedStringKeys(s.Properties) {
		prop := s.Properties[k]
		errs = append(errs, nestedValidation(&prop, false, p.Child("properties").Key(k))...)
	}
	forbid := func(set bool, name, msg string) {
		if set {
			errs = append(errs, field.Forbidden(p.Child(name), msg))
		}
	}
	const empty, undefined, isFalse = "must be empty to be structural", "must be undefined to be structural", "must be false to be structural"
	forbid(s.Type != "", "type", empty)
	forbid(s.AdditionalProperties != nil, "additionalProperties", undefined)
	forbid(s.Default != nil, "default", undefined)
	forbid(s.Title != "", "title", empty)
	forbid(s.Description != "", "description", empty)
	forbid(s.Nullable, "nullable", isFalse)
	forbid(preserves(s), "x-kubernetes-preserve-unknown-fields", isFalse)
	forbid(s.XEmbeddedResource, "x-kubernetes-embedded-resource", isFalse)
	forbid(s.XIntOrString, "x-kubernetes-int-or-string", isFalse)
	forbid(len(s.XListMapKeys) > 0, "x-kubernetes-list-map-keys", empty)
	forbid(s.XListType != nil, "x-kubernetes-list-type", undefined)
	forbid(s.XMapType != nil, "x-kubernetes-map-type", undefined)
	forbid(len(s.XValidations) > 0, "x-kubernetes-validations", empty)
	if _, ok := s.Properties["metadata"]; ok {
		errs = append(errs, field.Forbidden(p.Child("properties").Key("metadata"), "must not be specified in a nested context"))
	}
	return errs
}

// completeness: what the root's junctors validate must exist in the
// structural part of the schema, properties and items alike.
func completeness(s *apiextensionsv1.JSONSchemaProps, p *field.Path) field.ErrorList {
	return junctorCompleteness(s, s, p, p)
}

func junctorCompleteness(v, s *apiextensionsv1.JSONSchemaProps, sp, vp *field.Path) field.ErrorList {
	var errs field.ErrorList
	if v.Not != nil {
		errs = append(errs, nestedCompleteness(v.Not, s, sp, vp.Child("not"))...)
	}
	for i := range v.AllOf {
		errs = append(errs, nestedCompleteness(&v.AllOf[i], s, sp, vp.Child("allOf").Index(i))...)
	}
	for i := range v.AnyOf {
		errs = append(errs, nestedCompleteness(&v.AnyOf[i], s, sp, vp.Child("anyOf").Index(i))...)
	}
	for i := range v.OneOf {
		errs = append(errs, nestedCompleteness(&v.OneOf[i], s, sp, vp.Child("oneOf").Index(i))...)
	}
	return errs
}

func nestedCompleteness(v, s *apiextensionsv1.JSONSchemaProps, sp, vp *field.Path) field.ErrorList {
	if s == nil {
		return field.ErrorList{field.Required(sp, "because it is defined in "+vp.String())}
	}
	errs := junctorCompleteness(v, s, sp, vp)
	if it := itemsSchema(v); it != nil {
		errs = append(errs, nestedCompleteness(it, itemsSchema(s), sp.Child("items"), vp.Child("items"))...)
	}
	for _, k := range sortedStringKeys(v.Properties) {
		prop := v.Properties[k]
		sProp, ok := s.Properties[k]
		if !ok {
			errs = append(errs, field.Required(sp.Child("properties").Key(k), "because it is defined in "+vp.Child("properties").Key(k).String()))
			continue
		}
		errs = append(errs, nestedCompleteness(&prop, &sProp, sp.Child("properties").Key(k), vp.Child("properties").Key(k))...)
	}
	return errs
}

// Defaults: each must be what its own schema accepts, with nothing
// pruning would drop. Defaults within ObjectMeta or TypeMeta (of an
// embedded resource) are left alone here.
func defaultErrors(s *apiextensionsv1.JSONSchemaProps, p *field.Path, resourceRoot, insideMeta bool) field.ErrorList {
	if s == nil {
		return nil
	}
	if s.XEmbeddedResource {
		insideMeta, resourceRoot = false, true
	}
	var errs field.ErrorList
	if s.Default != nil && !insideMeta {
		errs = append(errs, checkDefault(s, p.Child("default"))...)
	}
	errs = append(errs, defaultErrors(itemsSchema(s), p.Child("items"), false, insideMeta)...)
	for _, k := range sortedStringKeys(s.Properties) {
		prop := s.Properties[k]
		sub := insideMeta || resourceRoot && slices.Contains(metaKeys, k)
		errs = append(errs, defaultErrors(&prop, p.Child("properties").Key(k), false, sub)...)
	}
	return errs
}

func checkDefault(s *apiextensionsv1.JSONSchemaProps, p *field.Path) field.ErrorList {
	var v, pruned any
	if err := json.Unmarshal(s.Default.Raw, &v); err != nil {
		return field.ErrorList{field.Invalid(p, string(s.Default.Raw), err.Error())}
	}
	var errs field.ErrorList
	_ = json.Unmarshal(s.Default.Raw, &pruned)
	pruneValue(pruned, s)
	if !equality.Semantic.DeepEqual(v, pruned) {
		errs = append(errs, field.Invalid(p, v, "must not have unknown fields"))
	}
	return append(errs, schemaValueErrors(s, v, p)...)
}

// schemaValueErrors validates v against s as kube-apiserver validates
// custom resources, and reports what fails as it does.
func schemaValueErrors(s *apiextensionsv1.JSONSchemaProps, v any, p *field.Path) field.ErrorList {
	raw, err := json.Marshal(s)
	if err != nil {
		return nil
	}
	var os spec.Schema
	if err := json.Unmarshal(raw, &os); err != nil {
		return nil
	}
	res := openapivalidate.NewSchemaValidator(&os, nil, "", strfmt.Default).Validate(v)
	if res == nil || res.IsValid() {
		return nil
	}
	var errs field.ErrorList
	for _, e := range res.Errors {
		ve, ok := e.(*openapierrors.Validation)
		if !ok {
			errs = append(errs, field.Invalid(p, "", e.Error()))
			continue
		}
		ep := p
		if ve.Name != "" && ve.Name != "." {
			ep = ep.Child(strings.TrimPrefix(ve.Name, "."))
		}
		value := ve.Value
		if value == nil {
			value = ""
		}
		asInt := func(x any) int {
			if i, ok := x.(int64); ok {
				return int(i)
			}
			return -1
		}
		switch ve.Code() {
		case openapierrors.RequiredFailCode:
			errs = append(errs, field.Required(ep, ""))
		case openapierrors.EnumFailCode:
			var allowed []string
			for _, a := range ve.Values {
				if str, ok := a.(string); ok {
					allowed = append(allowed, str)
				} else {
					j, _ := json.Marshal(a)
					allowed = append(allowed, string(j))
				}
			}
			errs = append(errs, field.NotSupported(ep, ve.Value, allowed))
		case openapierrors.TooLongFailCode:
			errs = append(errs, field.TooLong(ep, "", asInt(ve.Valid)))
		case openapierrors.MaxItemsFailCode, openapierrors.TooManyPropertiesCode:
			errs = append(errs, field.TooMany(ep, asInt(ve.Value), asInt(ve.Valid)))
		case openapierrors.InvalidTypeCode:
			errs = append(errs, field.TypeInvalid(ep, value, ve.Error()))
		default:
			errs = append(errs, field.Invalid(ep, value, ve.Error()))
		}
	}
	return errs
}

// schemaWalk is how a schema node is judged, by where it is.
type schemaWalk struct {
	allowDefaults    bool
	noDefaultsReason string
	insideMeta       bool
	// celOK: the schema is structural, so its rules can be compiled.
	celOK bool
}

func (w schemaWalk) forbidDefaults(reason string) schemaWalk {
	w.allowDefaults, w.noDefaultsReason = false, reason
	return w
}

// check returns the schema errors of s and below, and, apart, the errors
// of its CEL rules (reported after all schema errors, and only where a
// node and what is below it have none).
func (w schemaWalk) check(s *apiextensionsv1.JSONSchemaProps, p *field.Path, root bool) (field.ErrorList, field.ErrorList) {
	if s == nil {
		return nil, nil
	}
	errs := w.node(s, p)
	var celErrs field.ErrorList
	add := func(e, c field.ErrorList) {
		errs = append(errs, e...)
		celErrs = append(celErrs, c...)
	}
	if s.UniqueItems {
		errs = append(errs, field.Forbidden(p.Child("uniqueItems"), "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"))
	}
	// properties are for structs, additionalProperties for maps.
	if ap := s.AdditionalProperties; ap != nil {
		if len(s.Properties) > 0 && (!ap.Allows || ap.Schema != nil) {
			errs = append(errs, field.Forbidden(p.Child("additionalProperties"), "additionalProperties and properties are mutual exclusive"))
		}
		sub := w
		if w.insideMeta {
			sub = w.forbidDefaults("inside additionalProperties applying to object metadata")
		}
		add(sub.check(ap.Schema, p.Child("additionalProperties"), false))
	}
	for _, k := range sortedStringKeys(s.Properties) {
		prop := s.Properties[k]
		sub := w
		if (root || s.XEmbeddedResource) && slices.Contains(metaKeys, k) {
			sub.insideMeta = true
			if root {
				sub = sub.forbidDefaults("in top-level " + k)
			}
		}
		add(sub.check(&prop, p.Child("properties").Key(k), false))
	}
	if s.Not != nil {
		e, _ := w.noCEL().check(s.Not, p.Child("not"), false)
		errs = append(errs, e...)
	}
	for _, j := range []struct {
		name string
		list []apiextensionsv1.JSONSchemaProps
	}{{"allOf", s.AllOf}, {"oneOf", s.OneOf}, {"anyOf", s.AnyOf}} {
		for i := range j.list {
			e, _ := w.noCEL().check(&j.list[i], p.Child(j.name).Index(i), false)
			errs = append(errs, e...)
		}
	}
	for _, k := range sortedStringKeys(s.Definitions) {
		d := s.Definitions[k]
		e, _ := w.noCEL().check(&d, p.Child("definitions").Key(k), false)
		errs = append(errs, e...)
	}
	if s.Items != nil {
		add(w.check(s.Items.Schema, p.Child("items"), false))
		for i := range s.Items.JSONSchemas {
			add(w.check(&s.Items.JSONSchemas[i], p.Child("items").Index(i), false))
		}
	}
	for _, k := range sortedStringKeys(s.Dependencies) {
		e, _ := w.noCEL().check(s.Dependencies[k].Schema, p.Child("dependencies").Key(k), false)
		errs = append(errs, e...)
	}
	errs = append(errs, extensions(s, p)...)
	errs = append(errs, listKeysAndItems(s, p)...)
	ruleErrs, rulesCEL := w.rules(s, p, len(errs) == 0)
	errs = append(errs, ruleErrs...)
	return errs, append(celErrs, rulesCEL...)
}

func (w schemaWalk) noCEL() schemaWalk {
	w.celOK = false
	return w
}

// node: what no schema node may say, wherever it is.
func (w schemaWalk) node(s *apiextensionsv1.JSONSchemaProps, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Type != "" && !contains(openAPITypes, s.Type) {
		errs = append(errs, field.NotSupported(p.Child("type"), s.Type, openAPITypes))
	}
	if s.Default != nil && !w.allowDefaults {
		msg := "must not be set"
		if w.noDefaultsReason != "" {
			msg += " " + w.noDefaultsReason
		}
		errs = append(errs, field.Forbidden(p.Child("default"), msg))
	}
	unsupported := func(set bool, name string) {
		if set {
			errs = append(errs, field.Forbidden(p.Child(name), name+" is not supported"))
		}
	}
	unsupported(s.ID != "", "id")
	unsupported(s.AdditionalItems != nil, "additionalItems")
	unsupported(len(s.PatternProperties) > 0, "patternProperties")
	unsupported(len(s.Definitions) > 0, "definitions")
	unsupported(s.Dependencies != nil, "dependencies")
	unsupported(s.Ref != nil, "$ref")
	if s.Type == "null" {
		errs = append(errs, field.Forbidden(p.Child("type"), "type cannot be set to null, use nullable as an alternative"))
	}
	if s.Items != nil && len(s.Items.JSONSchemas) > 0 {
		errs = append(errs, field.Forbidden(p.Child("items"), "items must be a schema object and not an array"))
	}
	if w.insideMeta && s.XEmbeddedResource {
		errs = append(errs, field.Forbidden(p.Child("x-kubernetes-embedded-resource"), "must not be used inside of resource meta"))
	}
	return errs
}

// extensions: x-kubernetes-preserve-unknown-fields, -map-type and
// -list-type, each on the kind of node it applies to.
func extensions(s *apiextensionsv1.JSONSchemaProps, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.XPreserveUnknownFields != nil && !*s.XPreserveUnknownFields {
		errs = append(errs, field.Invalid(p.Child("x-kubernetes-preserve-unknown-fields"), false, "must be true or undefined"))
	}
	typeFor := func(want, ext string) {
		msg := "must be " + want + " if " + ext + " is specified"
		if s.Type == "" {
			errs = append(errs, field.Required(p.Child("type"), msg))
		} else {
			errs = append(errs, field.Invalid(p.Child("type"), s.Type, msg))
		}
	}
	if s.XMapType != nil && s.Type != "object" {
		typeFor("object", "x-kubernetes-map-type")
	}
	if s.XMapType != nil && !contains(mapTypes, *s.XMapType) {
		errs = append(errs, field.NotSupported(p.Child("x-kubernetes-map-type"), *s.XMapType, mapTypes))
	}
	if s.XListType != nil && s.Type != "array" {
		typeFor("array", "x-kubernetes-list-type")
	} else if s.XListType != nil && *s.XListType == "set" && itemsSchema(s) != nil {
		// A set's items are compared whole, so they must be atomic.
		const msg = "must be atomic as item of a list with x-kubernetes-list-type=set"
		is := itemsSchema(s)
		switch is.Type {
		case "array":
			if is.XListType != nil && *is.XListType != "atomic" {
				errs = append(errs, field.Invalid(p.Child("items", "x-kubernetes-list-type"), is.XListType, msg))
			}
		case "object":
			if is.XMapType == nil || *is.XMapType != "atomic" {
				// (upstream reports the items' list type here)
				errs = append(errs, field.Invalid(p.Child("items", "x-kubernetes-map-type"), is.XListType, msg))
			}
		}
	}
	if s.XListType != nil && !contains(listTypes, *s.XListType) {
		errs = append(errs, field.NotSupported(p.Child("x-kubernetes-list-type"), *s.XListType, listTypes))
	}
	return errs
}

// listKeysAndItems: a map list is a list of objects keyed by scalar
// properties that always have a value; set and map items are never null.
func listKeysAndItems(s *apiextensionsv1.JSONSchemaProps, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	lt := ""
	if s.XListType != nil {
		lt = *s.XListType
	}
	kp := p.Child("x-kubernetes-list-map-keys")
	if len(s.XListMapKeys) > 0 {
		const msg = "must be map if x-kubernetes-list-map-keys is non-empty"
		if s.XListType == nil {
			errs = append(errs, field.Required(p.Child("x-kubernetes-list-type"), msg))
		} else if lt != "map" {
			errs = append(errs, field.Invalid(p.Child("x-kubernetes-list-type"), lt, msg))
		}
	}
	items := itemsSchema(s)
	ip := p.Child("items")
	if lt == "map" {
		if len(s.XListMapKeys) == 0 {
			errs = append(errs, field.Required(kp, "must not be empty if x-kubernetes-list-type is map"))
		}
		switch {
		case s.Items == nil:
			errs = append(errs, field.Required(ip, "must have a schema if x-kubernetes-list-type is map"))
		case items == nil:
			errs = append(errs, field.Invalid(ip, s.Items, "must only have a single schema if x-kubernetes-list-type is map"))
		case items.Type != "object":
			errs = append(errs, field.Invalid(ip.Child("type"), items.Type, "must be object if parent array's x-kubernetes-list-type is map"))
		default:
			seen := map[string]bool{}
			for _, k := range s.XListMapKeys {
				if prop, ok := items.Properties[k]; !ok {
					errs = append(errs, field.Invalid(kp, s.XListMapKeys, "entries must all be names of item properties"))
				} else if prop.Type == "array" || prop.Type == "object" {
					errs = append(errs, field.Invalid(ip.Child("properties").Key(k).Child("type"), items.Type,
						"must be a scalar type if parent array's x-kubernetes-list-type is map"))
				}
				if seen[k] {
					errs = append(errs, field.Invalid(kp, s.XListMapKeys, "must not contain duplicate entries"))
				}
				seen[k] = true
			}
		}
	}
	if items == nil || (lt != "set" && lt != "map") {
		return errs
	}
	if items.Nullable {
		errs = append(errs, field.Forbidden(ip.Child("nullable"), "cannot be nullable when x-kubernetes-list-type is "+lt))
	}
	if lt == "map" {
		for _, k := range s.XListMapKeys {
			prop, ok := items.Properties[k]
			if !ok {
				continue
			}
			pp := ip.Child("properties").Key(k)
			if !slices.Contains(items.Required, k) && prop.Default == nil {
				errs = append(errs, field.Required(pp.Child("default"), "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"))
			}
			if prop.Nullable {
				errs = append(errs, field.Forbidden(pp.Child("nullable"), "this property is in x-kubernetes-list-map-keys, so it cannot be nullable"))
			}
		}
	}
	return errs
}

// rules checks x-kubernetes-validations: the schema errors of each rule,
// and, where the schema is otherwise sound, whether it compiles.
func (w schemaWalk) rules(s *apiextensionsv1.JSONSchemaProps, p *field.Path, soundBelow bool) (field.ErrorList, field.ErrorList) {
	if len(s.XValidations) == 0 {
		return nil, nil
	}
	var errs, celErrs field.ErrorList
	for i, r := range s.XValidations {
		rp := p.Child("x-kubernetes-validations").Index(i)
		rule, msg, msgExpr := strings.TrimSpace(r.Rule), strings.TrimSpace(r.Message), strings.TrimSpace(r.MessageExpression)
		switch {
		case rule == "":
			errs = append(errs, field.Required(rp.Child("rule"), "rule is not specified"))
		case r.Message != "" && msg == "":
			errs = append(errs, field.Invalid(rp.Child("message"), r.Message, "must be non-empty if specified"))
		case lineBreaks.MatchString(msg):
			errs = append(errs, field.Invalid(rp.Child("message"), r.Message, "must not contain line breaks"))
		case lineBreaks.MatchString(rule) && msg == "":
			errs = append(errs, field.Required(rp.Child("message"), "message must be specified if rule contains line breaks"))
		}
		if r.MessageExpression != "" && msgExpr == "" {
			errs = append(errs, field.Required(rp.Child("messageExpression"), "messageExpression must be non-empty if specified"))
		}
		if r.Reason != nil && !contains(ruleReasons, string(*r.Reason)) {
			errs = append(errs, field.NotSupported(rp.Child("reason"), *r.Reason, ruleReasons))
		}
		if r.FieldPath != "" && strings.TrimSpace(r.FieldPath) == "" {
			errs = append(errs, field.Invalid(rp.Child("fieldPath"), r.FieldPath, "must be non-empty if specified"))
		}
		if lineBreaks.MatchString(r.FieldPath) {
			errs = append(errs, field.Invalid(rp.Child("fieldPath"), r.FieldPath, "must not contain line breaks"))
		}
	}
	if !w.celOK || !soundBelow || len(errs) > 0 {
		return errs, nil
	}
	for i := range s.XValidations {
		r := &s.XValidations[i]
		rp := p.Child("x-kubernetes-validations").Index(i)
		if strings.TrimSpace(r.Rule) == "" {
			continue
		}
		var shown apiextensions.ValidationRule
		_ = apiextensionsv1.Convert_v1_ValidationRule_To_apiextensions_ValidationRule(r, &shown, nil)
		if e := ruleCompiles(r.Rule, admcel.BoolResult, "", "cel expression must evaluate to a bool"); e != "" {
			celErrs = append(celErrs, field.Invalid(rp.Child("rule"), shown, e))
		}
		if strings.TrimSpace(r.MessageExpression) != "" {
			if e := ruleCompiles(r.MessageExpression, admcel.StringResult, "messageExpression ", "messageExpression must evaluate to a string"); e != "" {
				celErrs = append(celErrs, field.Invalid(rp.Child("messageExpression"), shown, e))
			}
		}
	}
	return errs, celErrs
}

var ruleEnv = func() *admcel.Env {
	env, err := admcel.NewEnv("self", "oldSelf")
	if err != nil {
		panic(err) // fixed declarations
	}
	return env
}()

// ruleCompiles gives upstream's message for a CRD rule that does not
// compile, or "" (also where only upstream's own libraries are missing).
// self is untyped here, so only what is wrong whatever the schema is
// found.
func ruleCompiles(expr string, want admcel.Result, prefix, typeMsg string) string {
	_, err := ruleEnv.Compile(expr, want)
	if err == nil {
		return ""
	}
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "must evaluate to "):
		return typeMsg
	case !strings.HasPrefix(msg, "compilation failed: ") || onlyUpstreamLibraries(msg):
		return ""
	}
	return prefix + msg
}
