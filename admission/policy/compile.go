package policy

import (
	"context"
	"errors"
	"fmt"

	"github.com/pgkube/pgkube/admission"
	admcel "github.com/pgkube/pgkube/admission/cel"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// policy is a ValidatingAdmissionPolicy compiled for admission.
type policy struct {
	name string
	// spec is what it was compiled from, to tell a real change on Apply.
	spec admissionregistrationv1.ValidatingAdmissionPolicySpec

	constraints *match
	// configErr makes every request the policy matches fail (or pass,
	// under failurePolicy Ignore) without evaluating it.
	configErr     error
	paramKind     *schema.GroupVersionKind
	failurePolicy admissionregistrationv1.FailurePolicyType
	conditions    []expression
	variables     []admcel.Variable
	validations   []validation
}

// expression is a compiled expression, or why it did not compile.
type expression struct {
	source string
	prg    *admcel.Program
	err    error
}

type validation struct {
	expression
	message string
	// messageExpression, when set; nil prg and nil err when absent.
	messageExpression expression
	reason            *metav1.StatusReason
}

// binding is a ValidatingAdmissionPolicyBinding prepared for admission.
type binding struct {
	name       string
	policyName string
	paramRef   *admissionregistrationv1.ParamRef
	actions    []admissionregistrationv1.ValidationAction
	// match narrows the policy's constraints; nil narrows nothing.
	match    *match
	matchErr error
}

// match is a matchConstraints or matchResources with its selectors parsed.
type match struct {
	namespaceSel, objectSel labels.Selector
	rules, exclude          []admissionregistrationv1.NamedRuleWithOperations
}

func newMatch(mr *admissionregistrationv1.MatchResources) (*match, error) {
	m := &match{rules: mr.ResourceRules, exclude: mr.ExcludeResourceRules}
	var err error
	if m.namespaceSel, err = admcel.Selector(mr.NamespaceSelector); err != nil {
		return nil, err
	}
	if m.objectSel, err = admcel.Selector(mr.ObjectSelector); err != nil {
		return nil, err
	}
	return m, nil
}

// compile prepares a policy, applying the defaults kube-apiserver's API
// would have stored (pgkube stores policies as given).
func (p *Policies) compile(o *admissionregistrationv1.ValidatingAdmissionPolicy) *policy {
	spec := o.Spec
	pol := &policy{name: o.Name, spec: *spec.DeepCopy(), failurePolicy: admissionregistrationv1.Fail}
	if spec.FailurePolicy != nil {
		pol.failurePolicy = *spec.FailurePolicy
	}
	if spec.MatchConstraints == nil {
		pol.configErr = errors.New("policy contained no match constraints, a required field")
	} else if m, err := newMatch(spec.MatchConstraints); err != nil {
		pol.configErr = err
	} else {
		pol.constraints = m
	}
	if pk := spec.ParamKind; pk != nil {
		gv, err := schema.ParseGroupVersion(pk.APIVersion)
		if err != nil {
			pol.configErr = fmt.Errorf("failed to parse paramKind APIVersion: %w", err)
		} else {
			gvk := gv.WithKind(pk.Kind)
			pol.paramKind = &gvk
		}
	}
	compile := func(expr string, want admcel.Result) expression {
		prg, err := p.env.Compile(expr, want)
		return expression{source: expr, prg: prg, err: err}
	}
	for _, mc := range spec.MatchConditions {
		pol.conditions = append(pol.conditions, compile(mc.Expression, admcel.BoolResult))
	}
	for _, v := range spec.Variables {
		e := compile(v.Expression, admcel.AnyResult)
		pol.variables = append(pol.variables, admcel.Variable{Name: v.Name, Program: e.prg, Err: e.err})
	}
	for _, v := range spec.Validations {
		val := validation{expression: compile(v.Expression, admcel.BoolResult), message: v.Message, reason: v.Reason}
		if v.MessageExpression != "" {
			val.messageExpression = compile(v.MessageExpression, admcel.StringResult)
		}
		pol.validations = append(pol.validations, val)
	}
	return pol
}

func newBinding(o *admissionregistrationv1.ValidatingAdmissionPolicyBinding) *binding {
	b := &binding{name: o.Name, policyName: o.Spec.PolicyName, actions: o.Spec.ValidationActions}
	if o.Spec.ParamRef != nil {
		b.paramRef = o.Spec.ParamRef.DeepCopy()
	}
	if mr := o.Spec.MatchResources; mr != nil {
		b.match, b.matchErr = newMatch(mr)
	}
	return b
}

// matches tells whether m selects the request: selectors, then excluded
// rules, then rules (none means every resource). As in kube-apiserver a
// namespace lookup error counts only for a request the rules select.
func (m *match) matches(ctx context.Context, req *admcel.Request, store admission.Getter) (bool, error) {
	nsMatch, nsErr := admcel.NamespaceSelectorMatches(ctx, m.namespaceSel, req, store)
	if !nsMatch && nsErr == nil {
		return false, nil
	}
	if !admcel.ObjectSelectorMatches(m.objectSel, req) {
		return false, nil
	}
	if namedRulesMatch(m.exclude, req) {
		return false, nil
	}
	if len(m.rules) > 0 && !namedRulesMatch(m.rules, req) {
		return false, nil
	}
	if nsErr != nil {
		return false, nsErr
	}
	return true, nil
}

// namedRulesMatch tells whether any rule selects the request, by name too
// where the rule lists resourceNames. matchPolicy Equivalent would also try
// other versions of the resource; pgkube serves each kind in one version.
func namedRulesMatch(rules []admissionregistrationv1.NamedRuleWithOperations, req *admcel.Request) bool {
	for _, r := range rules {
		if !admcel.RuleMatches(r.RuleWithOperations, req) {
			continue
		}
		if len(r.ResourceNames) == 0 {
			return true
		}
		for _, n := range r.ResourceNames {
			if n == req.Attrs.Name {
				return true
			}
		}
	}
	return false
}
