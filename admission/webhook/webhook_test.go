package webhook

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgkube/pgkube/admission"
	"github.com/pgkube/pgkube/authn"
	"github.com/pgkube/pgkube/internal/pgtest"
	"github.com/pgkube/pgkube/migrations"
	"github.com/pgkube/pgkube/storage"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrations.ApplyURL)
	os.Exit(pgtest.Main(m))
}

const cluster = "root"

// server is a real HTTPS webhook backend. Each path is one behaviour;
// every review received is kept for the test to inspect.
type server struct {
	*httptest.Server
	mu      sync.Mutex
	reviews map[string][]admissionv1.AdmissionRequest
}

func newServer(t *testing.T) *server {
	s := &server{reviews: map[string][]admissionv1.AdmissionRequest{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/allow", s.handle(func(*admissionv1.AdmissionRequest, *admissionv1.AdmissionResponse) {}))
	mux.HandleFunc("/label", s.handle(func(req *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse) {
		addLabel(req, resp, "mutated", "yes")
	}))
	mux.HandleFunc("/deny", s.handle(func(_ *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse) {
		resp.Allowed = false
		resp.Result = &metav1.Status{Code: http.StatusForbidden, Message: "replicas must be odd"}
	}))
	mux.HandleFunc("/deny-bare", s.handle(func(_ *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse) {
		resp.Allowed = false
	}))
	mux.HandleFunc("/warn", s.handle(func(_ *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse) {
		resp.Warnings = []string{"image tag latest is discouraged"}
	}))
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
		s.handle(func(*admissionv1.AdmissionRequest, *admissionv1.AdmissionResponse) {})(w, r)
	})
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, "boom")
	})
	// Reinvocation: "a" labels the object, and labels it again once it
	// sees what "b" added; "b" adds its label once.
	mux.HandleFunc("/a", s.handle(func(req *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse) {
		if labelsOf(req)["b"] != "" {
			addLabel(req, resp, "a-after-b", "yes")
			return
		}
		addLabel(req, resp, "a", "yes")
	}))
	mux.HandleFunc("/b", s.handle(func(req *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse) {
		addLabel(req, resp, "b", "yes")
	}))
	s.Server = httptest.NewTLSServer(mux)
	t.Cleanup(s.Close)
	return s
}

func (s *server) handle(f func(*admissionv1.AdmissionRequest, *admissionv1.AdmissionResponse)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.reviews[r.URL.Path] = append(s.reviews[r.URL.Path], *review.Request)
		s.mu.Unlock()
		resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		f(review.Request, resp)
		review.Request, review.Response = nil, resp
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&review)
	}
}

func (s *server) calls(path string) []admissionv1.AdmissionRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]admissionv1.AdmissionRequest(nil), s.reviews[path]...)
}

// caBundle is the PEM of the server's self-signed certificate: trusting it
// alone is what a webhook's caBundle asks for.
func (s *server) caBundle() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

// otherCA is a certificate authority that signed nothing the server has
// (httptest servers all share one certificate).
func otherCA(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mustNil(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	mustNil(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func labelsOf(req *admissionv1.AdmissionRequest) map[string]string {
	var m metav1.PartialObjectMetadata
	_ = json.Unmarshal(req.Object.Raw, &m)
	return m.Labels
}

// addLabel answers with a JSON patch adding a label, unless it is there.
func addLabel(req *admissionv1.AdmissionRequest, resp *admissionv1.AdmissionResponse, k, v string) {
	ls := labelsOf(req)
	if ls[k] == v {
		return
	}
	var op map[string]any
	if ls == nil {
		op = map[string]any{"op": "add", "path": "/metadata/labels", "value": map[string]string{k: v}}
	} else {
		op = map[string]any{"op": "add", "path": "/metadata/labels/" + k, "value": v}
	}
	resp.Patch, _ = json.Marshal([]any{op})
	pt := admissionv1.PatchTypeJSONPatch
	resp.PatchType = &pt
}

type hookOpt func(*admissionregistrationv1.ValidatingWebhook)

func withFailurePolicy(p admissionregistrationv1.FailurePolicyType) hookOpt {
	return func(h *admissionregistrationv1.ValidatingWebhook) { h.FailurePolicy = &p }
}

func withTimeout(s int32) hookOpt {
	return func(h *admissionregistrationv1.ValidatingWebhook) { h.TimeoutSeconds = &s }
}

func withSideEffects(se admissionregistrationv1.SideEffectClass) hookOpt {
	return func(h *admissionregistrationv1.ValidatingWebhook) { h.SideEffects = &se }
}

func withNamespaceSelector(ls map[string]string) hookOpt {
	return func(h *admissionregistrationv1.ValidatingWebhook) {
		h.NamespaceSelector = &metav1.LabelSelector{MatchLabels: ls}
	}
}

func withObjectSelector(ls map[string]string) hookOpt {
	return func(h *admissionregistrationv1.ValidatingWebhook) {
		h.ObjectSelector = &metav1.LabelSelector{MatchLabels: ls}
	}
}

func withCondition(name, expr string) hookOpt {
	return func(h *admissionregistrationv1.ValidatingWebhook) {
		h.MatchConditions = append(h.MatchConditions, admissionregistrationv1.MatchCondition{Name: name, Expression: expr})
	}
}

func withRules(ops []admissionregistrationv1.OperationType, groups, resources []string) hookOpt {
	return func(h *admissionregistrationv1.ValidatingWebhook) {
		h.Rules = []admissionregistrationv1.RuleWithOperations{{Operations: ops,
			Rule: admissionregistrationv1.Rule{APIGroups: groups, APIVersions: []string{"*"}, Resources: resources}}}
	}
}

// validatingHook is a webhook at path of s for pod and deployment creates
// and updates, with sideEffects None.
func validatingHook(s *server, name, path string, opts ...hookOpt) admissionregistrationv1.ValidatingWebhook {
	u := s.URL + path
	none := admissionregistrationv1.SideEffectClassNone
	h := admissionregistrationv1.ValidatingWebhook{
		Name:                    name,
		ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &u, CABundle: s.caBundle()},
		SideEffects:             &none,
		AdmissionReviewVersions: []string{"v1"},
	}
	withRules([]admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		[]string{"", "apps"}, []string{"pods", "deployments"})(&h)
	for _, o := range opts {
		o(&h)
	}
	return h
}

func validatingConfig(name string, hooks ...admissionregistrationv1.ValidatingWebhook) *admissionregistrationv1.ValidatingWebhookConfiguration {
	return &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}, Webhooks: hooks}
}

// mutatingConfig turns validating webhook specs into mutating ones, with
// the reinvocation policy given.
func mutatingConfig(name string, reinvoke admissionregistrationv1.ReinvocationPolicyType, hooks ...admissionregistrationv1.ValidatingWebhook) *admissionregistrationv1.MutatingWebhookConfiguration {
	c := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for _, h := range hooks {
		c.Webhooks = append(c.Webhooks, admissionregistrationv1.MutatingWebhook{
			Name: h.Name, ClientConfig: h.ClientConfig, Rules: h.Rules, FailurePolicy: h.FailurePolicy,
			NamespaceSelector: h.NamespaceSelector, ObjectSelector: h.ObjectSelector, SideEffects: h.SideEffects,
			TimeoutSeconds: h.TimeoutSeconds, AdmissionReviewVersions: h.AdmissionReviewVersions,
			MatchConditions: h.MatchConditions, ReinvocationPolicy: &reinvoke,
		})
	}
	return c
}

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
	obj.GetObjectKind().(*metav1.TypeMeta).APIVersion = apiVersion
	obj.GetObjectKind().(*metav1.TypeMeta).Kind = kind
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

// testPod is typed and, as objects decoded by the REST layer may be,
// without apiVersion and kind.
func testPod(ns, name string, ls map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: ls},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}
}

func podCreate(p *corev1.Pod) *admission.Attributes {
	return &admission.Attributes{Cluster: cluster, Operation: admission.Create, Version: "v1", Resource: "pods",
		Namespace: p.Namespace, Name: p.Name, Object: p}
}

func userCtx() context.Context {
	return authn.WithUser(context.Background(), &authn.User{Name: "alice", UID: "u-1", Groups: []string{"devs", authn.AllAuthenticated},
		Extra: map[string][]string{"scopes": {"a", "b"}}})
}

func wantStatus(t *testing.T, err error, code int32, msg string) *apierrors.StatusError {
	t.Helper()
	var se *apierrors.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("error = %v (%T), want a status %d %q", err, err, code, msg)
	}
	if se.ErrStatus.Code != code || se.ErrStatus.Message != msg {
		t.Fatalf("status = %d %q\nwant     %d %q", se.ErrStatus.Code, se.ErrStatus.Message, code, msg)
	}
	return se
}

func mustNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestMutatingWebhookPatchesObject(t *testing.T) {
	s := newServer(t)
	st := newStore(t)
	putNamespace(t, st, "prod", nil)
	w := New(Options{Store: st, NewUID: func() string { return "review-1" }})
	w.Apply(cluster, mutatingConfig("labeler", admissionregistrationv1.NeverReinvocationPolicy,
		validatingHook(s, "label.example.com", "/label")), false)

	pod := testPod("prod", "web", nil)
	mustNil(t, w.Mutating().Admit(userCtx(), podCreate(pod)))
	if pod.Labels["mutated"] != "yes" {
		t.Fatalf("labels = %v, want mutated=yes set on the caller's object", pod.Labels)
	}
	if pod.Kind != "" || pod.Spec.Containers[0].Image != "nginx" {
		t.Fatalf("patch lost or changed other fields: %+v", pod)
	}

	calls := s.calls("/label")
	if len(calls) != 1 {
		t.Fatalf("%d calls, want 1", len(calls))
	}
	r := calls[0]
	if r.UID != "review-1" || r.Kind != (metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}) ||
		r.Resource != (metav1.GroupVersionResource{Version: "v1", Resource: "pods"}) ||
		r.RequestKind == nil || *r.RequestKind != r.Kind || r.Name != "web" || r.Namespace != "prod" ||
		r.Operation != admissionv1.Create || r.DryRun == nil || *r.DryRun {
		t.Fatalf("request = %+v", r)
	}
	if r.UserInfo.Username != "alice" || r.UserInfo.UID != "u-1" || len(r.UserInfo.Groups) != 2 ||
		len(r.UserInfo.Extra["scopes"]) != 2 {
		t.Fatalf("userInfo = %+v", r.UserInfo)
	}
	var obj map[string]any
	mustNil(t, json.Unmarshal(r.Object.Raw, &obj))
	if obj["apiVersion"] != "v1" || obj["kind"] != "Pod" {
		t.Fatalf("object sent without its kind: %s", r.Object.Raw)
	}
	if string(r.OldObject.Raw) != "" && string(r.OldObject.Raw) != "null" {
		t.Fatalf("oldObject = %s, want null on create", r.OldObject.Raw)
	}
	var opts metav1.CreateOptions
	mustNil(t, json.Unmarshal(r.Options.Raw, &opts))
	if opts.APIVersion != "meta.k8s.io/v1" || opts.Kind != "CreateOptions" {
		t.Fatalf("options = %s", r.Options.Raw)
	}
}

func TestMutatingWebhookPatchesUnstructured(t *testing.T) {
	s := newServer(t)
	w := New(Options{})
	w.Apply(cluster, mutatingConfig("labeler", admissionregistrationv1.NeverReinvocationPolicy,
		validatingHook(s, "label.example.com", "/label", withRules(
			[]admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll},
			[]string{"example.com"}, []string{"*"}))), false)
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "w1"}, "spec": map[string]any{"size": int64(3)},
	}}
	mustNil(t, w.Mutating().Admit(context.Background(), &admission.Attributes{Cluster: cluster,
		Operation: admission.Create, Group: "example.com", Version: "v1", Resource: "widgets", Name: "w1", Object: u}))
	if u.GetLabels()["mutated"] != "yes" {
		t.Fatalf("labels = %v", u.GetLabels())
	}
	if size, _, _ := unstructured.NestedInt64(u.Object, "spec", "size"); size != 3 {
		t.Fatalf("spec.size = %v after patch, want int64 3", u.Object["spec"])
	}
}

func TestValidatingWebhookDenies(t *testing.T) {
	s := newServer(t)
	w := New(Options{})
	w.Apply(cluster, validatingConfig("policy",
		validatingHook(s, "allow.example.com", "/allow"),
		validatingHook(s, "odd.example.com", "/deny"),
		validatingHook(s, "bare.example.com", "/deny-bare")), false)

	err := w.Validating().Admit(context.Background(), podCreate(testPod("prod", "web", nil)))
	se := wantStatus(t, err, 403, `admission webhook "odd.example.com" denied the request: replicas must be odd`)
	if se.ErrStatus.Status != metav1.StatusFailure {
		t.Fatalf("status = %+v", se.ErrStatus)
	}
	// All matching webhooks were called, in parallel.
	for _, p := range []string{"/allow", "/deny", "/deny-bare"} {
		if n := len(s.calls(p)); n != 1 {
			t.Fatalf("%s called %d times, want 1", p, n)
		}
	}

	w.Apply(cluster, validatingConfig("policy", validatingHook(s, "bare.example.com", "/deny-bare")), false)
	err = w.Validating().Admit(context.Background(), podCreate(testPod("prod", "web", nil)))
	wantStatus(t, err, 400, `admission webhook "bare.example.com" denied the request without explanation`)

	// Deleted configurations are no longer consulted.
	w.Apply(cluster, validatingConfig("policy"), true)
	mustNil(t, w.Validating().Admit(context.Background(), podCreate(testPod("prod", "web", nil))))
	// Nor are webhooks of another cluster.
	w.Apply("other", validatingConfig("policy", validatingHook(s, "bare.example.com", "/deny-bare")), false)
	mustNil(t, w.Validating().Admit(context.Background(), podCreate(testPod("prod", "web", nil))))
}

func TestWebhookWarnings(t *testing.T) {
	s := newServer(t)
	w := New(Options{})
	w.Apply(cluster, validatingConfig("warner", validatingHook(s, "warn.example.com", "/warn")), false)
	ctx, warnings := admission.WithWarnings(context.Background())
	mustNil(t, w.Validating().Admit(ctx, podCreate(testPod("prod", "web", nil))))
	if got := warnings.List(); len(got) != 1 || got[0] != "image tag latest is discouraged" {
		t.Fatalf("warnings = %q", got)
	}
}

func TestWebhookTimeoutFollowsFailurePolicy(t *testing.T) {
	s := newServer(t)
	w := New(Options{})
	w.Apply(cluster, validatingConfig("slow",
		validatingHook(s, "slow.example.com", "/slow", withTimeout(1), withFailurePolicy(admissionregistrationv1.Fail))), false)
	start := time.Now()
	err := w.Validating().Admit(context.Background(), podCreate(testPod("prod", "web", nil)))
	want := fmt.Sprintf(`Internal error occurred: failed calling webhook "slow.example.com": failed to call webhook: Post "%s/slow?timeout=1s": context deadline exceeded`, s.URL)
	wantStatus(t, err, 500, want)
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("took %v, want about the 1s timeout", d)
	}

	w.Apply(cluster, validatingConfig("slow",
		validatingHook(s, "slow.example.com", "/slow", withTimeout(1), withFailurePolicy(admissionregistrationv1.Ignore))), false)
	mustNil(t, w.Validating().Admit(context.Background(), podCreate(testPod("prod", "web", nil))))

	// A mutating webhook fails the same way.
	w.Apply(cluster, mutatingConfig("slow", admissionregistrationv1.NeverReinvocationPolicy,
		validatingHook(s, "slow.example.com", "/slow", withTimeout(1))), false)
	err = w.Mutating().Admit(context.Background(), podCreate(testPod("prod", "web", nil)))
	wantStatus(t, err, 500, want)
}

func TestWebhookErrorsFollowFailurePolicy(t *testing.T) {
	s := newServer(t)
	w := New(Options{})
	w.Apply(cluster, validatingConfig("broken", validatingHook(s, "broken.example.com", "/broken")), false)
	err := w.Validating().Admit(context.Background(), podCreate(testPod("prod", "web", nil)))
	wantStatus(t, err, 500, `Internal error occurred: failed calling webhook "broken.example.com": failed to call webhook: an error on the server ("boom") has prevented the request from succeeding`)

	// A webhook whose CA is not the server's cannot be reached.
	h := validatingHook(s, "untrusted.example.com", "/allow")
	h.ClientConfig.CABundle = otherCA(t)
	w.Apply(cluster, validatingConfig("broken", h), false)
	err = w.Validating().Admit(context.Background(), podCreate(testPod("prod", "web", nil)))
	if !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("error = %v, want a certificate failure", err)
	}
	if len(s.calls("/allow")) != 0 {
		t.Fatal("untrusted webhook was called")
	}

	fail := admissionregistrationv1.Ignore
	h.FailurePolicy = &fail
	w.Apply(cluster, validatingConfig("broken", h), false)
	mustNil(t, w.Validating().Admit(context.Background(), podCreate(testPod("prod", "web", nil))))
}

func TestNamespaceAndObjectSelectors(t *testing.T) {
	s := newServer(t)
	st := newStore(t)
	putNamespace(t, st, "prod", map[string]string{"env": "prod"})
	putNamespace(t, st, "dev", map[string]string{"env": "dev"})
	w := New(Options{Store: st})
	w.Apply(cluster, validatingConfig("selectors",
		validatingHook(s, "prod-only.example.com", "/deny", withNamespaceSelector(map[string]string{"env": "prod"})),
		validatingHook(s, "web-only.example.com", "/deny-bare", withObjectSelector(map[string]string{"app": "web"})),
	), false)
	v := w.Validating()

	mustNil(t, v.Admit(context.Background(), podCreate(testPod("dev", "x", map[string]string{"app": "db"}))))
	err := v.Admit(context.Background(), podCreate(testPod("prod", "x", map[string]string{"app": "db"})))
	wantStatus(t, err, 403, `admission webhook "prod-only.example.com" denied the request: replicas must be odd`)
	err = v.Admit(context.Background(), podCreate(testPod("dev", "x", map[string]string{"app": "web"})))
	wantStatus(t, err, 400, `admission webhook "web-only.example.com" denied the request without explanation`)

	// The old object's labels count too: removing the label is seen.
	old := testPod("dev", "x", map[string]string{"app": "web"})
	a := podCreate(testPod("dev", "x", nil))
	a.Operation, a.OldObject = admission.Update, old
	err = v.Admit(context.Background(), a)
	wantStatus(t, err, 400, `admission webhook "web-only.example.com" denied the request without explanation`)

	// A namespace that does not exist is reported as such.
	err = v.Admit(context.Background(), podCreate(testPod("ghost", "x", nil)))
	wantStatus(t, err, 404, `namespaces "ghost" not found`)

	// A namespace is matched on its own labels.
	w.Apply(cluster, validatingConfig("selectors",
		validatingHook(s, "prod-ns.example.com", "/deny", withNamespaceSelector(map[string]string{"env": "prod"}),
			withRules([]admissionregistrationv1.OperationType{admissionregistrationv1.Create}, []string{""}, []string{"namespaces"}))), false)
	nsCreate := func(ls map[string]string) *admission.Attributes {
		return &admission.Attributes{Cluster: cluster, Operation: admission.Create, Version: "v1", Resource: "namespaces",
			Name: "new", Object: &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "new", Labels: ls}}}
	}
	mustNil(t, v.Admit(context.Background(), nsCreate(map[string]string{"env": "dev"})))
	err = v.Admit(context.Background(), nsCreate(map[string]string{"env": "prod"}))
	wantStatus(t, err, 403, `admission webhook "prod-ns.example.com" denied the request: replicas must be odd`)
}

func TestMatchConditions(t *testing.T) {
	s := newServer(t)
	w := New(Options{})
	w.Apply(cluster, validatingConfig("conditions",
		validatingHook(s, "cond.example.com", "/deny-bare",
			withCondition("not-skipped", "object.metadata.name != 'skip-me'"),
			withCondition("is-alice", "request.userInfo.username == 'alice' && 'devs' in request.userInfo.groups"))), false)
	v := w.Validating()
	mustNil(t, v.Admit(userCtx(), podCreate(testPod("prod", "skip-me", nil))))
	mustNil(t, v.Admit(context.Background(), podCreate(testPod("prod", "web", nil))))
	err := v.Admit(userCtx(), podCreate(testPod("prod", "web", nil)))
	wantStatus(t, err, 400, `admission webhook "cond.example.com" denied the request without explanation`)

	// An expression that fails follows the failure policy.
	w.Apply(cluster, validatingConfig("conditions",
		validatingHook(s, "cond.example.com", "/deny-bare", withCondition("broken", "object.spec.nothing == 1"))), false)
	err = v.Admit(userCtx(), podCreate(testPod("prod", "web", nil)))
	wantStatus(t, err, 403, `pods "web" is forbidden: expression 'object.spec.nothing == 1' resulted in error: no such key: nothing`)
	w.Apply(cluster, validatingConfig("conditions",
		validatingHook(s, "cond.example.com", "/deny-bare", withCondition("broken", "object.spec.nothing == 1"),
			withFailurePolicy(admissionregistrationv1.Ignore))), false)
	mustNil(t, v.Admit(userCtx(), podCreate(testPod("prod", "web", nil))))
}

func TestDryRunNeedsSideEffectFreeWebhooks(t *testing.T) {
	s := newServer(t)
	w := New(Options{})
	w.Apply(cluster, validatingConfig("side-effects",
		validatingHook(s, "unknown.example.com", "/allow", withSideEffects(admissionregistrationv1.SideEffectClassUnknown))), false)
	a := podCreate(testPod("prod", "web", nil))
	a.DryRun = true
	err := w.Validating().Admit(context.Background(), a)
	wantStatus(t, err, 400, `admission webhook "unknown.example.com" does not support dry run`)
	if len(s.calls("/allow")) != 0 {
		t.Fatal("webhook with side effects was called for a dry run")
	}
	// Without dry run it is called.
	mustNil(t, w.Validating().Admit(context.Background(), podCreate(testPod("prod", "web", nil))))

	w.Apply(cluster, validatingConfig("side-effects",
		validatingHook(s, "dry.example.com", "/allow", withSideEffects(admissionregistrationv1.SideEffectClassNoneOnDryRun))), false)
	mustNil(t, w.Validating().Admit(context.Background(), a))
	calls := s.calls("/allow")
	last := calls[len(calls)-1]
	var opts metav1.CreateOptions
	mustNil(t, json.Unmarshal(last.Options.Raw, &opts))
	if last.DryRun == nil || !*last.DryRun || len(opts.DryRun) != 1 || opts.DryRun[0] != metav1.DryRunAll {
		t.Fatalf("dryRun = %v, options = %s", last.DryRun, last.Options.Raw)
	}
}

func TestReinvocation(t *testing.T) {
	for _, tc := range []struct {
		policy        admissionregistrationv1.ReinvocationPolicyType
		aCalls        int
		wantAfterB    bool
		wantLabelsLen int
	}{
		{admissionregistrationv1.IfNeededReinvocationPolicy, 2, true, 3},
		{admissionregistrationv1.NeverReinvocationPolicy, 1, false, 2},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			s := newServer(t)
			w := New(Options{})
			w.Apply(cluster, mutatingConfig("1-a", tc.policy, validatingHook(s, "a.example.com", "/a")), false)
			w.Apply(cluster, mutatingConfig("2-b", admissionregistrationv1.NeverReinvocationPolicy, validatingHook(s, "b.example.com", "/b")), false)
			pod := testPod("prod", "web", nil)
			mustNil(t, w.Mutating().Admit(context.Background(), podCreate(pod)))
			if n := len(s.calls("/a")); n != tc.aCalls {
				t.Fatalf("a called %d times, want %d", n, tc.aCalls)
			}
			if n := len(s.calls("/b")); n != 1 {
				t.Fatalf("b called %d times, want 1", n)
			}
			if (pod.Labels["a-after-b"] == "yes") != tc.wantAfterB || len(pod.Labels) != tc.wantLabelsLen {
				t.Fatalf("labels = %v", pod.Labels)
			}
		})
	}
}

func TestServiceReference(t *testing.T) {
	s := newServer(t)
	st := newStore(t)
	u, err := url.Parse(s.URL)
	mustNil(t, err)
	port, err := strconv.Atoi(u.Port())
	mustNil(t, err)
	put(t, st, "/services", "v1", "Service", &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "hooks", Name: "labeler"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "https", Port: 443}}},
	})
	ready := true
	name, p := "https", int32(port)
	put(t, st, "discovery.k8s.io/endpointslices", "discovery.k8s.io/v1", "EndpointSlice", &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: "hooks", Name: "labeler-abc", Labels: map[string]string{discoveryv1.LabelServiceName: "labeler"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &p}},
	})
	// httptest's certificate names example.com, not labeler.hooks.svc.
	w := New(Options{Store: st, TLSConfig: &tls.Config{ServerName: "example.com"}})
	h := validatingHook(s, "svc.example.com", "")
	path := "/label"
	h.ClientConfig.URL = nil
	h.ClientConfig.Service = &admissionregistrationv1.ServiceReference{Namespace: "hooks", Name: "labeler", Path: &path}
	w.Apply(cluster, mutatingConfig("svc", admissionregistrationv1.NeverReinvocationPolicy, h), false)
	pod := testPod("", "web", nil)
	mustNil(t, w.Mutating().Admit(context.Background(), podCreate(pod)))
	if pod.Labels["mutated"] != "yes" {
		t.Fatalf("labels = %v", pod.Labels)
	}

	h.ClientConfig.Service.Name = "missing"
	w.Apply(cluster, mutatingConfig("svc", admissionregistrationv1.NeverReinvocationPolicy, h), false)
	err = w.Mutating().Admit(context.Background(), podCreate(testPod("", "web", nil)))
	wantStatus(t, err, 500, `Internal error occurred: failed calling webhook "svc.example.com": failed to call webhook: Post "https://missing.hooks.svc:443/label?timeout=10s": service "missing" not found`)
}

func TestAdmissionConfigurationIsExempt(t *testing.T) {
	s := newServer(t)
	w := New(Options{})
	w.Apply(cluster, validatingConfig("everything", validatingHook(s, "all.example.com", "/deny-bare",
		withRules([]admissionregistrationv1.OperationType{admissionregistrationv1.OperationAll}, []string{"*"}, []string{"*"}))), false)
	cfg := validatingConfig("x")
	mustNil(t, w.Validating().Admit(context.Background(), &admission.Attributes{Cluster: cluster, Operation: admission.Create,
		Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations", Name: "x", Object: cfg}))
	// Anything else is seen, deployments in the apps group included.
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "web", UID: types.UID("d")}}
	err := w.Validating().Admit(context.Background(), &admission.Attributes{Cluster: cluster, Operation: admission.Create,
		Group: "apps", Version: "v1", Resource: "deployments", Namespace: "prod", Name: "web", Object: d})
	wantStatus(t, err, 400, `admission webhook "all.example.com" denied the request without explanation`)
	if k := s.calls("/deny-bare")[0].Kind; k != (metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}) {
		t.Fatalf("kind = %v", k)
	}
}

func TestApplyUnstructured(t *testing.T) {
	s := newServer(t)
	w := New(Options{})
	typed := validatingConfig("from-watch", validatingHook(s, "bare.example.com", "/deny-bare"))
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(typed)
	mustNil(t, err)
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion("admissionregistration.k8s.io/v1")
	u.SetKind("ValidatingWebhookConfiguration")
	w.Apply(cluster, u, false)
	err = w.Validating().Admit(context.Background(), podCreate(testPod("prod", "web", nil)))
	wantStatus(t, err, 400, `admission webhook "bare.example.com" denied the request without explanation`)
	w.Apply(cluster, u, true)
	mustNil(t, w.Validating().Admit(context.Background(), podCreate(testPod("prod", "web", nil))))
}
