package registry

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Webhook configurations and validating admission policies are stored the
// way kube-apiserver stores them: every optional knob that steers matching
// and failure handling is written out, so what a client reads back tells
// exactly how the configuration behaves. Neither sideEffects nor
// admissionReviewVersions is defaulted in v1: both must be given.

func defaultMutatingWebhookConfiguration(c *admissionregistrationv1.MutatingWebhookConfiguration) {
	for i := range c.Webhooks {
		h := &c.Webhooks[i]
		defaultWebhookCommon(&h.FailurePolicy, &h.MatchPolicy, &h.NamespaceSelector, &h.ObjectSelector, &h.TimeoutSeconds)
		// A mutating webhook runs once unless it asks to see later changes.
		setIfNil(&h.ReinvocationPolicy, admissionregistrationv1.NeverReinvocationPolicy)
		defaultClientConfig(&h.ClientConfig)
		defaultRulesScope(h.Rules)
	}
}

func defaultValidatingWebhookConfiguration(c *admissionregistrationv1.ValidatingWebhookConfiguration) {
	for i := range c.Webhooks {
		h := &c.Webhooks[i]
		defaultWebhookCommon(&h.FailurePolicy, &h.MatchPolicy, &h.NamespaceSelector, &h.ObjectSelector, &h.TimeoutSeconds)
		defaultClientConfig(&h.ClientConfig)
		defaultRulesScope(h.Rules)
	}
}

// defaultWebhookCommon fills what both webhook flavours share: failing
// closed, matching equivalent versions of a resource, selecting
// everything, and a ten second timeout.
func defaultWebhookCommon(failure **admissionregistrationv1.FailurePolicyType, match **admissionregistrationv1.MatchPolicyType,
	nsSel, objSel **metav1.LabelSelector, timeout **int32) {
	setIfNil(failure, admissionregistrationv1.Fail)
	setIfNil(match, admissionregistrationv1.Equivalent)
	setIfNil(nsSel, metav1.LabelSelector{})
	setIfNil(objSel, metav1.LabelSelector{})
	setIfNil(timeout, 10)
}

// defaultClientConfig: a service is called on the HTTPS port unless told
// otherwise.
func defaultClientConfig(cc *admissionregistrationv1.WebhookClientConfig) {
	if cc.Service != nil {
		setIfNil(&cc.Service.Port, 443)
	}
}

func defaultRulesScope(rules []admissionregistrationv1.RuleWithOperations) {
	for i := range rules {
		setIfNil(&rules[i].Scope, admissionregistrationv1.AllScopes)
	}
}

func defaultNamedRulesScope(rules []admissionregistrationv1.NamedRuleWithOperations) {
	for i := range rules {
		setIfNil(&rules[i].Scope, admissionregistrationv1.AllScopes)
	}
}

// defaultMatchResources is shared by a policy's matchConstraints and a
// binding's matchResources; each is defaulted only when present.
func defaultMatchResources(m *admissionregistrationv1.MatchResources) {
	if m == nil {
		return
	}
	setIfNil(&m.MatchPolicy, admissionregistrationv1.Equivalent)
	setIfNil(&m.NamespaceSelector, metav1.LabelSelector{})
	setIfNil(&m.ObjectSelector, metav1.LabelSelector{})
	defaultNamedRulesScope(m.ResourceRules)
	defaultNamedRulesScope(m.ExcludeResourceRules)
}

func defaultValidatingAdmissionPolicy(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
	setIfNil(&p.Spec.FailurePolicy, admissionregistrationv1.Fail)
	defaultMatchResources(p.Spec.MatchConstraints)
}

// defaultValidatingAdmissionPolicyBinding: the binding's own fields
// (validationActions, paramRef.parameterNotFoundAction) have no default
// and are required where they apply.
func defaultValidatingAdmissionPolicyBinding(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding) {
	defaultMatchResources(b.Spec.MatchResources)
}
