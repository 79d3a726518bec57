package policy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"testing"

	"github.com/pgkube/pgkube/admission"
	"github.com/pgkube/pgkube/authn"
	"github.com/pgkube/pgkube/internal/pgtest"
	"github.com/pgkube/pgkube/migrations"
	"github.com/pgkube/pgkube/storage"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrations.ApplyURL)
	os.Exit(pgtest.Main(m))
}

const cluster = "root"

func newStore(t *testing.T) *storage.Store {
	t.Helper()
	return storage.New(pgtest.Pool(t, pgtest.NewDatabase(t)))
}

// put stores obj as the REST layer does: JSON with apiVersion and kind and
// the resourceVersion it is stored at.
func put(t *testing.T, s *storage.Store, resource, apiVersion, kind string, obj runtime.Object) {
	t.Helper()
	m, err := meta.Accessor(obj)
	if err != nil {
		t.Fatal(err)
	}
	tm := obj.GetObjectKind().(*metav1.TypeMeta)
	tm.APIVersion, tm.Kind = apiVersion, kind
	_, err = s.Write(context.Background(), cluster, storage.Write{
		Op:     storage.Create,
		Key:    storage.Key{Resource: resource, Namespace: m.GetNamespace(), Name: m.GetName()},
		Labels: m.GetLabels(),
		Encode: func(rv int64) ([]byte, error) {
			m.SetResourceVersion(strconv.FormatInt(rv, 10))
			return json.Marshal(obj)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func putNamespace(t *testing.T, s *storage.Store, name string, ls map[string]string) {
	t.Helper()
	put(t, s, "/namespaces", "v1", "Namespace", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: ls}})
}

func putConfigMap(t *testing.T, s *storage.Store, ns, name string, ls, data map[string]string) {
	t.Helper()
	put(t, s, "/configmaps", "v1", "ConfigMap", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: ls}, Data: data})
}

// configMaps is the param resolver the API server would give: ConfigMaps
// are served, nothing else is.
func configMaps(gvk schema.GroupVersionKind) (string, bool, bool) {
	if gvk == (schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}) {
		return "/configmaps", true, true
	}
	return "", false, false
}

func deployment(ns, name string, replicas int32, ls map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: ls},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas},
	}
}

func deploymentCreate(d *appsv1.Deployment) *admission.Attributes {
	return &admission.Attributes{Cluster: cluster, Operation: admission.Create, Group: "apps", Version: "v1",
		Resource: "deployments", Namespace: d.Namespace, Name: d.Name, Object: d}
}

type policyOpt func(*admissionregistrationv1.ValidatingAdmissionPolicy)

// newPolicy matches deployment creates and updates and runs the given
// validations (expression, message, messageExpression triples).
func newPolicy(name string, opts ...policyOpt) *admissionregistrationv1.ValidatingAdmissionPolicy {
	p := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			MatchConstraints: &admissionregistrationv1.MatchResources{
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
						Rule: admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"},
							Resources: []string{"deployments"}},
					},
				}},
			},
		},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func withValidation(expr, message, messageExpression string) policyOpt {
	return func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
		p.Spec.Validations = append(p.Spec.Validations,
			admissionregistrationv1.Validation{Expression: expr, Message: message, MessageExpression: messageExpression})
	}
}

func withReason(r metav1.StatusReason) policyOpt {
	return func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
		p.Spec.Validations[len(p.Spec.Validations)-1].Reason = &r
	}
}

func withParamKind(apiVersion, kind string) policyOpt {
	return func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
		p.Spec.ParamKind = &admissionregistrationv1.ParamKind{APIVersion: apiVersion, Kind: kind}
	}
}

func withCondition(name, expr string) policyOpt {
	return func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
		p.Spec.MatchConditions = append(p.Spec.MatchConditions, admissionregistrationv1.MatchCondition{Name: name, Expression: expr})
	}
}

func withVariable(name, expr string) policyOpt {
	return func(p *admissionregistrationv1.ValidatingAdmissionPolicy) {
		p.Spec.Variables = append(p.Spec.Variables, admissionregistrationv1.Variable{Name: name, Expression: expr})
	}
}

func withFailurePolicy(f admissionregistrationv1.FailurePolicyType) policyOpt {
	return func(p *admissionregistrationv1.ValidatingAdmissionPolicy) { p.Spec.FailurePolicy = &f }
}

func newBindingFor(name, policy string, actions ...admissionregistrationv1.ValidationAction) *admissionregistrationv1.ValidatingAdmissionPolicyBinding {
	if len(actions) == 0 {
		actions = []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny}
	}
	return &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{PolicyName: policy, ValidationActions: actions},
	}
}

func wantStatus(t *testing.T, err error, code int32, reason metav1.StatusReason, msg string) {
	t.Helper()
	var se *apierrors.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("error = %v (%T), want a status %d %q", err, err, code, msg)
	}
	if se.ErrStatus.Code != code || se.ErrStatus.Reason != reason || se.ErrStatus.Message != msg {
		t.Fatalf("status = %d %s %q\nwant     %d %s %q", se.ErrStatus.Code, se.ErrStatus.Reason, se.ErrStatus.Message, code, reason, msg)
	}
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestMaxReplicas(t *testing.T) {
	st := newStore(t)
	putNamespace(t, st, "prod", nil)
	p := New(Options{Store: st})
	p.Apply(cluster, newPolicy("max-replicas", withValidation("object.spec.replicas <= 5", "", "")), false)
	p.Apply(cluster, newBindingFor("max-replicas-binding", "max-replicas"), false)
	v := p.Plugin()

	mustNil(t, v.Admit(context.Background(), deploymentCreate(deployment("prod", "web", 5, nil))))
	err := v.Admit(context.Background(), deploymentCreate(deployment("prod", "web", 6, nil)))
	wantStatus(t, err, 422, metav1.StatusReasonInvalid,
		`deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-binding' denied request: failed expression: object.spec.replicas <= 5`)
	var se *apierrors.StatusError
	errors.As(err, &se)
	if d := se.ErrStatus.Details; d == nil || d.Name != "web" || d.Group != "apps" || d.Kind != "deployments" || len(d.Causes) != 1 {
		t.Fatalf("details = %+v", d)
	}

	// Other resources, and the same one in another cluster, are not checked.
	mustNil(t, v.Admit(context.Background(), &admission.Attributes{Cluster: cluster, Operation: admission.Create,
		Version: "v1", Resource: "pods", Namespace: "prod", Name: "p", Object: &corev1.Pod{}}))
	a := deploymentCreate(deployment("prod", "web", 6, nil))
	a.Cluster = "other"
	mustNil(t, v.Admit(context.Background(), a))

	// Without a binding the policy does nothing; deleting the binding
	// takes it out again.
	p.Apply(cluster, newBindingFor("max-replicas-binding", "max-replicas"), true)
	mustNil(t, v.Admit(context.Background(), deploymentCreate(deployment("prod", "web", 6, nil))))
}

func TestMessagesAndReasons(t *testing.T) {
	p := New(Options{})
	p.Apply(cluster, newPolicy("msgs",
		withValidation("object.spec.replicas <= 5", "  too many replicas  ", ""),
		withValidation("object.metadata.name.startsWith('app-')", "static", "'name ' + object.metadata.name + ' lacks the app- prefix'"),
		withReason(metav1.StatusReasonForbidden),
	), false)
	p.Apply(cluster, newBindingFor("b", "msgs"), false)
	err := p.Plugin().Admit(context.Background(), deploymentCreate(deployment("", "web", 6, nil)))
	wantStatus(t, err, 422, metav1.StatusReasonInvalid,
		`deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'msgs' with binding 'b' denied request: too many replicas`)
	err = p.Plugin().Admit(context.Background(), deploymentCreate(deployment("", "web", 1, nil)))
	wantStatus(t, err, 403, metav1.StatusReasonForbidden,
		`deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'msgs' with binding 'b' denied request: name web lacks the app- prefix`)

	// A messageExpression that fails, or gives several lines, falls back.
	p.Apply(cluster, newPolicy("msgs",
		withValidation("false", "static", "object.spec.nothing"),
		withValidation("false", "", "'two\\nlines'"),
	), false)
	err = p.Plugin().Admit(context.Background(), deploymentCreate(deployment("", "web", 1, nil)))
	wantStatus(t, err, 422, metav1.StatusReasonInvalid,
		`deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'msgs' with binding 'b' denied request: static`)
}

func TestParamsFromConfigMap(t *testing.T) {
	st := newStore(t)
	putNamespace(t, st, "prod", nil)
	putNamespace(t, st, "dev", nil)
	putConfigMap(t, st, "prod", "limits", map[string]string{"tier": "gold"}, map[string]string{"maxReplicas": "3"})
	putConfigMap(t, st, "policy", "global", map[string]string{"tier": "gold"}, map[string]string{"maxReplicas": "10"})
	p := New(Options{Store: st, ParamResource: configMaps})
	p.Apply(cluster, newPolicy("replica-limit", withParamKind("v1", "ConfigMap"),
		withValidation("object.spec.replicas <= int(params.data.maxReplicas)", "",
			"'at most ' + params.data.maxReplicas + ' replicas in ' + params.metadata.namespace")), false)
	b := newBindingFor("per-namespace", "replica-limit")
	deny := admissionregistrationv1.DenyAction
	b.Spec.ParamRef = &admissionregistrationv1.ParamRef{Name: "limits", ParameterNotFoundAction: &deny}
	p.Apply(cluster, b, false)
	v := p.Plugin()

	mustNil(t, v.Admit(context.Background(), deploymentCreate(deployment("prod", "web", 3, nil))))
	err := v.Admit(context.Background(), deploymentCreate(deployment("prod", "web", 4, nil)))
	wantStatus(t, err, 422, metav1.StatusReasonInvalid,
		`deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'replica-limit' with binding 'per-namespace' denied request: at most 3 replicas in prod`)
	// dev has no "limits" ConfigMap: the binding denies.
	err = v.Admit(context.Background(), deploymentCreate(deployment("dev", "web", 1, nil)))
	wantStatus(t, err, 422, metav1.StatusReasonInvalid,
		"deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'replica-limit' with binding 'per-namespace' denied request: failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction")
	// ... or allows, if told to.
	allow := admissionregistrationv1.AllowAction
	b.Spec.ParamRef.ParameterNotFoundAction = &allow
	p.Apply(cluster, b, false)
	mustNil(t, v.Admit(context.Background(), deploymentCreate(deployment("dev", "web", 100, nil))))

	// A param in a fixed namespace, found by selector.
	b.Spec.ParamRef = &admissionregistrationv1.ParamRef{Namespace: "policy",
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}, ParameterNotFoundAction: &deny}
	p.Apply(cluster, b, false)
	mustNil(t, v.Admit(context.Background(), deploymentCreate(deployment("dev", "web", 10, nil))))
	err = v.Admit(context.Background(), deploymentCreate(deployment("dev", "web", 11, nil)))
	wantStatus(t, err, 422, metav1.StatusReasonInvalid,
		`deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'replica-limit' with binding 'per-namespace' denied request: at most 10 replicas in policy`)

	// A paramKind pgkube does not serve is a configuration error.
	p.Apply(cluster, newPolicy("replica-limit", withParamKind("example.com/v1", "Limits"),
		withValidation("true", "", "")), false)
	err = v.Admit(context.Background(), deploymentCreate(deployment("dev", "web", 1, nil)))
	wantStatus(t, err, 422, metav1.StatusReasonInvalid,
		`deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'replica-limit' with binding 'per-namespace' denied request: failed to configure binding: failed to find resource referenced by paramKind: 'example.com/v1, Kind=Limits'`)
}

func TestWarnAction(t *testing.T) {
	p := New(Options{})
	p.Apply(cluster, newPolicy("max-replicas", withValidation("object.spec.replicas <= 5", "", "")), false)
	p.Apply(cluster, newBindingFor("warn-only", "max-replicas", admissionregistrationv1.Warn, admissionregistrationv1.Audit), false)
	ctx, warnings := admission.WithWarnings(context.Background())
	mustNil(t, p.Plugin().Admit(ctx, deploymentCreate(deployment("", "web", 6, nil))))
	want := "Validation failed for ValidatingAdmissionPolicy 'max-replicas' with binding 'warn-only': failed expression: object.spec.replicas <= 5"
	if got := warnings.List(); len(got) != 1 || got[0] != want {
		t.Fatalf("warnings = %q, want %q", got, want)
	}
}

func TestMatchConditionsAndVariables(t *testing.T) {
	p := New(Options{})
	p.Apply(cluster, newPolicy("labelled",
		withCondition("not-system", "!request.userInfo.username.startsWith('system:')"),
		withCondition("has-app", "has(object.metadata.labels) && 'app' in object.metadata.labels"),
		withVariable("app", "object.metadata.labels.app"),
		withVariable("allowed", "['web', 'db']"),
		withValidation("variables.app in variables.allowed", "", "'app ' + variables.app + ' is not one of ' + variables.allowed.join(', ')"),
	), false)
	p.Apply(cluster, newBindingFor("b", "labelled"), false)
	v := p.Plugin()
	alice := authn.WithUser(context.Background(), &authn.User{Name: "alice"})
	system := authn.WithUser(context.Background(), &authn.User{Name: "system:kube-controller-manager"})

	mustNil(t, v.Admit(alice, deploymentCreate(deployment("", "x", 1, map[string]string{"app": "web"}))))
	mustNil(t, v.Admit(alice, deploymentCreate(deployment("", "x", 1, nil))))
	mustNil(t, v.Admit(system, deploymentCreate(deployment("", "x", 1, map[string]string{"app": "cache"}))))
	err := v.Admit(alice, deploymentCreate(deployment("", "x", 1, map[string]string{"app": "cache"})))
	wantStatus(t, err, 422, metav1.StatusReasonInvalid,
		`deployments.apps "x" is forbidden: ValidatingAdmissionPolicy 'labelled' with binding 'b' denied request: app cache is not one of web, db`)
}

func TestFailurePolicy(t *testing.T) {
	p := New(Options{})
	p.Apply(cluster, newPolicy("broken", withValidation("object.spec.nothing > 1", "", "")), false)
	p.Apply(cluster, newBindingFor("b", "broken"), false)
	err := p.Plugin().Admit(context.Background(), deploymentCreate(deployment("", "web", 1, nil)))
	wantStatus(t, err, 422, metav1.StatusReasonInvalid,
		`deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'broken' with binding 'b' denied request: expression 'object.spec.nothing > 1' resulted in error: no such key: nothing`)

	p.Apply(cluster, newPolicy("broken", withValidation("object.spec.replicas >", "", "")), false)
	err = p.Plugin().Admit(context.Background(), deploymentCreate(deployment("", "web", 1, nil)))
	var se *apierrors.StatusError
	if !errors.As(err, &se) || se.ErrStatus.Code != 422 {
		t.Fatalf("error = %v, want a compilation error", err)
	}
	const prefix = `deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'broken' with binding 'b' denied request: compilation error: compilation failed: ERROR: <input>:1:`
	if msg := se.ErrStatus.Message; len(msg) < len(prefix) || msg[:len(prefix)] != prefix {
		t.Fatalf("message = %q, want it to start with %q", msg, prefix)
	}

	p.Apply(cluster, newPolicy("broken", withValidation("object.spec.nothing > 1", "", ""),
		withFailurePolicy(admissionregistrationv1.Ignore)), false)
	mustNil(t, p.Plugin().Admit(context.Background(), deploymentCreate(deployment("", "web", 1, nil))))
}

func TestNamespaceSelectorAndObject(t *testing.T) {
	st := newStore(t)
	putNamespace(t, st, "prod", map[string]string{"env": "prod"})
	putNamespace(t, st, "dev", map[string]string{"env": "dev"})
	p := New(Options{Store: st})
	pol := newPolicy("prod-replicas", withValidation("object.spec.replicas >= 2", "",
		"namespaceObject.metadata.name + ' needs at least 2 replicas'"))
	pol.Spec.MatchConstraints.NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}
	p.Apply(cluster, pol, false)
	p.Apply(cluster, newBindingFor("b", "prod-replicas"), false)
	v := p.Plugin()

	mustNil(t, v.Admit(context.Background(), deploymentCreate(deployment("dev", "web", 1, nil))))
	err := v.Admit(context.Background(), deploymentCreate(deployment("prod", "web", 1, nil)))
	wantStatus(t, err, 422, metav1.StatusReasonInvalid,
		`deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'prod-replicas' with binding 'b' denied request: prod needs at least 2 replicas`)

	// A binding narrows further: by object labels and by name.
	b := newBindingFor("b", "prod-replicas")
	b.Spec.MatchResources = &admissionregistrationv1.MatchResources{
		ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"critical": "true"}},
	}
	p.Apply(cluster, b, false)
	mustNil(t, v.Admit(context.Background(), deploymentCreate(deployment("prod", "web", 1, nil))))
	err = v.Admit(context.Background(), deploymentCreate(deployment("prod", "web", 1, map[string]string{"critical": "true"})))
	if err == nil {
		t.Fatal("binding's object selector did not select a critical deployment")
	}
	b.Spec.MatchResources = &admissionregistrationv1.MatchResources{
		ExcludeResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
			ResourceNames: []string{"legacy"},
			RuleWithOperations: admissionregistrationv1.RuleWithOperations{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{"*"}, APIVersions: []string{"*"},
					Resources: []string{"*"}},
			},
		}},
	}
	p.Apply(cluster, b, false)
	mustNil(t, v.Admit(context.Background(), deploymentCreate(deployment("prod", "legacy", 1, nil))))
	if err := v.Admit(context.Background(), deploymentCreate(deployment("prod", "web", 1, nil))); err == nil {
		t.Fatal("exclusion by name excluded another name")
	}
}

func TestDeleteSeesOldObject(t *testing.T) {
	p := New(Options{})
	pol := newPolicy("keep-protected", withValidation("!has(oldObject.metadata.labels) || oldObject.metadata.labels.protected != 'true'",
		"protected deployments cannot be deleted", ""))
	pol.Spec.MatchConstraints.ResourceRules[0].Operations = []admissionregistrationv1.OperationType{admissionregistrationv1.Delete}
	p.Apply(cluster, pol, false)
	p.Apply(cluster, newBindingFor("b", "keep-protected"), false)
	del := func(d *appsv1.Deployment) *admission.Attributes {
		return &admission.Attributes{Cluster: cluster, Operation: admission.Delete, Group: "apps", Version: "v1",
			Resource: "deployments", Namespace: d.Namespace, Name: d.Name, OldObject: d}
	}
	mustNil(t, p.Plugin().Admit(context.Background(), del(deployment("", "web", 1, nil))))
	err := p.Plugin().Admit(context.Background(), del(deployment("", "web", 1, map[string]string{"protected": "true"})))
	wantStatus(t, err, 422, metav1.StatusReasonInvalid,
		`deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'keep-protected' with binding 'b' denied request: protected deployments cannot be deleted`)
}

func TestUnstructuredObjectsAndFeed(t *testing.T) {
	p := New(Options{})
	toU := func(obj runtime.Object, kind string) *unstructured.Unstructured {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
		mustNil(t, err)
		u := &unstructured.Unstructured{Object: m}
		u.SetAPIVersion("admissionregistration.k8s.io/v1")
		u.SetKind(kind)
		return u
	}
	pol := newPolicy("widgets", withValidation("object.spec.size < 10", "", ""))
	pol.Spec.MatchConstraints.ResourceRules[0].APIGroups = []string{"example.com"}
	pol.Spec.MatchConstraints.ResourceRules[0].Resources = []string{"widgets"}
	pol.Spec.MatchConstraints.ResourceRules[0].APIVersions = []string{"*"}
	p.Apply(cluster, toU(pol, "ValidatingAdmissionPolicy"), false)
	p.Apply(cluster, toU(newBindingFor("b", "widgets"), "ValidatingAdmissionPolicyBinding"), false)
	widget := func(size int64) *admission.Attributes {
		return &admission.Attributes{Cluster: cluster, Operation: admission.Create, Group: "example.com", Version: "v1",
			Resource: "widgets", Name: "w", Object: &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w"},
				"spec": map[string]any{"size": size}}}}
	}
	mustNil(t, p.Plugin().Admit(context.Background(), widget(3)))
	err := p.Plugin().Admit(context.Background(), widget(30))
	wantStatus(t, err, 422, metav1.StatusReasonInvalid,
		`widgets.example.com "w" is forbidden: ValidatingAdmissionPolicy 'widgets' with binding 'b' denied request: failed expression: object.spec.size < 10`)
}

// BenchmarkAdmit measures one request through a matching policy with two
// validations, one using a variable and a messageExpression: the CEL work
// every matching request pays.
func BenchmarkAdmit(b *testing.B) {
	p := New(Options{})
	p.Apply(cluster, newPolicy("bench",
		withVariable("replicas", "object.spec.replicas"),
		withValidation("variables.replicas <= 5", "", "'too many: ' + string(variables.replicas)"),
		withValidation("object.metadata.name.startsWith('w') && request.userInfo.username != 'eve'", "", ""),
	), false)
	p.Apply(cluster, newBindingFor("b", "bench"), false)
	v := p.Plugin()
	a := deploymentCreate(deployment("", "web", 3, map[string]string{"app": "web"}))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Admit(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAdmitNoMatch is the cost for requests no policy selects.
func BenchmarkAdmitNoMatch(b *testing.B) {
	p := New(Options{})
	p.Apply(cluster, newPolicy("bench", withValidation("object.spec.replicas <= 5", "", "")), false)
	p.Apply(cluster, newBindingFor("b", "bench"), false)
	v := p.Plugin()
	a := &admission.Attributes{Cluster: cluster, Operation: admission.Create, Version: "v1", Resource: "configmaps",
		Name: "c", Object: &corev1.ConfigMap{}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Admit(ctx, a); err != nil {
			b.Fatal(err)
		}
	}
}
