package cel

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgkube/pgkube/admission"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func podRequest(ctx context.Context) *Request {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "web", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "b", Image: "nginx:1"}, {Name: "a", Image: "redis:7"}}}}
	return NewRequest(ctx, &admission.Attributes{Cluster: "c", Operation: admission.Create, Version: "v1",
		Resource: "pods", Namespace: "prod", Name: "web", Object: pod}, nil)
}

func TestExpressions(t *testing.T) {
	env, err := NewEnv(Object, OldObject, RequestVar, Params, NamespaceObject, Variables)
	if err != nil {
		t.Fatal(err)
	}
	params, err := DecodeJSON([]byte(`{"data":{"max":"3"},"spec":{"limit":2,"ratio":0.5}}`))
	if err != nil {
		t.Fatal(err)
	}
	vars := func(defs ...string) []Variable {
		var out []Variable
		for i := 0; i < len(defs); i += 2 {
			prg, err := env.Compile(defs[i+1], AnyResult)
			out = append(out, Variable{Name: defs[i], Program: prg, Err: err})
		}
		return out
	}
	for _, tc := range []struct {
		expr string
		vars []Variable
		want any
	}{
		{expr: "object.kind == 'Pod' && object.apiVersion == 'v1'", want: true},
		{expr: "request.kind.kind + '/' + request.resource.resource + '/' + request.operation", want: "Pod/pods/CREATE"},
		{expr: "request.options.kind", want: "CreateOptions"},
		{expr: "oldObject == null && namespaceObject == null", want: true},
		{expr: "object.spec.containers.map(c, c.name).isSorted()", want: false},
		{expr: "['a', 'b'].isSorted() && [1, 2, 3].sum() == 6 && [3, 1, 2].min() == 1 && [3, 1, 2].max() == 3", want: true},
		{expr: "[1, 2, 1].indexOf(1) == 0 && [1, 2, 1].lastIndexOf(1) == 2 && [1].indexOf(5) == -1", want: true},
		{expr: "'abc 123 def 456'.find('[0-9]+')", want: "123"},
		{expr: "'abc 123 def 456'.findAll('[0-9]+').size() == 2 && 'abc'.find('[0-9]+') == ''", want: true},
		{expr: "'a,b,c'.split(',').size() == 3 && 'Hello'.lowerAscii() == 'hello' && ' x '.trim() == 'x'", want: true},
		{expr: "sets.contains([1, 2, 3], [2]) && [[1], [2]].flatten() == [1, 2]", want: true},
		{expr: "isIP('10.0.0.1') && cidr('10.0.0.0/8').containsIP(ip('10.1.2.3'))", want: true},
		{expr: "object.spec.containers.all(c, c.image.matches('^[a-z]+:[0-9]+$'))", want: true},
		{expr: "object.metadata.?annotations.orValue({}).size() == 0", want: true},
		{expr: "params.spec.limit + 1 == 3 && params.spec.ratio < 1.0 && int(params.data.max) == 3", want: true},
		{expr: "variables.count * 2", vars: vars("count", "size(object.spec.containers)"), want: int64(4)},
		{expr: "has(variables.count) && !has(variables.other)", vars: vars("count", "1"), want: true},
	} {
		prg, err := env.Compile(tc.expr, AnyResult)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		act := NewActivation(podRequest(context.Background()), params, nil, tc.vars)
		got, err := prg.Eval(context.Background(), act, NewBudget(RuntimeBudget))
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if got.Value() != tc.want {
			t.Errorf("%s = %v (%T), want %v", tc.expr, got.Value(), got.Value(), tc.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	env, err := NewEnv(Object)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Compile("params.x", BoolResult); err == nil || !strings.HasPrefix(err.Error(), "compilation failed: ERROR: <input>:1:1: undeclared reference to 'params'") {
		t.Fatalf("err = %v", err)
	}
	if _, err := env.Compile("1 + 1", BoolResult); err == nil || err.Error() != "must evaluate to bool but got int" {
		t.Fatalf("err = %v", err)
	}
}

func TestBudget(t *testing.T) {
	env, err := NewEnv(Object, Variables)
	if err != nil {
		t.Fatal(err)
	}
	// Each evaluation is cheap, but they share one small budget.
	prg, err := env.Compile("[1, 2, 3, 4, 5].all(x, x > 0)", BoolResult)
	if err != nil {
		t.Fatal(err)
	}
	act := NewActivation(podRequest(context.Background()), nil, nil, nil)
	b := NewBudget(50)
	var lastErr error
	for i := 0; i < 10 && lastErr == nil; i++ {
		_, lastErr = prg.EvalBool(context.Background(), act, b)
	}
	if !errors.Is(lastErr, ErrOutOfBudget) {
		t.Fatalf("err = %v, want out of budget", lastErr)
	}

	// One expression alone may not exceed the per-call limit.
	heavy, err := env.Compile("[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, [1,2,3,4,5,6,7,8,9,10].all(f, a+b+c+d+e+f > 0))))))", BoolResult)
	if err != nil {
		t.Fatal(err)
	}
	_, err = heavy.EvalBool(context.Background(), act, NewBudget(RuntimeBudget))
	if err == nil || !strings.Contains(err.Error(), "cost limit exceeded") {
		t.Fatalf("err = %v, want the per-call limit", err)
	}

	// A variable that refers to itself fails instead of recursing.
	self, err := env.Compile("variables.x", AnyResult)
	if err != nil {
		t.Fatal(err)
	}
	act = NewActivation(podRequest(context.Background()), nil, nil, []Variable{{Name: "x", Program: self}})
	if _, err := self.Eval(context.Background(), act, nil); err == nil || !strings.Contains(err.Error(), "refers to itself") {
		t.Fatalf("err = %v", err)
	}
}

func TestRules(t *testing.T) {
	req := podRequest(context.Background())
	rule := func(ops []admissionregistrationv1.OperationType, resources []string, scope admissionregistrationv1.ScopeType) admissionregistrationv1.RuleWithOperations {
		return admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: resources, Scope: &scope}}
	}
	create := []admissionregistrationv1.OperationType{admissionregistrationv1.Create}
	all := []admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll}
	for _, tc := range []struct {
		rule admissionregistrationv1.RuleWithOperations
		want bool
	}{
		{rule(create, []string{"pods"}, admissionregistrationv1.AllScopes), true},
		{rule(all, []string{"*"}, admissionregistrationv1.NamespacedScope), true},
		{rule(all, []string{"*"}, admissionregistrationv1.ClusterScope), false},
		// As kube-apiserver reads it, "pods/*" matches pods itself too.
		{rule(all, []string{"pods/*"}, admissionregistrationv1.AllScopes), true},
		{rule(all, []string{"pods/status"}, admissionregistrationv1.AllScopes), false},
		{rule(all, []string{"*/*"}, admissionregistrationv1.AllScopes), true},
		{rule([]admissionregistrationv1.OperationType{admissionregistrationv1.Update}, []string{"pods"}, admissionregistrationv1.AllScopes), false},
		{rule(all, []string{"deployments"}, admissionregistrationv1.AllScopes), false},
	} {
		if got := RuleMatches(tc.rule, req); got != tc.want {
			t.Errorf("%v: got %v, want %v", tc.rule, got, tc.want)
		}
	}
	req.Attrs.Subresource = "status"
	if !RuleMatches(rule(all, []string{"pods/*"}, admissionregistrationv1.AllScopes), req) ||
		RuleMatches(rule(all, []string{"pods"}, admissionregistrationv1.AllScopes), req) ||
		RuleMatches(rule(all, []string{"*"}, admissionregistrationv1.AllScopes), req) {
		t.Error("subresource rules")
	}
}

func TestDecodeJSONKeepsIntegers(t *testing.T) {
	v, err := DecodeJSON([]byte(`{"a":1,"b":1.5,"c":[2,"x"]}`))
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["a"] != int64(1) || m["b"] != 1.5 || m["c"].([]any)[0] != int64(2) {
		t.Fatalf("decoded %#v", m)
	}
}
