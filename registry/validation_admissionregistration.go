package registry

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"

	admcel "github.com/pgkube/pgkube/admission/cel"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/validate/content"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Admission configuration: webhook configurations, validating admission
// policies and their bindings, checked as kube-apiserver checks them
// (pkg/apis/admissionregistration/validation), CEL expressions included.

// The values upstream accepts, in the sorted order its messages list them.
var (
	failurePolicies      = []string{string(admissionregistrationv1.Fail), string(admissionregistrationv1.Ignore)}
	matchPolicies        = []string{string(admissionregistrationv1.Equivalent), string(admissionregistrationv1.Exact)}
	reinvocationPolicies = []string{string(admissionregistrationv1.IfNeededReinvocationPolicy), string(admissionregistrationv1.NeverReinvocationPolicy)}
	ruleOperations       = []string{string(admissionregistrationv1.OperationAll), string(admissionregistrationv1.Connect),
		string(admissionregistrationv1.Create), string(admissionregistrationv1.Delete), string(admissionregistrationv1.Update)}
	ruleScopes = []string{string(admissionregistrationv1.AllScopes), string(admissionregistrationv1.ClusterScope),
		string(admissionregistrationv1.NamespacedScope)}
	// Only webhooks free of side effects may be registered now; the
	// other classes survive in configurations stored before that rule.
	noSideEffects  = []string{string(admissionregistrationv1.SideEffectClassNone), string(admissionregistrationv1.SideEffectClassNoneOnDryRun)}
	anySideEffects = []string{string(admissionregistrationv1.SideEffectClassNone), string(admissionregistrationv1.SideEffectClassNoneOnDryRun),
		string(admissionregistrationv1.SideEffectClassSome), string(admissionregistrationv1.SideEffectClassUnknown)}
	// The AdmissionReview versions the API server can send.
	reviewVersions    = []string{"v1", "v1beta1"}
	validationActions = []string{string(admissionregistrationv1.Audit), string(admissionregistrationv1.Deny), string(admissionregistrationv1.Warn)}
	validationReasons = []string{string(metav1.StatusReasonForbidden), string(metav1.StatusReasonInvalid), string(metav1.StatusReasonRequestEntityTooLarge)}
	notFoundActions   = []string{string(admissionregistrationv1.DenyAction), string(admissionregistrationv1.AllowAction)}
)

const (
	maxMatchConditions          = 64
	maxAuditAnnotations         = 20
	maxAuditAnnotationExprBytes = 5 * 1024
)

// webhookRules is how strict a webhook configuration is judged. A new
// configuration meets every rule; an update is held only to the rules its
// stored form already met, so that tightened rules never lock an old
// configuration out of being changed (or deleted through finalizers).
type webhookRules struct {
	noSideEffects, knownReviewVersion, uniqueNames, strictSelectors bool
	// skipConditions: the match conditions are unchanged, so they are not
	// compiled again (a CEL library may have changed under them).
	skipConditions bool
}

var strictWebhookRules = webhookRules{noSideEffects: true, knownReviewVersion: true, uniqueNames: true, strictSelectors: true}

// webhookView is what the two webhook flavours share, for validation.
type webhookView struct {
	name                       string
	rules                      []admissionregistrationv1.RuleWithOperations
	failurePolicy              *admissionregistrationv1.FailurePolicyType
	matchPolicy                *admissionregistrationv1.MatchPolicyType
	sideEffects                *admissionregistrationv1.SideEffectClass
	timeoutSeconds             *int32
	namespaceSelector, objects *metav1.LabelSelector
	reinvocation               *admissionregistrationv1.ReinvocationPolicyType
	clientConfig               *admissionregistrationv1.WebhookClientConfig
	reviewVersions             []string
	matchConditions            []admissionregistrationv1.MatchCondition
}

func mutatingViews(hooks []admissionregistrationv1.MutatingWebhook) []webhookView {
	out := make([]webhookView, len(hooks))
	for i := range hooks {
		h := &hooks[i]
		out[i] = webhookView{name: h.Name, rules: h.Rules, failurePolicy: h.FailurePolicy, matchPolicy: h.MatchPolicy,
			sideEffects: h.SideEffects, timeoutSeconds: h.TimeoutSeconds, namespaceSelector: h.NamespaceSelector,
			objects: h.ObjectSelector, reinvocation: h.ReinvocationPolicy, clientConfig: &h.ClientConfig,
			reviewVersions: h.AdmissionReviewVersions, matchConditions: h.MatchConditions}
	}
	return out
}

func validatingViews(hooks []admissionregistrationv1.ValidatingWebhook) []webhookView {
	out := make([]webhookView, len(hooks))
	for i := range hooks {
		h := &hooks[i]
		out[i] = webhookView{name: h.Name, rules: h.Rules, failurePolicy: h.FailurePolicy, matchPolicy: h.MatchPolicy,
			sideEffects: h.SideEffects, timeoutSeconds: h.TimeoutSeconds, namespaceSelector: h.NamespaceSelector,
			objects: h.ObjectSelector, clientConfig: &h.ClientConfig,
			reviewVersions: h.AdmissionReviewVersions, matchConditions: h.MatchConditions}
	}
	return out
}

func validateMutatingWebhookConfiguration(obj, old runtime.Object) field.ErrorList {
	c := obj.(*admissionregistrationv1.MutatingWebhookConfiguration)
	hooks := mutatingViews(c.Webhooks)
	rules := strictWebhookRules
	if old != nil {
		o := old.(*admissionregistrationv1.MutatingWebhookConfiguration)
		if equality.Semantic.DeepEqual(c.Webhooks, o.Webhooks) {
			return nil
		}
		rules = rulesAfter(hooks, mutatingViews(o.Webhooks))
	}
	return validateWebhooks(hooks, rules)
}

func validateValidatingWebhookConfiguration(obj, old runtime.Object) field.ErrorList {
	c := obj.(*admissionregistrationv1.ValidatingWebhookConfiguration)
	hooks := validatingViews(c.Webhooks)
	rules := strictWebhookRules
	if old != nil {
		o := old.(*admissionregistrationv1.ValidatingWebhookConfiguration)
		if equality.Semantic.DeepEqual(c.Webhooks, o.Webhooks) {
			return nil
		}
		rules = rulesAfter(hooks, validatingViews(o.Webhooks))
	}
	return validateWebhooks(hooks, rules)
}

// rulesAfter: the rules an update is held to, given the stored webhooks.
func rulesAfter(hooks, old []webhookView) webhookRules {
	r := webhookRules{noSideEffects: true, knownReviewVersion: true, uniqueNames: true, strictSelectors: true,
		skipConditions: len(hooks) == len(old)}
	seen := map[string]bool{}
	for i, h := range old {
		if h.sideEffects == nil || !contains(noSideEffects, string(*h.sideEffects)) {
			r.noSideEffects = false
		}
		if len(h.reviewVersions) > 0 && !containsAny(h.reviewVersions, reviewVersions) {
			r.knownReviewVersion = false
		}
		if seen[h.name] {
			r.uniqueNames = false
		}
		seen[h.name] = true
		for _, sel := range []*metav1.LabelSelector{h.namespaceSelector, h.objects} {
			if sel != nil && len(metavalidation.ValidateLabelSelector(sel, metavalidation.LabelSelectorValidationOptions{}, nil)) > 0 {
				r.strictSelectors = false
			}
		}
		if r.skipConditions && !equality.Semantic.DeepEqual(hooks[i].matchConditions, h.matchConditions) {
			r.skipConditions = false
		}
	}
	return r
}

func containsAny(list, wanted []string) bool {
	for _, w := range wanted {
		if contains(list, w) {
			return true
		}
	}
	return false
}

func validateWebhooks(hooks []webhookView, rules webhookRules) field.ErrorList {
	var errs field.ErrorList
	names := map[string]bool{}
	for i := range hooks {
		h := &hooks[i]
		p := field.NewPath("webhooks").Index(i)
		errs = append(errs, validateWebhook(h, rules, p)...)
		errs = append(errs, admissionReviewVersions(h.reviewVersions, rules.knownReviewVersion, p.Child("admissionReviewVersions"))...)
		if rules.uniqueNames && h.name != "" {
			if names[h.name] {
				errs = append(errs, field.Duplicate(p.Child("name"), h.name))
			}
			names[h.name] = true
		}
	}
	return errs
}

func validateWebhook(h *webhookView, rules webhookRules, p *field.Path) field.ErrorList {
	// Webhook names are fully qualified, so that two parties' webhooks
	// never share one.
	errs := validation.IsFullyQualifiedName(p.Child("name"), h.name)
	for i := range h.rules {
		errs = append(errs, ruleWithOperations(&h.rules[i], p.Child("rules").Index(i))...)
	}
	if h.failurePolicy != nil && !contains(failurePolicies, string(*h.failurePolicy)) {
		errs = append(errs, field.NotSupported(p.Child("failurePolicy"), *h.failurePolicy, failurePolicies))
	}
	if h.matchPolicy != nil && !contains(matchPolicies, string(*h.matchPolicy)) {
		errs = append(errs, field.NotSupported(p.Child("matchPolicy"), *h.matchPolicy, matchPolicies))
	}
	allowed := anySideEffects
	if rules.noSideEffects {
		allowed = noSideEffects
	}
	switch {
	case h.sideEffects == nil:
		errs = append(errs, field.Required(p.Child("sideEffects"), "must specify one of "+strings.Join(allowed, ", ")))
	case !contains(allowed, string(*h.sideEffects)):
		errs = append(errs, field.NotSupported(p.Child("sideEffects"), *h.sideEffects, allowed))
	}
	if t := h.timeoutSeconds; t != nil && (*t < 1 || *t > 30) {
		errs = append(errs, field.Invalid(p.Child("timeoutSeconds"), *t, "the timeout value must be between 1 and 30 seconds"))
	}
	opts := metavalidation.LabelSelectorValidationOptions{AllowInvalidLabelValueInSelector: !rules.strictSelectors}
	if h.namespaceSelector != nil {
		errs = append(errs, metavalidation.ValidateLabelSelector(h.namespaceSelector, opts, p.Child("namespaceSelector"))...)
	}
	if h.objects != nil {
		errs = append(errs, metavalidation.ValidateLabelSelector(h.objects, opts, p.Child("objectSelector"))...)
	}
	if h.reinvocation != nil && !contains(reinvocationPolicies, string(*h.reinvocation)) {
		errs = append(errs, field.NotSupported(p.Child("reinvocationPolicy"), *h.reinvocation, reinvocationPolicies))
	}
	errs = append(errs, webhookClientConfig(h.clientConfig.URL, h.clientConfig.Service, p.Child("clientConfig"))...)
	if !rules.skipConditions {
		errs = append(errs, matchConditions(h.matchConditions, celDecls{authorizer: true}, p.Child("matchConditions"))...)
	}
	return errs
}

// webhookClientConfig: a webhook (or a CRD's conversion webhook) is
// reached either by URL or through a service, never both.
func webhookClientConfig(u *string, svc *admissionregistrationv1.ServiceReference, p *field.Path) field.ErrorList {
	switch {
	case (u == nil) == (svc == nil):
		return field.ErrorList{field.Required(p, "exactly one of url or service is required")}
	case u != nil:
		return webhookURL(*u, p.Child("url"))
	default:
		port := int32(443)
		if svc.Port != nil {
			port = *svc.Port
		}
		return webhookService(svc.Namespace, svc.Name, svc.Path, port, p.Child("service"))
	}
}

const webhookURLForm = "; desired format: https://host[/path]"

// webhookURL: HTTPS to a named host, with nothing that would not reach
// the server intact (credentials, a fragment) or that the API server sets
// itself (the query).
func webhookURL(raw string, p *field.Path) field.ErrorList {
	u, err := url.Parse(raw)
	if err != nil {
		return field.ErrorList{field.Required(p, "url must be a valid URL: "+err.Error()+webhookURLForm)}
	}
	var errs field.ErrorList
	if u.Scheme != "https" {
		errs = append(errs, field.Invalid(p, u.Scheme, "'https' is the only allowed URL scheme"+webhookURLForm))
	}
	if u.Host == "" {
		errs = append(errs, field.Invalid(p, u.Host, "host must be specified"+webhookURLForm))
	}
	if u.User != nil {
		errs = append(errs, field.Invalid(p, u.User.String(), "user information is not permitted in the URL"))
	}
	if u.Fragment != "" {
		errs = append(errs, field.Invalid(p, u.Fragment, "fragments are not permitted in the URL"))
	}
	if u.RawQuery != "" {
		errs = append(errs, field.Invalid(p, u.RawQuery, "query parameters are not permitted in the URL"))
	}
	return errs
}

// webhookService: a service by namespace and name, a valid port, and a
// path of DNS-subdomain segments.
func webhookService(namespace, name string, path *string, port int32, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	}
	if namespace == "" {
		errs = append(errs, field.Required(p.Child("namespace"), ""))
	}
	if msgs := validation.IsValidPortNum(int(port)); len(msgs) > 0 {
		errs = append(errs, field.Invalid(p.Child("port"), port, "port is not valid: "+strings.Join(msgs, ", ")))
	}
	if path == nil || *path == "" || *path == "/" {
		return errs
	}
	pp, v := p.Child("path"), *path
	if v == "//" {
		return append(errs, field.Invalid(pp, v, "segment[0] may not be empty"))
	}
	if !strings.HasPrefix(v, "/") {
		errs = append(errs, field.Invalid(pp, v, "must start with a '/'"))
	}
	segments := strings.TrimSuffix(v[1:], "/")
	for i, seg := range strings.Split(segments, "/") {
		if seg == "" {
			errs = append(errs, field.Invalid(pp, v, fmt.Sprintf("segment[%d] may not be empty", i)))
			continue
		}
		for _, msg := range validation.IsDNS1123Subdomain(seg) {
			errs = append(errs, field.Invalid(pp, v, fmt.Sprintf("segment[%d]: %v", i, msg)))
		}
	}
	return errs
}

func admissionReviewVersions(versions []string, requireKnown bool, p *field.Path) field.ErrorList {
	if len(versions) == 0 {
		return field.ErrorList{field.Required(p, "must specify one of "+strings.Join(reviewVersions, ", "))}
	}
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, v := range versions {
		if seen[v] {
			errs = append(errs, field.Invalid(p.Index(i), v, "duplicate version"))
			continue
		}
		seen[v] = true
		errs = append(errs, nameMessages(validation.IsDNS1035Label(v), v, p.Index(i))...)
	}
	if requireKnown && !containsAny(versions, reviewVersions) {
		errs = append(errs, field.Invalid(p, versions, "must include at least one of "+strings.Join(reviewVersions, ", ")))
	}
	return errs
}

func ruleWithOperations(r *admissionregistrationv1.RuleWithOperations, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	op := p.Child("operations")
	if len(r.Operations) == 0 {
		errs = append(errs, field.Required(op, ""))
	}
	if len(r.Operations) > 1 && hasStar(r.Operations) {
		errs = append(errs, field.Invalid(op, r.Operations, "if '*' is present, must not specify other operations"))
	}
	for i, o := range r.Operations {
		if !contains(ruleOperations, string(o)) {
			errs = append(errs, field.NotSupported(op.Index(i), o, ruleOperations))
		}
	}
	return append(errs, admissionRule(&r.Rule, p)...)
}

func hasStar[S ~string](list []S) bool {
	for _, s := range list {
		if s == "*" {
			return true
		}
	}
	return false
}

func admissionRule(r *admissionregistrationv1.Rule, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	// The core group is the empty string, so a group may be empty; a list
	// of none may not.
	if len(r.APIGroups) == 0 {
		errs = append(errs, field.Required(p.Child("apiGroups"), ""))
	}
	if len(r.APIGroups) > 1 && hasStar(r.APIGroups) {
		errs = append(errs, field.Invalid(p.Child("apiGroups"), r.APIGroups, "if '*' is present, must not specify other API groups"))
	}
	if len(r.APIVersions) == 0 {
		errs = append(errs, field.Required(p.Child("apiVersions"), ""))
	}
	if len(r.APIVersions) > 1 && hasStar(r.APIVersions) {
		errs = append(errs, field.Invalid(p.Child("apiVersions"), r.APIVersions, "if '*' is present, must not specify other API versions"))
	}
	for i, v := range r.APIVersions {
		if v == "" {
			errs = append(errs, field.Required(p.Child("apiVersions").Index(i), ""))
		}
	}
	errs = append(errs, ruleResources(r.Resources, p.Child("resources"))...)
	if r.Scope != nil && !contains(ruleScopes, string(*r.Scope)) {
		errs = append(errs, field.NotSupported(p.Child("scope"), *r.Scope, ruleScopes))
	}
	return errs
}

// ruleResources: resource or resource/subresource, where a wildcard on
// either side makes the entries it covers redundant, and so refused.
func ruleResources(resources []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(resources) == 0 {
		errs = append(errs, field.Required(p, ""))
	}
	anySub := map[string]bool{}      // "x/*" seen
	anyResource := map[string]bool{} // "*/x" seen
	allAll, all, plain := false, false, false
	for i, rs := range resources {
		if rs == "" {
			errs = append(errs, field.Required(p.Index(i), ""))
			continue
		}
		allAll = allAll || rs == "*/*"
		all = all || rs == "*"
		res, sub, found := strings.Cut(rs, "/")
		if !found {
			// as upstream, the last entry without a subresource decides
			plain = rs != "*"
			continue
		}
		if anySub[res] {
			errs = append(errs, field.Invalid(p.Index(i), rs, fmt.Sprintf("if '%s/*' is present, must not specify %s", res, rs)))
		}
		if anyResource[sub] {
			errs = append(errs, field.Invalid(p.Index(i), rs, fmt.Sprintf("if '*/%s' is present, must not specify %s", sub, rs)))
		}
		if sub == "*" {
			anySub[res] = true
		}
		if res == "*" {
			anyResource[sub] = true
		}
	}
	if len(resources) > 1 && allAll {
		errs = append(errs, field.Invalid(p, resources, "if '*/*' is present, must not specify other resources"))
	}
	if all && plain {
		errs = append(errs, field.Invalid(p, resources, "if '*' is present, must not specify other resources without subresources"))
	}
	return errs
}

func matchConditions(conds []admissionregistrationv1.MatchCondition, decls celDecls, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(conds) > maxMatchConditions {
		errs = append(errs, field.TooMany(p, len(conds), maxMatchConditions))
	}
	names := map[string]bool{}
	for i, c := range conds {
		cp := p.Index(i)
		if expr := strings.TrimSpace(c.Expression); expr == "" {
			errs = append(errs, field.Required(cp.Child("expression"), ""))
		} else {
			errs = append(errs, celExpression(expr, admcel.BoolResult, decls, cp.Child("expression"))...)
		}
		if c.Name == "" {
			errs = append(errs, field.Required(cp.Child("name"), ""))
		} else {
			errs = append(errs, qualifiedName(c.Name, cp.Child("name"))...)
			if names[c.Name] {
				errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
			}
			names[c.Name] = true
		}
	}
	return errs
}

// ValidatingAdmissionPolicy.

func validateValidatingAdmissionPolicy(obj, old runtime.Object) field.ErrorList {
	pol := obj.(*admissionregistrationv1.ValidatingAdmissionPolicy)
	skipConditions := false
	if old != nil {
		o := old.(*admissionregistrationv1.ValidatingAdmissionPolicy)
		if specUnchanged(&pol.Spec, &o.Spec, old) {
			return nil
		}
		skipConditions = equality.Semantic.DeepEqual(pol.Spec.ParamKind, o.Spec.ParamKind) &&
			equality.Semantic.DeepEqual(pol.Spec.MatchConditions, o.Spec.MatchConditions)
	}
	s := &pol.Spec
	p := field.NewPath("spec")
	var errs field.ErrorList
	// failurePolicy is required but defaulted: only a wrong value is left
	// to refuse.
	if s.FailurePolicy != nil && !contains(failurePolicies, string(*s.FailurePolicy)) {
		errs = append(errs, field.NotSupported(p.Child("failurePolicy"), *s.FailurePolicy, failurePolicies))
	}
	hasParams := s.ParamKind != nil
	if hasParams {
		errs = append(errs, paramKind(s.ParamKind, p.Child("paramKind"))...)
	}
	if s.MatchConstraints == nil {
		errs = append(errs, field.Required(p.Child("matchConstraints"), ""))
	} else {
		errs = append(errs, matchResources(s.MatchConstraints, p.Child("matchConstraints"))...)
		// The rules are what tells the policy's expressions their types.
		if len(s.MatchConstraints.ResourceRules) == 0 {
			errs = append(errs, field.Required(p.Child("matchConstraints", "resourceRules"), ""))
		}
	}
	if !skipConditions {
		errs = append(errs, matchConditions(s.MatchConditions, celDecls{params: hasParams, authorizer: true}, p.Child("matchConditions"))...)
	}
	// Variables, validations and audit annotations see the variables
	// once there are any.
	decls := celDecls{params: hasParams, variables: len(s.Variables) > 0, authorizer: true}
	for i, v := range s.Variables {
		errs = append(errs, policyVariable(&v, decls, p.Child("variables").Index(i))...)
	}
	if len(s.Validations) == 0 && len(s.AuditAnnotations) == 0 {
		const msg = "validations or auditAnnotations must contain at least one item"
		return append(errs, field.Required(p.Child("validations"), msg), field.Required(p.Child("auditAnnotations"), msg))
	}
	for i := range s.Validations {
		errs = append(errs, policyValidation(&s.Validations[i], decls, p.Child("validations").Index(i))...)
	}
	if len(s.AuditAnnotations) > maxAuditAnnotations {
		errs = append(errs, field.Invalid(p.Child("auditAnnotations"), s.AuditAnnotations,
			fmt.Sprintf("must not have more than %d auditAnnotations", maxAuditAnnotations)))
	}
	keys := map[string]bool{}
	for i, a := range s.AuditAnnotations {
		ap := p.Child("auditAnnotations").Index(i)
		errs = append(errs, auditAnnotation(pol.Name, &a, decls, ap)...)
		if keys[a.Key] {
			errs = append(errs, field.Duplicate(ap.Child("key"), a.Key))
		}
		keys[a.Key] = true
	}
	return errs
}

func paramKind(pk *admissionregistrationv1.ParamKind, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	vp := p.Child("apiVersion")
	switch group, version, n := splitGroupVersion(pk.APIVersion); {
	case pk.APIVersion == "":
		errs = append(errs, field.Required(vp, ""))
	case n > 1:
		errs = append(errs, field.Invalid(vp, pk.APIVersion, "unexpected GroupVersion string: "+pk.APIVersion))
	default:
		if group != "" {
			if msgs := validation.IsDNS1123Subdomain(group); len(msgs) > 0 {
				errs = append(errs, field.Invalid(vp, group, strings.Join(msgs, ",")))
			}
		}
		if version == "" {
			errs = append(errs, field.Invalid(vp, pk.APIVersion, "version must be specified"))
		} else if msgs := validation.IsDNS1035Label(version); len(msgs) > 0 {
			errs = append(errs, field.Invalid(vp, version, strings.Join(msgs, ",")))
		}
	}
	if pk.Kind == "" {
		errs = append(errs, field.Required(p.Child("kind"), ""))
	} else if msgs := validation.IsDNS1035Label(strings.ToLower(pk.Kind)); len(msgs) > 0 {
		errs = append(errs, field.Invalid(p.Child("kind"), pk.Kind, "may have mixed case, but should otherwise match: "+strings.Join(msgs, ",")))
	}
	return errs
}

// splitGroupVersion splits "group/version" (or a bare version, the core
// group's); n is the number of slashes.
func splitGroupVersion(gv string) (group, version string, n int) {
	if gv == "/" {
		return "", "", 0
	}
	n = strings.Count(gv, "/")
	if n == 0 {
		return "", gv, 0
	}
	group, version, _ = strings.Cut(gv, "/")
	return group, version, n
}

// matchResources is a policy's matchConstraints or a binding's
// matchResources. matchPolicy and the selectors are required, but
// defaulting fills them.
func matchResources(m *admissionregistrationv1.MatchResources, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if m.MatchPolicy != nil && !contains(matchPolicies, string(*m.MatchPolicy)) {
		errs = append(errs, field.NotSupported(p.Child("matchPolicy"), *m.MatchPolicy, matchPolicies))
	}
	// These selectors came after label values were first validated, so
	// they are always held to it.
	strict := metavalidation.LabelSelectorValidationOptions{}
	if m.NamespaceSelector != nil {
		errs = append(errs, metavalidation.ValidateLabelSelector(m.NamespaceSelector, strict, p.Child("namespaceSelector"))...)
	}
	if m.ObjectSelector != nil {
		errs = append(errs, metavalidation.ValidateLabelSelector(m.ObjectSelector, strict, p.Child("objectSelector"))...)
	}
	for i := range m.ResourceRules {
		errs = append(errs, namedRule(&m.ResourceRules[i], p.Child("resourceRules").Index(i))...)
	}
	for i := range m.ExcludeResourceRules {
		errs = append(errs, namedRule(&m.ExcludeResourceRules[i], p.Child("excludeResourceRules").Index(i))...)
	}
	return errs
}

func namedRule(r *admissionregistrationv1.NamedRuleWithOperations, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, n := range r.ResourceNames {
		np := p.Child("resourceNames").Index(i)
		errs = append(errs, nameMessages(content.IsPathSegmentName(n), n, np)...)
		if seen[n] {
			errs = append(errs, field.Duplicate(np, n))
		}
		seen[n] = true
	}
	return append(errs, ruleWithOperations(&r.RuleWithOperations, p)...)
}

// celIdentifier: a variable's name is used as variables.<name>, so it must
// be an identifier and not a word CEL reserves.
var celIdentifier = regexp.MustCompile(`^[_a-zA-Z][_a-zA-Z0-9]*$`)

var celReserved = map[string]bool{"true": true, "false": true, "null": true, "in": true, "as": true, "break": true,
	"const": true, "continue": true, "else": true, "for": true, "function": true, "if": true, "import": true, "let": true,
	"loop": true, "package": true, "namespace": true, "return": true, "var": true, "void": true, "while": true}

func policyVariable(v *admissionregistrationv1.Variable, decls celDecls, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if strings.TrimSpace(v.Name) == "" {
		errs = append(errs, field.Required(p.Child("name"), "name is not specified"))
	} else if !celIdentifier.MatchString(v.Name) || celReserved[v.Name] {
		errs = append(errs, field.Invalid(p.Child("name"), v.Name, "must be a valid CEL identifier"))
	}
	if strings.TrimSpace(v.Expression) == "" {
		errs = append(errs, field.Required(p.Child("expression"), "expression is not specified"))
	} else {
		errs = append(errs, celExpression(v.Expression, admcel.AnyResult, decls, p.Child("expression"))...)
	}
	return errs
}

var lineBreaks = regexp.MustCompile(`[\n\r]+`)

func policyValidation(v *admissionregistrationv1.Validation, decls celDecls, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if strings.TrimSpace(v.Expression) == "" {
		errs = append(errs, field.Required(p.Child("expression"), "expression is not specified"))
	} else {
		errs = append(errs, celExpression(v.Expression, admcel.BoolResult, decls, p.Child("expression"))...)
	}
	if v.MessageExpression != "" {
		if strings.TrimSpace(v.MessageExpression) == "" {
			errs = append(errs, field.Invalid(p.Child("messageExpression"), v.MessageExpression, "must be non-empty if specified"))
		} else {
			// A message is built without asking the authorizer.
			md := decls
			md.authorizer = false
			errs = append(errs, celExpression(v.MessageExpression, admcel.StringResult, md, p.Child("messageExpression"))...)
		}
	}
	msg := strings.TrimSpace(v.Message)
	switch {
	case v.Message != "" && msg == "":
		errs = append(errs, field.Invalid(p.Child("message"), v.Message, "must be non-empty if specified"))
	case lineBreaks.MatchString(msg):
		errs = append(errs, field.Invalid(p.Child("message"), v.Message, "must not contain line breaks"))
	}
	if v.Reason != nil && !contains(validationReasons, string(*v.Reason)) {
		errs = append(errs, field.NotSupported(p.Child("reason"), *v.Reason, validationReasons))
	}
	return errs
}

func auditAnnotation(policy string, a *admissionregistrationv1.AuditAnnotation, decls celDecls, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	// The key is published as "<policy name>/<key>".
	if policy == "" {
		errs = append(errs, field.Invalid(p.Child("key"), a.Key, "requires metadata.name be non-empty"))
	} else {
		full := policy + "/" + a.Key
		errs = append(errs, nameMessages(validation.IsQualifiedName(full), full, p.Child("key"))...)
	}
	vp := p.Child("valueExpression")
	switch expr := strings.TrimSpace(a.ValueExpression); {
	case expr == "":
		errs = append(errs, field.Required(vp, "valueExpression is not specified"))
	case len(expr) > maxAuditAnnotationExprBytes:
		errs = append(errs, field.Required(vp, fmt.Sprintf("must not exceed %d bytes in length", maxAuditAnnotationExprBytes)))
	default:
		// A string or null: the result type is left to evaluation.
		for _, e := range celExpression(expr, admcel.AnyResult, decls, vp) {
			e.BadValue = a.ValueExpression
			errs = append(errs, e)
		}
	}
	return errs
}

// ValidatingAdmissionPolicyBinding.

func validateValidatingAdmissionPolicyBinding(obj, old runtime.Object) field.ErrorList {
	b := obj.(*admissionregistrationv1.ValidatingAdmissionPolicyBinding)
	if old != nil && specUnchanged(&b.Spec, &old.(*admissionregistrationv1.ValidatingAdmissionPolicyBinding).Spec, old) {
		return nil
	}
	s := &b.Spec
	p := field.NewPath("spec")
	var errs field.ErrorList
	if s.PolicyName == "" {
		errs = append(errs, field.Required(p.Child("policyName"), ""))
	} else {
		errs = append(errs, nameMessages(apivalidation.NameIsDNSSubdomain(s.PolicyName, false), s.PolicyName, p.Child("policyName"))...)
	}
	if s.ParamRef != nil {
		errs = append(errs, paramRef(s.ParamRef, p.Child("paramRef"))...)
	}
	if s.MatchResources != nil {
		errs = append(errs, matchResources(s.MatchResources, p.Child("matchResources"))...)
	}
	return append(errs, bindingActions(s.ValidationActions, p.Child("validationActions"))...)
}

func paramRef(r *admissionregistrationv1.ParamRef, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	const exclusive = "name and selector are mutually exclusive"
	if r.Name != "" {
		errs = append(errs, nameMessages(content.IsPathSegmentName(r.Name), r.Name, p.Child("name"))...)
		if r.Selector != nil {
			errs = append(errs, field.Forbidden(p.Child("name"), exclusive))
		}
	}
	if r.Selector != nil {
		errs = append(errs, metavalidation.ValidateLabelSelector(r.Selector, metavalidation.LabelSelectorValidationOptions{}, p.Child("selector"))...)
		if r.Name != "" {
			errs = append(errs, field.Forbidden(p.Child("selector"), exclusive))
		}
	}
	if r.Name == "" && r.Selector == nil {
		errs = append(errs, field.Required(p, "one of name or selector must be specified"))
	}
	switch a := r.ParameterNotFoundAction; {
	case a == nil || *a == "":
		errs = append(errs, field.Required(p.Child("parameterNotFoundAction"), ""))
	case !contains(notFoundActions, string(*a)):
		errs = append(errs, field.NotSupported(p.Child("parameterNotFoundAction"), a, notFoundActions))
	}
	return errs
}

func bindingActions(actions []admissionregistrationv1.ValidationAction, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[admissionregistrationv1.ValidationAction]bool{}
	for i, a := range actions {
		if !contains(validationActions, string(a)) {
			errs = append(errs, field.NotSupported(p.Index(i), a, validationActions))
		}
		if seen[a] {
			errs = append(errs, field.Duplicate(p.Index(i), a))
		}
		seen[a] = true
	}
	// Deny already reports the failure in the response; a warning would
	// only repeat it.
	if seen[admissionregistrationv1.Deny] && seen[admissionregistrationv1.Warn] {
		errs = append(errs, field.Invalid(p, actions, "must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)"))
	}
	if len(seen) == 0 {
		errs = append(errs, field.Required(p, "at least one validation action is required"))
	}
	return errs
}

// CEL.

// celDecls is which optional variables an expression may use: params
// only where the policy names a paramKind, variables only where it
// declares some, the authorizer everywhere but in messages.
type celDecls struct{ params, variables, authorizer bool }

var celEnvs sync.Map // celDecls → *admcel.Env

func celEnvFor(d celDecls) *admcel.Env {
	if e, ok := celEnvs.Load(d); ok {
		return e.(*admcel.Env)
	}
	vars := []string{admcel.Object, admcel.OldObject, admcel.RequestVar, admcel.NamespaceObject}
	if d.params {
		vars = append(vars, admcel.Params)
	}
	if d.variables {
		vars = append(vars, admcel.Variables)
	}
	if d.authorizer {
		vars = append(vars, "authorizer", "authorizer.requestResource")
	}
	env, err := admcel.NewEnv(vars...)
	if err != nil {
		// The declarations are fixed: failing here is a programming error.
		panic(err)
	}
	e, _ := celEnvs.LoadOrStore(d, env)
	return e.(*admcel.Env)
}

// celExpression refuses an expression that does not compile, with
// kube-apiserver's message ("compilation failed: ERROR: <input>:1:5: ...",
// or "must evaluate to bool but got int").
func celExpression(expr string, want admcel.Result, d celDecls, p *field.Path) field.ErrorList {
	_, err := celEnvFor(d).Compile(expr, want)
	if err == nil {
		return nil
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "compilation failed: ") && !strings.HasPrefix(msg, "must evaluate to ") {
		return nil // not the expression's fault
	}
	if onlyUpstreamLibraries(msg) {
		return nil
	}
	return field.ErrorList{field.Invalid(p, expr, msg)}
}

// upstreamOnly are the names of kube-apiserver's CEL libraries that
// pgkube's environment lacks (urls, authorizer, quantity, format, semver):
// an expression using them is valid upstream, and only fails here when
// evaluated.
var upstreamOnly = map[string]bool{
	// urls
	"url": true, "isURL": true, "getScheme": true, "getHost": true, "getHostname": true, "getPort": true,
	"getEscapedPath": true, "getQuery": true,
	// authorizer
	"path": true, "group": true, "serviceAccount": true, "resource": true, "subresource": true, "namespace": true,
	"name": true, "check": true, "errored": true, "error": true, "allowed": true, "reason": true,
	"fieldSelector": true, "labelSelector": true,
	// quantity
	"quantity": true, "isQuantity": true, "sign": true, "isGreaterThan": true, "isLessThan": true, "compareTo": true,
	"asApproximateFloat": true, "asInteger": true, "isInteger": true, "add": true, "sub": true,
	// format
	"format": true, "format.named": true, "named": true, "validate": true, "dns1123Label": true, "dns1123Subdomain": true,
	"dns1035Label": true, "qualifiedName": true, "dns1123LabelPrefix": true, "dns1123SubdomainPrefix": true,
	"dns1035LabelPrefix": true, "labelValue": true, "uri": true, "uuid": true, "byte": true, "date": true, "datetime": true,
	// semver
	"semver": true, "isSemver": true, "major": true, "minor": true, "patch": true,
	// ip
	"ip.isCanonical": true, "isCanonical": true,
}

var (
	celIssue      = regexp.MustCompile(`ERROR: <input>:\d+:\d+: ([^\n]*)`)
	celUnresolved = regexp.MustCompile(`^(?:undeclared reference to|found no matching overload for) '([^']+)'`)
)

// onlyUpstreamLibraries reports a compilation that failed only for want
// of upstream's library functions.
func onlyUpstreamLibraries(msg string) bool {
	issues := celIssue.FindAllStringSubmatch(msg, -1)
	if len(issues) == 0 {
		return false
	}
	for _, is := range issues {
		m := celUnresolved.FindStringSubmatch(is[1])
		if m == nil || !upstreamOnly[m[1]] {
			return false
		}
	}
	return true
}
