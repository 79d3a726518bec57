package registry

import (
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func validValidatingWebhooks() *admissionregistrationv1.ValidatingWebhookConfiguration {
	c := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "hooks"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         "check.example.com",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://hooks.example.com/check")},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps", "pods/status"}},
			}},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			MatchConditions:         []admissionregistrationv1.MatchCondition{{Name: "not-system", Expression: "!request.userInfo.username.startsWith('system:')"}},
		}}}
	defaultValidatingWebhookConfiguration(c)
	return c
}

func TestValidateValidatingWebhookConfiguration(t *testing.T) {
	hook := func(c *admissionregistrationv1.ValidatingWebhookConfiguration) *admissionregistrationv1.ValidatingWebhook {
		return &c.Webhooks[0]
	}
	type C = *admissionregistrationv1.ValidatingWebhookConfiguration
	runCases(t, validValidatingWebhooks, validateValidatingWebhookConfiguration, []vcase[C]{
		{name: "valid"},
		{name: "e2e's invalid webhook", mutate: func(c C) { hook(c).SideEffects, hook(c).AdmissionReviewVersions = nil, nil },
			want: []string{"webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun",
				"webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1"}},
		{name: "side effects now refused", mutate: func(c C) { hook(c).SideEffects = ptr.To(admissionregistrationv1.SideEffectClassSome) },
			want: []string{`webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun"`}},
		{name: "unknown review version", mutate: func(c C) { hook(c).AdmissionReviewVersions = []string{"v2", "v2"} },
			want: []string{`webhooks[0].admissionReviewVersions[1]: Invalid value: "v2": duplicate version`,
				`webhooks[0].admissionReviewVersions: Invalid value: ["v2","v2"]: must include at least one of v1, v1beta1`}},
		{name: "name not qualified", mutate: func(c C) { hook(c).Name = "check" },
			want: []string{`webhooks[0].name: Invalid value: "check": should be a domain with at least three segments separated by dots`}},
		{name: "duplicate names", mutate: func(c C) { c.Webhooks = append(c.Webhooks, c.Webhooks[0]) },
			want: []string{`webhooks[1].name: Duplicate value: "check.example.com"`}},
		{name: "both url and service", mutate: func(c C) {
			hook(c).ClientConfig.Service = &admissionregistrationv1.ServiceReference{Namespace: "ns", Name: "svc"}
		}, want: []string{"webhooks[0].clientConfig: Required value: exactly one of url or service is required"}},
		{name: "http url with query", mutate: func(c C) { hook(c).ClientConfig.URL = ptr.To("http://u:p@hooks.example.com/x?a=b#f") },
			want: []string{`webhooks[0].clientConfig.url: Invalid value: "http": 'https' is the only allowed URL scheme; desired format: https://host[/path]`,
				`webhooks[0].clientConfig.url: Invalid value: "u:p": user information is not permitted in the URL`,
				`webhooks[0].clientConfig.url: Invalid value: "f": fragments are not permitted in the URL`,
				`webhooks[0].clientConfig.url: Invalid value: "a=b": query parameters are not permitted in the URL`}},
		{name: "service path", mutate: func(c C) {
			hook(c).ClientConfig.URL = nil
			hook(c).ClientConfig.Service = &admissionregistrationv1.ServiceReference{Name: "svc", Path: ptr.To("validate//Now"), Port: ptr.To(int32(0))}
		}, want: []string{"webhooks[0].clientConfig.service.namespace: Required value",
			"webhooks[0].clientConfig.service.port: Invalid value: 0: port is not valid: must be between 1 and 65535, inclusive",
			`webhooks[0].clientConfig.service.path: Invalid value: "validate//Now": must start with a '/'`,
			`webhooks[0].clientConfig.service.path: Invalid value: "validate//Now": segment[1] may not be empty`,
			`webhooks[0].clientConfig.service.path: Invalid value: "validate//Now": segment[2]: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`}},
		{name: "timeout", mutate: func(c C) { hook(c).TimeoutSeconds = ptr.To(int32(31)) },
			want: []string{"webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds"}},
		{name: "policies", mutate: func(c C) {
			hook(c).FailurePolicy = ptr.To(admissionregistrationv1.FailurePolicyType("Maybe"))
			hook(c).MatchPolicy = ptr.To(admissionregistrationv1.MatchPolicyType("Close"))
		}, want: []string{`webhooks[0].failurePolicy: Unsupported value: "Maybe": supported values: "Fail", "Ignore"`,
			`webhooks[0].matchPolicy: Unsupported value: "Close": supported values: "Equivalent", "Exact"`}},
		{name: "rules", mutate: func(c C) {
			hook(c).Rules = []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{"*", "PATCH"},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{"*", "apps"}, Resources: []string{"*", "pods", "*/*"},
					Scope: ptr.To(admissionregistrationv1.ScopeType("Cluster"))},
			}}
		}, want: []string{`webhooks[0].rules[0].operations: Invalid value: ["*","PATCH"]: if '*' is present, must not specify other operations`,
			`webhooks[0].rules[0].operations[1]: Unsupported value: "PATCH": supported values: "*", "CONNECT", "CREATE", "DELETE", "UPDATE"`,
			`webhooks[0].rules[0].apiGroups: Invalid value: ["*","apps"]: if '*' is present, must not specify other API groups`,
			"webhooks[0].rules[0].apiVersions: Required value",
			`webhooks[0].rules[0].resources: Invalid value: ["*","pods","*/*"]: if '*/*' is present, must not specify other resources`,
			`webhooks[0].rules[0].resources: Invalid value: ["*","pods","*/*"]: if '*' is present, must not specify other resources without subresources`}},
		{name: "subresource wildcards", mutate: func(c C) {
			hook(c).Rules[0].Resources = []string{"pods/*", "pods/status", "*/scale", "deployments/scale"}
		}, want: []string{`webhooks[0].rules[0].resources[1]: Invalid value: "pods/status": if 'pods/*' is present, must not specify pods/status`,
			`webhooks[0].rules[0].resources[3]: Invalid value: "deployments/scale": if '*/scale' is present, must not specify deployments/scale`}},
		{name: "selector", mutate: func(c C) { hook(c).ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b c"}} },
			want: []string{`webhooks[0].objectSelector.matchLabels: Invalid value: "b c": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`}},
		{name: "match condition does not compile", mutate: func(c C) {
			hook(c).MatchConditions = append(hook(c).MatchConditions, admissionregistrationv1.MatchCondition{Name: "not-system", Expression: "params.x"},
				admissionregistrationv1.MatchCondition{Name: "", Expression: "object.x"})
		}, want: []string{`webhooks[0].matchConditions[1].expression: Invalid value: "params.x": compilation failed: ERROR: <input>:1:1: undeclared reference to 'params' (in container '')
 | params.x
 | ^`,
			`webhooks[0].matchConditions[1].name: Duplicate value: "not-system"`,
			"webhooks[0].matchConditions[2].name: Required value"}},
		{name: "match condition of the wrong type", mutate: func(c C) { hook(c).MatchConditions[0].Expression = "1 + 1" },
			want: []string{`webhooks[0].matchConditions[0].expression: Invalid value: "1 + 1": must evaluate to bool but got int`}},
		{name: "upstream libraries are not held against an expression", mutate: func(c C) {
			hook(c).MatchConditions[0].Expression = "authorizer.group('apps').resource('deployments').check('create').allowed() && " +
				"quantity('1Gi').isGreaterThan(quantity('1Mi')) && url('https://x').getHost() == 'x'"
		}},
	})
}

func TestValidateWebhookConfigurationUpdate(t *testing.T) {
	old := validValidatingWebhooks()
	old.Webhooks[0].SideEffects = ptr.To(admissionregistrationv1.SideEffectClassSome)
	old.Webhooks[0].MatchConditions[0].Expression = "no such thing"
	// Stored before the rules: still updatable, with the same leniency.
	upd := old.DeepCopy()
	upd.Webhooks[0].TimeoutSeconds = ptr.To(int32(5))
	expectErrs(t, validateValidatingWebhookConfiguration(upd, old))
	// Not once the stored one complies.
	fixed := validValidatingWebhooks()
	upd.Webhooks[0].MatchConditions = fixed.Webhooks[0].MatchConditions
	expectErrs(t, validateValidatingWebhookConfiguration(upd, fixed),
		`webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun"`)
	// An unchanged configuration is not judged again.
	expectErrs(t, validateValidatingWebhookConfiguration(old, old.DeepCopy()))
}

func TestValidateMutatingWebhookConfiguration(t *testing.T) {
	c := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "m"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "mutate.example.com", ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service: &admissionregistrationv1.ServiceReference{Namespace: "ns", Name: "svc", Path: ptr.To("/mutate")}},
			SideEffects: ptr.To(admissionregistrationv1.SideEffectClassNoneOnDryRun), AdmissionReviewVersions: []string{"v1beta1", "v1"},
			ReinvocationPolicy: ptr.To(admissionregistrationv1.ReinvocationPolicyType("Always")),
		}}}
	defaultMutatingWebhookConfiguration(c)
	expectErrs(t, validateMutatingWebhookConfiguration(c, nil),
		`webhooks[0].reinvocationPolicy: Unsupported value: "Always": supported values: "IfNeeded", "Never"`)
	c.Webhooks[0].ReinvocationPolicy = ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy)
	expectErrs(t, validateMutatingWebhookConfiguration(c, nil))
}

func validPolicy() *admissionregistrationv1.ValidatingAdmissionPolicy {
	p := &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "max-replicas"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				}}}},
			Variables:   []admissionregistrationv1.Variable{{Name: "replicas", Expression: "object.spec.replicas"}},
			Validations: []admissionregistrationv1.Validation{{Expression: "variables.replicas <= 5", MessageExpression: "'too many: ' + string(variables.replicas)"}},
		}}
	defaultValidatingAdmissionPolicy(p)
	return p
}

func TestValidateValidatingAdmissionPolicy(t *testing.T) {
	type P = *admissionregistrationv1.ValidatingAdmissionPolicy
	runCases(t, validPolicy, validateValidatingAdmissionPolicy, []vcase[P]{
		{name: "valid"},
		{name: "e2e's broken expression", mutate: func(p P) { p.Spec.Validations[0].Expression = "object.spec.replicas <= " },
			want: []string{`spec.validations[0].expression: Invalid value: "object.spec.replicas <= ": compilation failed: ERROR: <input>:1:25: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}
 | object.spec.replicas <= 
 | ........................^`}},
		{name: "nothing to match", mutate: func(p P) { p.Spec.MatchConstraints = nil },
			want: []string{"spec.matchConstraints: Required value"}},
		{name: "no resource rules", mutate: func(p P) { p.Spec.MatchConstraints.ResourceRules = nil },
			want: []string{"spec.matchConstraints.resourceRules: Required value"}},
		{name: "nothing to check", mutate: func(p P) { p.Spec.Validations = nil },
			want: []string{"spec.validations: Required value: validations or auditAnnotations must contain at least one item",
				"spec.auditAnnotations: Required value: validations or auditAnnotations must contain at least one item"}},
		{name: "params without paramKind", mutate: func(p P) { p.Spec.Validations[0].Expression = "params.max > 1" },
			want: []string{`spec.validations[0].expression: Invalid value: "params.max > 1": compilation failed: ERROR: <input>:1:1: undeclared reference to 'params' (in container '')
 | params.max > 1
 | ^`}},
		{name: "params with paramKind", mutate: func(p P) {
			p.Spec.ParamKind = &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"}
			p.Spec.Validations[0].Expression = "params.max > 1"
		}},
		{name: "paramKind shape", mutate: func(p P) {
			p.Spec.ParamKind = &admissionregistrationv1.ParamKind{APIVersion: "a/b/c", Kind: "Config_Map"}
		},
			want: []string{`spec.paramKind.apiVersion: Invalid value: "a/b/c": unexpected GroupVersion string: a/b/c`,
				`spec.paramKind.kind: Invalid value: "Config_Map": may have mixed case, but should otherwise match: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`}},
		{name: "message expression of the wrong type", mutate: func(p P) { p.Spec.Validations[0].MessageExpression = "1" },
			want: []string{`spec.validations[0].messageExpression: Invalid value: "1": must evaluate to string but got int`}},
		{name: "no authorizer in messages", mutate: func(p P) { p.Spec.Validations[0].MessageExpression = "string(authorizer)" },
			want: []string{`spec.validations[0].messageExpression: Invalid value: "string(authorizer)": compilation failed: ERROR: <input>:1:8: undeclared reference to 'authorizer' (in container '')
 | string(authorizer)
 | .......^`}},
		{name: "message and reason", mutate: func(p P) {
			p.Spec.Validations[0].Message = "a\nb"
			p.Spec.Validations[0].Reason = ptr.To(metav1.StatusReasonConflict)
		}, want: []string{"spec.validations[0].message: Invalid value: \"a\\nb\": must not contain line breaks",
			`spec.validations[0].reason: Unsupported value: "Conflict": supported values: "Forbidden", "Invalid", "RequestEntityTooLarge"`}},
		{name: "variable names", mutate: func(p P) {
			p.Spec.Variables = append(p.Spec.Variables, admissionregistrationv1.Variable{Name: "in", Expression: "1"}, admissionregistrationv1.Variable{Name: "x"})
		}, want: []string{`spec.variables[1].name: Invalid value: "in": must be a valid CEL identifier`,
			"spec.variables[2].expression: Required value: expression is not specified"}},
		{name: "variables without variables", mutate: func(p P) { p.Spec.Variables = nil },
			want: []string{`spec.validations[0].expression: Invalid value: "variables.replicas <= 5": compilation failed: ERROR: <input>:1:1: undeclared reference to 'variables' (in container '')
 | variables.replicas <= 5
 | ^`, `spec.validations[0].messageExpression: Invalid value: "'too many: ' + string(variables.replicas)": compilation failed: ERROR: <input>:1:23: undeclared reference to 'variables' (in container '')
 | 'too many: ' + string(variables.replicas)
 | ......................^`}},
		{name: "audit annotations", mutate: func(p P) {
			p.Spec.AuditAnnotations = []admissionregistrationv1.AuditAnnotation{{Key: "replicas", ValueExpression: "string(object.spec.replicas)"},
				{Key: "replicas", ValueExpression: " "}}
		}, want: []string{"spec.auditAnnotations[1].valueExpression: Required value: valueExpression is not specified",
			`spec.auditAnnotations[1].key: Duplicate value: "replicas"`}},
		{name: "policies", mutate: func(p P) {
			p.Spec.FailurePolicy = ptr.To(admissionregistrationv1.FailurePolicyType("Never"))
			p.Spec.MatchConstraints.MatchPolicy = ptr.To(admissionregistrationv1.MatchPolicyType("Never"))
			p.Spec.MatchConstraints.ResourceRules[0].ResourceNames = []string{"a", "a", "b/c"}
		}, want: []string{`spec.failurePolicy: Unsupported value: "Never": supported values: "Fail", "Ignore"`,
			`spec.matchConstraints.matchPolicy: Unsupported value: "Never": supported values: "Equivalent", "Exact"`,
			`spec.matchConstraints.resourceRules[0].resourceNames[1]: Duplicate value: "a"`,
			`spec.matchConstraints.resourceRules[0].resourceNames[2]: Invalid value: "b/c": may not contain '/'`}},
	})
	// An update that leaves the spec alone is not judged again.
	p := validPolicy()
	p.Spec.Validations[0].Expression = "nope("
	expectErrs(t, validateValidatingAdmissionPolicy(p, p.DeepCopy()))
}

func TestValidateValidatingAdmissionPolicyBinding(t *testing.T) {
	type B = *admissionregistrationv1.ValidatingAdmissionPolicyBinding
	valid := func() B {
		b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "b"},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "max-replicas",
				ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny, admissionregistrationv1.Audit},
				MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
					MatchLabels: map[string]string{"env": "prod"}}}}}
		defaultValidatingAdmissionPolicyBinding(b)
		return b
	}
	runCases(t, valid, validateValidatingAdmissionPolicyBinding, []vcase[B]{
		{name: "valid"},
		{name: "no policy, no actions", mutate: func(b B) { b.Spec.PolicyName, b.Spec.ValidationActions = "", nil },
			want: []string{"spec.policyName: Required value", "spec.validationActions: Required value: at least one validation action is required"}},
		{name: "actions", mutate: func(b B) {
			b.Spec.ValidationActions = []admissionregistrationv1.ValidationAction{"Deny", "Warn", "Deny", "Log"}
		},
			want: []string{`spec.validationActions[2]: Duplicate value: "Deny"`,
				`spec.validationActions[3]: Unsupported value: "Log": supported values: "Audit", "Deny", "Warn"`,
				`spec.validationActions: Invalid value: ["Deny","Warn","Deny","Log"]: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)`}},
		{name: "paramRef", mutate: func(b B) { b.Spec.ParamRef = &admissionregistrationv1.ParamRef{} },
			want: []string{"spec.paramRef: Required value: one of name or selector must be specified",
				"spec.paramRef.parameterNotFoundAction: Required value"}},
		{name: "paramRef with both", mutate: func(b B) {
			b.Spec.ParamRef = &admissionregistrationv1.ParamRef{Name: "p", Selector: &metav1.LabelSelector{},
				ParameterNotFoundAction: ptr.To(admissionregistrationv1.ParameterNotFoundActionType("Ignore"))}
		}, want: []string{"spec.paramRef.name: Forbidden: name and selector are mutually exclusive",
			"spec.paramRef.selector: Forbidden: name and selector are mutually exclusive",
			`spec.paramRef.parameterNotFoundAction: Unsupported value: "Ignore": supported values: "Deny", "Allow"`}},
	})
}

func TestCELCompileErrorShape(t *testing.T) {
	errs := celExpression("object.spec.replicas <= ", 1, celDecls{}, nil)
	if len(errs) != 1 || !strings.HasPrefix(errs[0].Detail, "compilation failed: ERROR: <input>:1:") {
		t.Fatalf("errors %v", errs)
	}
	// A typo is still refused, even next to upstream's library functions.
	if errs := celExpression("quantity('1').isInteger() && objct.x", 1, celDecls{}, nil); len(errs) != 1 {
		t.Fatalf("errors %v", errs)
	}
}
