package printers

import (
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The admissionregistration.k8s.io printers. Upstream writes these column
// descriptions inline rather than taking them from the API docs.
var (
	mutatingWebhookConfigurations = builtin{"admissionregistration.k8s.io", "mutatingwebhookconfigurations",
		webhookConfigurationColumns(), typed(mutatingWebhookConfigurationRow)}
	validatingWebhookConfigurations = builtin{"admissionregistration.k8s.io", "validatingwebhookconfigurations",
		webhookConfigurationColumns(), typed(validatingWebhookConfigurationRow)}
	validatingAdmissionPolicies = builtin{"admissionregistration.k8s.io", "validatingadmissionpolicies", columns(
		nameColumn(),
		integerColumn("Validations", "Validations indicates the number of validation rules defined in this configuration"),
		stringColumn("ParamKind", "ParamKind specifies the kind of resources used to parameterize this policy"),
		ageColumn(),
	), typed(validatingAdmissionPolicyRow)}
	validatingAdmissionPolicyBindings = builtin{"admissionregistration.k8s.io", "validatingadmissionpolicybindings", columns(
		nameColumn(),
		stringColumn("PolicyName", "PolicyName indicates the policy definition which the policy binding binded to"),
		stringColumn("ParamRef", "ParamRef indicates the param resource which sets the configuration param"),
		ageColumn(),
	), typed(validatingAdmissionPolicyBindingRow)}
)

func webhookConfigurationColumns() []metav1.TableColumnDefinition {
	return columns(
		nameColumn(),
		integerColumn("Webhooks", "Webhooks indicates the number of webhooks registered in this configuration"),
		ageColumn(),
	)
}

func mutatingWebhookConfigurationRow(c *admissionregistrationv1.MutatingWebhookConfiguration, now time.Time) []any {
	return []any{c.Name, int64(len(c.Webhooks)), age(&c.ObjectMeta, now)}
}

func validatingWebhookConfigurationRow(c *admissionregistrationv1.ValidatingWebhookConfiguration, now time.Time) []any {
	return []any{c.Name, int64(len(c.Webhooks)), age(&c.ObjectMeta, now)}
}

func validatingAdmissionPolicyRow(p *admissionregistrationv1.ValidatingAdmissionPolicy, now time.Time) []any {
	paramKind := "<unset>"
	if pk := p.Spec.ParamKind; pk != nil {
		paramKind = pk.APIVersion + "/" + pk.Kind
	}
	return []any{p.Name, int64(len(p.Spec.Validations)), paramKind, age(&p.ObjectMeta, now)}
}

func validatingAdmissionPolicyBindingRow(b *admissionregistrationv1.ValidatingAdmissionPolicyBinding, now time.Time) []any {
	paramRef := "<unset>"
	if pr := b.Spec.ParamRef; pr != nil {
		switch {
		case pr.Name != "" && pr.Namespace != "":
			paramRef = pr.Namespace + "/" + pr.Name
		case pr.Name != "":
			// Whether the param kind is cluster-scoped is not known here,
			// so a name without a namespace is shown as in any namespace.
			paramRef = "*/" + pr.Name
		case pr.Selector != nil:
			paramRef = pr.Selector.String()
		}
	}
	return []any{b.Name, b.Spec.PolicyName, paramRef, age(&b.ObjectMeta, now)}
}
