package e2e

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// webhookServer is an HTTPS admission webhook the API server calls by URL:
// /mutate labels ConfigMaps mutated=yes, /validate refuses ConfigMaps with
// a key "forbidden", /slow answers (allowed) after 3 s. It records every
// review it is sent.
type webhookServer struct {
	*httptest.Server
	caPEM []byte

	mu       sync.Mutex
	reviews  map[string][]admissionv1.AdmissionRequest // by path
	timeouts []string                                  // the ?timeout= of /slow calls
}

func startWebhookServer(t *testing.T) *webhookServer {
	ws := &webhookServer{reviews: map[string][]admissionv1.AdmissionRequest{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/mutate", func(w http.ResponseWriter, r *http.Request) {
		ws.serve(t, w, r, func(req *admissionv1.AdmissionRequest, cm *corev1.ConfigMap) *admissionv1.AdmissionResponse {
			patch := `[{"op":"add","path":"/metadata/labels","value":{"mutated":"yes"}}]`
			if cm.Labels != nil {
				patch = `[{"op":"add","path":"/metadata/labels/mutated","value":"yes"}]`
			}
			return &admissionv1.AdmissionResponse{Allowed: true, Patch: []byte(patch), PatchType: ptr.To(admissionv1.PatchTypeJSONPatch)}
		})
	})
	mux.HandleFunc("/validate", func(w http.ResponseWriter, r *http.Request) {
		ws.serve(t, w, r, func(req *admissionv1.AdmissionRequest, cm *corev1.ConfigMap) *admissionv1.AdmissionResponse {
			if _, bad := cm.Data["forbidden"]; bad {
				return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Message: "forbidden key"}}
			}
			return &admissionv1.AdmissionResponse{Allowed: true}
		})
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ws.mu.Lock()
		ws.timeouts = append(ws.timeouts, r.URL.Query().Get("timeout"))
		ws.mu.Unlock()
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done(): // the API server gave up
			return
		}
		ws.serve(t, w, r, func(*admissionv1.AdmissionRequest, *corev1.ConfigMap) *admissionv1.AdmissionResponse {
			return &admissionv1.AdmissionResponse{Allowed: true}
		})
	})
	ws.Server = httptest.NewUnstartedServer(mux) // listens on 127.0.0.1
	ws.StartTLS()
	t.Cleanup(ws.Close)
	ws.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ws.Certificate().Raw})
	return ws
}

// serve decodes an AdmissionReview of a ConfigMap, records it and answers
// with decide's response.
func (ws *webhookServer) serve(t *testing.T, w http.ResponseWriter, r *http.Request,
	decide func(*admissionv1.AdmissionRequest, *corev1.ConfigMap) *admissionv1.AdmissionResponse) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		t.Errorf("webhook %s: undecodable review: %v", r.URL.Path, err)
		http.Error(w, "bad review", http.StatusBadRequest)
		return
	}
	if review.APIVersion != "admission.k8s.io/v1" || review.Kind != "AdmissionReview" {
		t.Errorf("webhook %s: review is %s %s, want admission.k8s.io/v1 AdmissionReview", r.URL.Path, review.APIVersion, review.Kind)
	}
	var cm corev1.ConfigMap
	if err := json.Unmarshal(review.Request.Object.Raw, &cm); err != nil {
		t.Errorf("webhook %s: object: %v", r.URL.Path, err)
	}
	ws.mu.Lock()
	ws.reviews[r.URL.Path] = append(ws.reviews[r.URL.Path], *review.Request)
	ws.mu.Unlock()
	resp := decide(review.Request, &cm)
	resp.UID = review.Request.UID
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(admissionv1.AdmissionReview{ //nolint:errcheck
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Response: resp})
}

// review returns the last review path was sent for the named object.
func (ws *webhookServer) review(path, namespace, name string) (admissionv1.AdmissionRequest, bool) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	rs := ws.reviews[path]
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].Namespace == namespace && rs[i].Name == name {
			return rs[i], true
		}
	}
	return admissionv1.AdmissionRequest{}, false
}

// TestAdmissionWebhooks: mutating and validating webhooks reached by URL
// over HTTPS with a caBundle: the mutation lands in the stored object, a
// rejection carries kube-apiserver's wording, the review names the
// requesting user, and a webhook slower than its timeoutSeconds fails the
// request (500) under failurePolicy Fail and is skipped under Ignore.
func TestAdmissionWebhooks(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(adminConfig(t, srv.url))
	ws := startWebhookServer(t)

	const ns, nsLabel = "webhook-e2e", "e2e.pgkube.io/webhooks"
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{nsLabel: "on"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Only this namespace's ConfigMaps: tests running alongside on the
	// shared server never reach these webhooks.
	scope := &metav1.LabelSelector{MatchLabels: map[string]string{nsLabel: "on"}}
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"configmaps"}},
	}}
	clientConfig := func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{URL: ptr.To(ws.URL + path), CABundle: ws.caPEM}
	}
	none := ptr.To(admissionregistrationv1.SideEffectClassNone)
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "e2e-webhooks"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "mutate.webhooks.e2e.pgkube.io", ClientConfig: clientConfig("/mutate"), Rules: rules,
			NamespaceSelector: scope, SideEffects: none, AdmissionReviewVersions: []string{"v1"},
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
		}}}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "e2e-webhooks"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "validate.webhooks.e2e.pgkube.io", ClientConfig: clientConfig("/validate"), Rules: rules,
			NamespaceSelector: scope, SideEffects: none, AdmissionReviewVersions: []string{"v1"},
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
		}}}
	t.Cleanup(func() {
		admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, "e2e-webhooks", metav1.DeleteOptions{})           //nolint:errcheck
		admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, "e2e-webhooks", metav1.DeleteOptions{})         //nolint:errcheck
		admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, "e2e-webhooks-slow", metav1.DeleteOptions{})    //nolint:errcheck
		admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, "e2e-webhooks-invalid", metav1.DeleteOptions{}) //nolint:errcheck
	})
	if _, err := admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, vwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	webhookGaps(t, admin, scope, clientConfig("/validate"))
	cms := admin.CoreV1().ConfigMaps(ns)
	configMap := func(name string, data map[string]string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "e2e"}}, Data: data}
	}

	// The mutation is in what the create returns and in what is stored.
	var probe int
	var mutated string
	eventually(t, "mutating webhook in effect", func() error {
		probe++
		mutated = fmt.Sprint("probe-", probe)
		got, err := cms.Create(ctx, configMap(mutated, map[string]string{"k": "v"}), metav1.CreateOptions{})
		if err != nil {
			return err
		}
		if got.Labels["mutated"] != "yes" {
			return fmt.Errorf("created without the webhook's label: %v", got.Labels)
		}
		return nil
	})
	if got, err := cms.Get(ctx, mutated, metav1.GetOptions{}); err != nil || got.Labels["mutated"] != "yes" || got.Labels["app"] != "e2e" {
		t.Fatalf("stored ConfigMap: %v %+v", err, got)
	}
	// A ConfigMap without labels gets the whole labels map.
	if got, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bare"}}, metav1.CreateOptions{}); err != nil || got.Labels["mutated"] != "yes" {
		t.Fatalf("ConfigMap without labels: %v %+v", err, got)
	}
	// ConfigMaps elsewhere are left alone.
	namespace(t, admin, "webhook-e2e-unlabeled")
	if got, err := admin.CoreV1().ConfigMaps("webhook-e2e-unlabeled").Create(ctx, configMap("cm", nil), metav1.CreateOptions{}); err != nil || got.Labels["mutated"] != "" {
		t.Fatalf("ConfigMap outside the selected namespace: %v %+v", err, got)
	}

	// The review the webhook saw: the admin (system:masters) creating the
	// ConfigMap, with the object as sent.
	rv, ok := ws.review("/mutate", ns, mutated)
	if !ok {
		t.Fatalf("the mutating webhook saw no review of %s", mutated)
	}
	if rv.UserInfo.Username != "admin" || !slices.Contains(rv.UserInfo.Groups, "system:masters") || !slices.Contains(rv.UserInfo.Groups, "system:authenticated") {
		t.Errorf("review userInfo: %+v, want admin in system:masters and system:authenticated", rv.UserInfo)
	}
	if rv.Operation != admissionv1.Create || rv.Kind != (metav1.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}) ||
		rv.Resource != (metav1.GroupVersionResource{Version: "v1", Resource: "configmaps"}) || rv.UID == "" || rv.DryRun == nil || *rv.DryRun {
		t.Errorf("review: operation %s kind %v resource %v uid %q dryRun %v", rv.Operation, rv.Kind, rv.Resource, rv.UID, rv.DryRun)
	}
	if !strings.Contains(string(rv.Object.Raw), `"k":"v"`) || strings.Contains(string(rv.Object.Raw), "mutated") {
		t.Errorf("mutating review object: %s", rv.Object.Raw)
	}
	// The validating webhook runs after the mutation and sees its result.
	if rv, ok := ws.review("/validate", ns, mutated); !ok || !strings.Contains(string(rv.Object.Raw), `"mutated":"yes"`) {
		t.Errorf("validating review of %s (seen: %v): %s", mutated, ok, rv.Object.Raw)
	}

	// Another user is reported as that user, with their groups.
	bindRole(t, admin, ns, "webhook-jane-edit", "edit", "webhook-jane")
	jane := kubernetes.NewForConfigOrDie(userConfig(t, srv.url, "webhook-jane", "dev"))
	eventually(t, "webhook-jane creates a ConfigMap", func() error {
		_, err := jane.CoreV1().ConfigMaps(ns).Create(ctx, configMap("by-jane", nil), metav1.CreateOptions{})
		return err
	})
	if rv, ok := ws.review("/mutate", ns, "by-jane"); !ok || rv.UserInfo.Username != "webhook-jane" ||
		!slices.Equal(rv.UserInfo.Groups, []string{"dev", "system:authenticated"}) {
		t.Errorf("review of webhook-jane's create (seen: %v): %+v", ok, rv.UserInfo)
	}

	// The validating webhook's refusal, as kube-apiserver words it: 400
	// with the webhook's message after "admission webhook %q denied the
	// request: ".
	const denied = `admission webhook "validate.webhooks.e2e.pgkube.io" denied the request: forbidden key`
	var err error
	eventually(t, "validating webhook in effect", func() error {
		_, err = cms.Create(ctx, configMap("bad", map[string]string{"forbidden": "1"}), metav1.CreateOptions{})
		if err == nil {
			cms.Delete(ctx, "bad", metav1.DeleteOptions{}) //nolint:errcheck
			return errString("a ConfigMap with key forbidden was admitted")
		}
		return nil
	})
	// The webhook's status gave no reason and no code: upstream keeps the
	// reason (empty) and makes the code 400.
	if err.Error() != denied || statusCode(err) != http.StatusBadRequest || apierrors.ReasonForError(err) != "" {
		t.Errorf("refusal: %q (reason %q, code %d), want %q (no reason, 400)", err, apierrors.ReasonForError(err), statusCode(err), denied)
	}
	if _, err := cms.Get(ctx, "bad", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the refused ConfigMap was stored: %v", err)
	}
	// As kubectl prints it.
	k := &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}
	out, kerr := k.run("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bad-kubectl, namespace: "+ns+"}\ndata: {forbidden: \"1\"}\n", "create", "-f", "-")
	if kerr == nil {
		t.Errorf("kubectl create of a forbidden ConfigMap succeeded:\n%s", out)
	}
	contains(t, out, `Error from server: error when creating "STDIN": `+denied)

	// A webhook slower than its timeoutSeconds. Only ConfigMaps labelled
	// slow=yes reach it, so the checks above are not slowed down.
	slow := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "e2e-webhooks-slow"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "slow.webhooks.e2e.pgkube.io", ClientConfig: clientConfig("/slow"), Rules: rules,
			NamespaceSelector: scope, ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"slow": "yes"}},
			SideEffects: none, AdmissionReviewVersions: []string{"v1"},
			FailurePolicy: ptr.To(admissionregistrationv1.Fail), TimeoutSeconds: ptr.To(int32(1)),
		}}}
	if _, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, slow, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	slowCM := func(name string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"slow": "yes"}}}
	}
	// kube-apiserver: `Internal error occurred: failed calling webhook
	// "<name>": failed to call webhook: Post "<url>?timeout=1s": context
	// deadline exceeded`, a 500 InternalError.
	wantSlow := `Internal error occurred: failed calling webhook "slow.webhooks.e2e.pgkube.io": failed to call webhook: Post "` +
		ws.URL + `/slow?timeout=1s": context deadline exceeded`
	var took time.Duration
	eventually(t, "slow webhook with failurePolicy Fail in effect", func() error {
		probe++
		name := fmt.Sprint("slow-", probe)
		start := time.Now()
		_, err = cms.Create(ctx, slowCM(name), metav1.CreateOptions{})
		took = time.Since(start)
		if err == nil {
			return errString("admitted without waiting for the slow webhook")
		}
		return nil
	})
	if !apierrors.IsInternalError(err) || statusCode(err) != http.StatusInternalServerError || err.Error() != wantSlow {
		t.Errorf("slow webhook, failurePolicy Fail:\n got %q (reason %q, code %d)\nwant %q (InternalError, 500)",
			err, apierrors.ReasonForError(err), statusCode(err), wantSlow)
	}
	// Given up on after 1 s, well before the webhook's 3 s.
	if took < 900*time.Millisecond || took > 2900*time.Millisecond {
		t.Errorf("the failing create took %v; the webhook's timeout is 1 s", took)
	}
	ws.mu.Lock()
	timeouts := slices.Clone(ws.timeouts)
	ws.mu.Unlock()
	if len(timeouts) == 0 || timeouts[len(timeouts)-1] != "1s" {
		t.Errorf("the slow webhook was called with timeout parameters %q, want 1s", timeouts)
	}

	// failurePolicy Ignore: the same call times out, and the create goes on.
	got, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "e2e-webhooks-slow", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got.Webhooks[0].FailurePolicy = ptr.To(admissionregistrationv1.Ignore)
	if _, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var admitted string
	eventually(t, "slow webhook with failurePolicy Ignore in effect", func() error {
		probe++
		admitted = fmt.Sprint("slow-", probe)
		start := time.Now()
		_, err := cms.Create(ctx, slowCM(admitted), metav1.CreateOptions{})
		took = time.Since(start)
		return err
	})
	if took < 900*time.Millisecond || took > 2900*time.Millisecond {
		t.Errorf("the create under Ignore took %v; the webhook should be called and given up on after 1 s", took)
	}
	if c, err := cms.Get(ctx, admitted, metav1.GetOptions{}); err != nil || c.Labels["mutated"] != "yes" {
		t.Errorf("ConfigMap admitted under Ignore: %v %+v", err, c)
	}
}

// webhookGaps checks what kube-apiserver's API does to webhook
// configurations: stores them with its defaults, and refuses one without
// sideEffects and admissionReviewVersions.
func webhookGaps(t *testing.T, admin kubernetes.Interface, scope *metav1.LabelSelector, cc admissionregistrationv1.WebhookClientConfig) {
	ctx := context.Background()
	var gaps []string
	stored, err := admin.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "e2e-webhooks", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := stored.Webhooks[0]
	if h.TimeoutSeconds == nil || *h.TimeoutSeconds != 10 || h.MatchPolicy == nil || *h.MatchPolicy != admissionregistrationv1.Equivalent ||
		h.ObjectSelector == nil || h.ReinvocationPolicy == nil || *h.ReinvocationPolicy != admissionregistrationv1.NeverReinvocationPolicy ||
		h.Rules[0].Scope == nil || *h.Rules[0].Scope != admissionregistrationv1.AllScopes {
		h.ClientConfig.CABundle = nil
		j, _ := json.Marshal(h)
		gaps = append(gaps, "stored MutatingWebhook lacks kube-apiserver's defaults (timeoutSeconds 10, matchPolicy Equivalent, "+
			"objectSelector {}, reinvocationPolicy Never, rules[].scope \"*\"): "+string(j))
	}
	// Scoped to nothing at all, should it be admitted.
	invalid := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "e2e-webhooks-invalid"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "invalid.webhooks.e2e.pgkube.io", ClientConfig: cc,
			NamespaceSelector: scope, ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"never": "never"}}}}}
	_, err = admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, invalid, metav1.CreateOptions{})
	want := `ValidatingWebhookConfiguration.admissionregistration.k8s.io "e2e-webhooks-invalid" is invalid: [` +
		`webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun, ` +
		`webhooks[0].admissionReviewVersions: Required value: must specify one of v1, v1beta1]`
	if !apierrors.IsInvalid(err) || err.Error() != want {
		gaps = append(gaps, fmt.Sprintf("a webhook without sideEffects and admissionReviewVersions: got %v, kube-apiserver's: 422 %s", err, want))
		admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, "e2e-webhooks-invalid", metav1.DeleteOptions{}) //nolint:errcheck
	}
	for _, g := range gaps {
		t.Error(g)
	}
}

func statusCode(err error) int {
	if s, ok := err.(apierrors.APIStatus); ok {
		return int(s.Status().Code)
	}
	return 0
}

// TestValidatingAdmissionPolicy: a CEL policy bound with Deny refuses
// Deployments over 5 replicas with kube-apiserver's message, through
// client-go and kubectl; the scale subresource is a separate resource to
// its rules, as upstream.
func TestValidatingAdmissionPolicy(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(adminConfig(t, srv.url))
	const ns, nsLabel = "vap-e2e", "e2e.pgkube.io/vap"
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{nsLabel: "on"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	vaps := admin.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	bindings := admin.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings()
	t.Cleanup(func() {
		bindings.Delete(ctx, "max-replicas-binding", metav1.DeleteOptions{}) //nolint:errcheck
		vaps.Delete(ctx, "max-replicas", metav1.DeleteOptions{})             //nolint:errcheck
		vaps.Delete(ctx, "max-replicas-invalid", metav1.DeleteOptions{})     //nolint:errcheck
	})
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "max-replicas"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				}}}},
			Validations: []admissionregistrationv1.Validation{{Expression: "object.spec.replicas <= 5"}},
		}}
	if _, err := vaps.Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Bound to this namespace only: tests alongside are not affected.
	if _, err := bindings.Create(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "max-replicas-binding"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        "max-replicas",
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{nsLabel: "on"}}},
		}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// kube-apiserver stores policies and bindings with its defaults, and
	// refuses an expression that does not compile.
	var gaps []string
	if p, err := vaps.Get(ctx, "max-replicas", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if mc := p.Spec.MatchConstraints; mc.MatchPolicy == nil || *mc.MatchPolicy != admissionregistrationv1.Equivalent ||
		mc.NamespaceSelector == nil || mc.ObjectSelector == nil {
		j, _ := json.Marshal(mc)
		gaps = append(gaps, "stored policy's matchConstraints lack kube-apiserver's defaults (matchPolicy Equivalent, namespaceSelector {}, objectSelector {}): "+string(j))
	}
	if b, err := bindings.Get(ctx, "max-replicas-binding", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if mr := b.Spec.MatchResources; mr.MatchPolicy == nil || *mr.MatchPolicy != admissionregistrationv1.Equivalent || mr.ObjectSelector == nil {
		j, _ := json.Marshal(mr)
		gaps = append(gaps, "stored binding's matchResources lack kube-apiserver's defaults (matchPolicy Equivalent, objectSelector {}): "+string(j))
	}
	broken := policy.DeepCopy()
	broken.Name = "max-replicas-invalid"
	broken.Spec.Validations[0].Expression = "object.spec.replicas <= "
	_, err := vaps.Create(ctx, broken, metav1.CreateOptions{})
	const wantBroken = `ValidatingAdmissionPolicy.admissionregistration.k8s.io "max-replicas-invalid" is invalid: ` +
		`spec.validations[0].expression: Invalid value: "object.spec.replicas <= ": compilation failed: ERROR: <input>:1:`
	if !apierrors.IsInvalid(err) || !strings.HasPrefix(err.Error(), wantBroken) {
		gaps = append(gaps, fmt.Sprintf("a policy whose expression does not compile: got %v, kube-apiserver's: 422 %s…", err, wantBroken))
		vaps.Delete(ctx, "max-replicas-invalid", metav1.DeleteOptions{}) //nolint:errcheck
	}
	for _, g := range gaps {
		t.Error(g)
	}

	deploy := func(name string, replicas int32) *appsv1.Deployment {
		labels := map[string]string{"app": name}
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}}
	}
	deployments := admin.AppsV1().Deployments(ns)
	// kube-apiserver's refusal: Forbidden in the message, but reason
	// Invalid and code 422 (the validation's reason, Invalid by default).
	const want = `deployments.apps "big" is forbidden: ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-binding' denied request: failed expression: object.spec.replicas <= 5`
	eventually(t, "policy in effect", func() error {
		_, err = deployments.Create(ctx, deploy("big", 6), metav1.CreateOptions{})
		if err == nil {
			deployments.Delete(ctx, "big", metav1.DeleteOptions{}) //nolint:errcheck
			return errString("a Deployment with 6 replicas was admitted")
		}
		return nil
	})
	if err.Error() != want || !apierrors.IsInvalid(err) || statusCode(err) != http.StatusUnprocessableEntity {
		t.Errorf("6 replicas:\n got %q (reason %q, code %d)\nwant %q (Invalid, 422)", err, apierrors.ReasonForError(err), statusCode(err), want)
	}
	if _, err := deployments.Create(ctx, deploy("ok", 5), metav1.CreateOptions{}); err != nil {
		t.Fatalf("5 replicas: %v", err)
	}
	// An update over the limit is refused too.
	d, err := deployments.Get(ctx, "ok", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Spec.Replicas = ptr.To(int32(9))
	_, err = deployments.Update(ctx, d, metav1.UpdateOptions{})
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `deployments.apps "ok" is forbidden: ValidatingAdmissionPolicy 'max-replicas'`) {
		t.Errorf("update to 9 replicas: %v", err)
	}

	// kubectl prints the 422 as it prints any Invalid status: from its
	// details, with the cause's empty field before the message.
	k := &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}
	big := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: big-kubectl, namespace: %s}
spec:
  replicas: 6
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec: {containers: [{name: c, image: busybox}]}
`, ns)
	out, kerr := k.run(big, "create", "-f", "-")
	if kerr == nil {
		t.Errorf("kubectl created a Deployment with 6 replicas:\n%s", out)
	}
	contains(t, out, `The deployments "big-kubectl" is invalid: : ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-binding' denied request: failed expression: object.spec.replicas <= 5`)

	// kubectl scale goes through deployments/scale. Upstream matches a
	// policy's resourceRules against resource/subresource, so a rule on
	// "deployments" does not cover "deployments/scale": the scale to 7 is
	// admitted (upstream would evaluate the policy against the
	// autoscaling/v1 Scale only if the rules named deployments/scale).
	contains(t, k.ok("scale", "deploy", "ok", "-n", ns, "--replicas=7"), "deployment.apps/ok scaled")
	contains(t, k.ok("get", "deploy", "ok", "-n", ns, "-o", "jsonpath={.spec.replicas}"), "7")

	// With deployments/scale in the rules, the scale is refused: the Scale
	// object has spec.replicas as well.
	p, err := vaps.Get(ctx, "max-replicas", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Spec.MatchConstraints.ResourceRules[0].Resources = []string{"deployments", "deployments/scale"}
	if _, err := vaps.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "policy on deployments/scale in effect", func() error {
		out, err := k.run("", "scale", "deploy", "ok", "-n", ns, "--replicas=8")
		if err == nil {
			return fmt.Errorf("scaled to 8: %s", out)
		}
		if !strings.Contains(out, "ValidatingAdmissionPolicy 'max-replicas' with binding 'max-replicas-binding' denied request: failed expression: object.spec.replicas <= 5") {
			t.Fatalf("scale to 8 refused with the wrong message:\n%s", out)
		}
		return nil
	})
	contains(t, k.ok("get", "deploy", "ok", "-n", ns, "-o", "jsonpath={.spec.replicas}"), "7")
	contains(t, k.ok("scale", "deploy", "ok", "-n", ns, "--replicas=3"), "deployment.apps/ok scaled")
}
