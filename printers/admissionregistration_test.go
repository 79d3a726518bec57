package printers

import (
	"reflect"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestAdmissionRegistrationRows(t *testing.T) {
	meta := metav1.ObjectMeta{Name: "x", CreationTimestamp: ago(3 * time.Hour)}
	cases := []struct {
		resource string
		obj      runtime.Object
		want     []any
	}{
		{"validatingwebhookconfigurations", &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: meta,
			Webhooks: make([]admissionregistrationv1.ValidatingWebhook, 2)}, []any{"x", int64(2), "3h"}},
		{"mutatingwebhookconfigurations", &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: meta},
			[]any{"x", int64(0), "3h"}},
		{"validatingadmissionpolicies", &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: meta},
			[]any{"x", int64(0), "<unset>", "3h"}},
		{"validatingadmissionpolicies", &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: meta,
			Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
				ParamKind:   &admissionregistrationv1.ParamKind{APIVersion: "v1", Kind: "ConfigMap"},
				Validations: make([]admissionregistrationv1.Validation, 1)}},
			[]any{"x", int64(1), "v1/ConfigMap", "3h"}},
		{"validatingadmissionpolicybindings", &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: meta,
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "p"}},
			[]any{"x", "p", "<unset>", "3h"}},
		{"validatingadmissionpolicybindings", &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: meta,
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "p",
				ParamRef: &admissionregistrationv1.ParamRef{Name: "limits"}}},
			[]any{"x", "p", "*/limits", "3h"}},
		{"validatingadmissionpolicybindings", &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: meta,
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: "p",
				ParamRef: &admissionregistrationv1.ParamRef{Name: "limits", Namespace: "ns"}}},
			[]any{"x", "p", "ns/limits", "3h"}},
	}
	for _, c := range cases {
		p, ok := For("admissionregistration.k8s.io", c.resource)
		if !ok {
			t.Fatalf("%s: no printer", c.resource)
		}
		got, err := p.Row(c.obj, now)
		if err != nil {
			t.Fatalf("%s: %v", c.resource, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.resource, got, c.want)
		}
	}
}
