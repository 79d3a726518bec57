package registry

import "testing"

// The admission configuration kinds as kube-apiserver stores them: each
// want is what it answers to a get after creating the input.
var admissionDefaultingCases = []struct{ name, in, want string }{
	{"mutatingwebhookconfiguration", `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: m}
webhooks:
- name: a.example.com
  clientConfig: {service: {namespace: ns, name: svc}}
  rules: [{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods]}]
  sideEffects: None
  admissionReviewVersions: [v1]
`, `
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: m}
webhooks:
- name: a.example.com
  clientConfig: {service: {namespace: ns, name: svc, port: 443}}
  rules: [{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [pods], scope: "*"}]
  failurePolicy: Fail
  matchPolicy: Equivalent
  namespaceSelector: {}
  objectSelector: {}
  sideEffects: None
  timeoutSeconds: 10
  admissionReviewVersions: [v1]
  reinvocationPolicy: Never
`},
	{"validatingwebhookconfiguration keeps what is set", `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: v}
webhooks:
- name: a.example.com
  clientConfig: {url: "https://example.com/v"}
  rules: [{operations: ["*"], apiGroups: ["*"], apiVersions: ["*"], resources: ["*"], scope: Namespaced}]
  failurePolicy: Ignore
  matchPolicy: Exact
  objectSelector: {matchLabels: {a: b}}
  sideEffects: NoneOnDryRun
  timeoutSeconds: 3
  admissionReviewVersions: [v1]
`, `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: v}
webhooks:
- name: a.example.com
  clientConfig: {url: "https://example.com/v"}
  rules: [{operations: ["*"], apiGroups: ["*"], apiVersions: ["*"], resources: ["*"], scope: Namespaced}]
  failurePolicy: Ignore
  matchPolicy: Exact
  namespaceSelector: {}
  objectSelector: {matchLabels: {a: b}}
  sideEffects: NoneOnDryRun
  timeoutSeconds: 3
  admissionReviewVersions: [v1]
`},
	{"validatingadmissionpolicy", `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: p}
spec:
  matchConstraints:
    resourceRules: [{operations: [CREATE], apiGroups: [apps], apiVersions: [v1], resources: [deployments]}]
    excludeResourceRules: [{operations: [CREATE], apiGroups: [apps], apiVersions: [v1], resources: [deployments], resourceNames: [x]}]
  validations: [{expression: "object.spec.replicas <= 5"}]
`, `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: p}
spec:
  failurePolicy: Fail
  matchConstraints:
    matchPolicy: Equivalent
    namespaceSelector: {}
    objectSelector: {}
    resourceRules: [{operations: [CREATE], apiGroups: [apps], apiVersions: [v1], resources: [deployments], scope: "*"}]
    excludeResourceRules: [{operations: [CREATE], apiGroups: [apps], apiVersions: [v1], resources: [deployments], resourceNames: [x], scope: "*"}]
  validations: [{expression: "object.spec.replicas <= 5"}]
status: {}
`},
	{"validatingadmissionpolicybinding", `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: b}
spec:
  policyName: p
  validationActions: [Deny]
  paramRef: {name: x}
  matchResources: {namespaceSelector: {matchLabels: {a: b}}}
`, `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: b}
spec:
  policyName: p
  validationActions: [Deny]
  paramRef: {name: x}
  matchResources:
    matchPolicy: Equivalent
    namespaceSelector: {matchLabels: {a: b}}
    objectSelector: {}
`},
	{"validatingadmissionpolicybinding without matchResources", `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: b}
spec: {policyName: p, validationActions: [Audit]}
`, `
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: b}
spec: {policyName: p, validationActions: [Audit]}
`},
}

func TestAdmissionRegistrationDefaults(t *testing.T) {
	for _, tc := range admissionDefaultingCases {
		t.Run(tc.name, func(t *testing.T) {
			obj := decodeManifest(t, tc.in)
			applyDefaults(t, obj)
			got, want := asYAML(t, obj), asYAML(t, decodeManifest(t, tc.want))
			if got != want {
				t.Errorf("defaulted object differs\n--- got\n%s--- want\n%s", got, want)
			}
			// Idempotent, as every write defaults again.
			applyDefaults(t, obj)
			if again := asYAML(t, obj); again != got {
				t.Errorf("second pass changed the object\n%s", again)
			}
		})
	}
}
