package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgkube/pgkube/audit"
	"github.com/pgkube/pgkube/authn"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
)

// bindRole binds a ClusterRole to a user in a namespace (or cluster-wide
// when ns is empty), as the admin.
func bindRole(t *testing.T, admin kubernetes.Interface, ns, name, role, user string) {
	t.Helper()
	ctx := context.Background()
	subjects := []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: user}}
	ref := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}
	var err error
	if ns == "" {
		_, err = admin.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subjects, RoleRef: ref}, metav1.CreateOptions{})
	} else {
		_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subjects, RoleRef: ref}, metav1.CreateOptions{})
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// eventually retries f until it returns nil: RBAC changes reach the
// authorizer's cache through the watch, a few milliseconds later.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func wantForbidden(t *testing.T, what string, err error, message string) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Errorf("%s: got %v, want 403 Forbidden", what, err)
		return
	}
	if message != "" && err.Error() != message {
		t.Errorf("%s: message\n %q\nwant\n %q", what, err.Error(), message)
	}
}

// TestViewUser: a user with only `view` in namespace a reads there, cannot
// read Secrets or write anything, and sees nothing elsewhere; the 403s
// carry kube-apiserver's messages and do not reveal whether objects exist.
func TestViewUser(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(adminConfig(t, srv.url))
	namespace(t, admin, "view-a")
	namespace(t, admin, "view-b")
	for _, ns := range []string{"view-a", "view-b"} {
		if _, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		if _, err := admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	bindRole(t, admin, "view-a", "viewer-view", "view", "viewer")
	viewer := kubernetes.NewForConfigOrDie(userConfig(t, srv.url, "viewer"))

	eventually(t, "viewer lists configmaps in view-a", func() error {
		_, err := viewer.CoreV1().ConfigMaps("view-a").List(ctx, metav1.ListOptions{})
		return err
	})
	if _, err := viewer.CoreV1().ConfigMaps("view-a").Get(ctx, "cm", metav1.GetOptions{}); err != nil {
		t.Errorf("viewer get configmap: %v", err)
	}
	if _, err := viewer.CoreV1().Pods("view-a").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("viewer list pods: %v", err)
	}
	w, err := viewer.CoreV1().ConfigMaps("view-a").Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Errorf("viewer watch configmaps: %v", err)
	} else {
		w.Stop()
	}
	if _, err := viewer.AppsV1().Deployments("view-a").List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("viewer list deployments: %v", err)
	}

	_, err = viewer.CoreV1().Secrets("view-a").Get(ctx, "s", metav1.GetOptions{})
	wantForbidden(t, "get secret", err, `secrets "s" is forbidden: User "viewer" cannot get resource "secrets" in API group "" in the namespace "view-a"`)
	_, err = viewer.CoreV1().Secrets("view-a").Get(ctx, "missing", metav1.GetOptions{})
	wantForbidden(t, "get missing secret", err, `secrets "missing" is forbidden: User "viewer" cannot get resource "secrets" in API group "" in the namespace "view-a"`)
	_, err = viewer.CoreV1().Secrets("view-a").List(ctx, metav1.ListOptions{})
	wantForbidden(t, "list secrets", err, `secrets is forbidden: User "viewer" cannot list resource "secrets" in API group "" in the namespace "view-a"`)
	_, err = viewer.CoreV1().ConfigMaps("view-a").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "new"}}, metav1.CreateOptions{})
	wantForbidden(t, "create configmap", err, `configmaps is forbidden: User "viewer" cannot create resource "configmaps" in API group "" in the namespace "view-a"`)
	err = viewer.CoreV1().ConfigMaps("view-a").Delete(ctx, "cm", metav1.DeleteOptions{})
	wantForbidden(t, "delete configmap", err, `configmaps "cm" is forbidden: User "viewer" cannot delete resource "configmaps" in API group "" in the namespace "view-a"`)
	_, err = viewer.CoreV1().ConfigMaps("view-b").Get(ctx, "cm", metav1.GetOptions{})
	wantForbidden(t, "get in view-b", err, `configmaps "cm" is forbidden: User "viewer" cannot get resource "configmaps" in API group "" in the namespace "view-b"`)
	_, err = viewer.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	wantForbidden(t, "list across namespaces", err, `configmaps is forbidden: User "viewer" cannot list resource "configmaps" in API group "" at the cluster scope`)
	_, err = viewer.CoreV1().ConfigMaps("").Watch(ctx, metav1.ListOptions{})
	wantForbidden(t, "watch across namespaces", err, `configmaps is forbidden: User "viewer" cannot watch resource "configmaps" in API group "" at the cluster scope`)
	_, err = viewer.CoreV1().ConfigMaps("view-b").Watch(ctx, metav1.ListOptions{})
	wantForbidden(t, "watch in view-b", err, "")
	_, err = viewer.AppsV1().Deployments("view-a").Create(ctx, nil, metav1.CreateOptions{})
	wantForbidden(t, "create deployment", err, `deployments.apps is forbidden: User "viewer" cannot create resource "deployments" in API group "apps" in the namespace "view-a"`)
	_, err = viewer.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	wantForbidden(t, "list nodes", err, `nodes is forbidden: User "viewer" cannot list resource "nodes" in API group "" at the cluster scope`)

	// Discovery and health are open to every authenticated user.
	if _, err := viewer.Discovery().ServerGroups(); err != nil {
		t.Errorf("viewer discovery: %v", err)
	}
	// Without credentials: health and version only.
	anon := kubernetes.NewForConfigOrDie(&rest.Config{Host: srv.url, TLSClientConfig: rest.TLSClientConfig{CAData: adminConfig(t, srv.url).CAData}})
	if _, err := anon.Discovery().ServerVersion(); err != nil {
		t.Errorf("anonymous /version: %v", err)
	}
	_, err = anon.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	wantForbidden(t, "anonymous list namespaces", err, `namespaces is forbidden: User "system:anonymous" cannot list resource "namespaces" in API group "" at the cluster scope`)
	err = anon.Discovery().RESTClient().Get().AbsPath("/api").Do(ctx).Error()
	wantForbidden(t, "anonymous /api", err, `forbidden: User "system:anonymous" cannot get path "/api"`)
}

// canI runs `kubectl auth can-i` and returns yes or no.
func canI(t *testing.T, k *kubectl, args ...string) string {
	t.Helper()
	out, err := k.run("", append([]string{"auth", "can-i"}, args...)...)
	// The answer is the last line; warnings may come first.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	out = strings.TrimSpace(lines[len(lines)-1])
	if err != nil && out != "no" {
		t.Fatalf("kubectl auth can-i %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestKubectlAuthCanI checks `kubectl auth can-i` and `--list` against
// what kube-apiserver answers for the default roles.
func TestKubectlAuthCanI(t *testing.T) {
	srv := sharedServer(t)
	admin := kubernetes.NewForConfigOrDie(adminConfig(t, srv.url))
	namespace(t, admin, "cani")
	bindRole(t, admin, "cani", "v", "view", "can-view")
	bindRole(t, admin, "cani", "e", "edit", "can-edit")
	bindRole(t, admin, "cani", "a", "admin", "can-admin")
	k := &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}
	eventually(t, "binding visible", func() error {
		if canI(t, k, "get", "pods", "-n", "cani", "--as", "can-view") != "yes" {
			return errString("can-view cannot get pods yet")
		}
		return nil
	})
	cases := []struct {
		as   string
		args string
		want string
	}{
		{"can-view", "get pods -n cani", "yes"},
		{"can-view", "list deployments.apps -n cani", "yes"},
		{"can-view", "watch configmaps -n cani", "yes"},
		{"can-view", "get secrets -n cani", "no"},
		{"can-view", "create pods -n cani", "no"},
		{"can-view", "get pods -n default", "no"},
		{"can-view", "get pods/log -n cani", "yes"},
		{"can-view", "create pods/exec -n cani", "no"},
		{"can-view", "list roles.rbac.authorization.k8s.io -n cani", "no"},
		{"can-view", "get nodes", "no"},
		{"can-view", "create selfsubjectaccessreviews.authorization.k8s.io", "yes"},
		{"can-view", "get /healthz", "yes"},
		{"can-view", "get /api", "yes"},
		{"can-view", "get /metrics", "no"},
		{"can-edit", "create deployments.apps -n cani", "yes"},
		{"can-edit", "get secrets -n cani", "yes"},
		{"can-edit", "patch deployments.apps/scale -n cani", "yes"},
		{"can-edit", "create pods/exec -n cani", "yes"},
		{"can-edit", "impersonate serviceaccounts -n cani", "yes"},
		{"can-edit", "create rolebindings.rbac.authorization.k8s.io -n cani", "no"},
		{"can-edit", "create roles.rbac.authorization.k8s.io -n cani", "no"},
		{"can-edit", "delete namespaces", "no"},
		{"can-edit", "create localsubjectaccessreviews.authorization.k8s.io -n cani", "no"},
		{"can-admin", "create rolebindings.rbac.authorization.k8s.io -n cani", "yes"},
		{"can-admin", "create roles.rbac.authorization.k8s.io -n cani", "yes"},
		{"can-admin", "create localsubjectaccessreviews.authorization.k8s.io -n cani", "yes"},
		{"can-admin", "delete pods -n default", "no"},
		{"can-admin", "create namespaces", "no"},
		{"nobody", "get pods -n cani", "no"},
		{"nobody", "create selfsubjectrulesreviews.authorization.k8s.io", "yes"},
	}
	for _, c := range cases {
		args := append(strings.Fields(c.args), "--as", c.as)
		if got := canI(t, k, args...); got != c.want {
			t.Errorf("kubectl auth can-i %s: %s, want %s", strings.Join(args, " "), got, c.want)
		}
	}
	if got := canI(t, k, "'*'", "'*'"); got != "no" && got != "yes" {
		t.Errorf("admin can-i * *: %q", got)
	}
	if got := canI(t, k, "*", "*"); got != "yes" {
		t.Errorf("cluster admin (system:masters) can-i * *: %s, want yes", got)
	}

	// --list prints the rules that apply, as upstream does for view.
	out := k.ok("auth", "can-i", "--list", "-n", "cani", "--as", "can-view")
	rows := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		rows[strings.Join(strings.Fields(l), " ")] = true
	}
	for _, want := range []string{
		"Resources Non-Resource URLs Resource Names Verbs",
		"selfsubjectreviews.authentication.k8s.io [] [] [create]",
		"selfsubjectaccessreviews.authorization.k8s.io [] [] [create]",
		"selfsubjectrulesreviews.authorization.k8s.io [] [] [create]",
		"pods [] [] [get list watch]",
		"configmaps [] [] [get list watch]",
		"deployments.apps [] [] [get list watch]",
		"[/api/*] [] [get]",
		"[/healthz] [] [get]",
		"[/version] [] [get]",
	} {
		if !rows[want] {
			t.Errorf("can-i --list as can-view lacks row %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secrets ") {
		t.Errorf("can-i --list as can-view lists secrets:\n%s", out)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestEscalationAndImpersonation: an edit user cannot grant admin; nobody
// impersonates without the impersonate verb.
func TestEscalationAndImpersonation(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(adminConfig(t, srv.url))
	namespace(t, admin, "escalate")
	bindRole(t, admin, "escalate", "editor-edit", "edit", "editor")
	bindRole(t, admin, "escalate", "boss-admin", "admin", "boss")
	editor := kubernetes.NewForConfigOrDie(userConfig(t, srv.url, "editor"))
	boss := kubernetes.NewForConfigOrDie(userConfig(t, srv.url, "boss"))
	eventually(t, "editor can list", func() error {
		_, err := editor.CoreV1().Pods("escalate").List(ctx, metav1.ListOptions{})
		return err
	})
	rb := func(name, role string) *rbacv1.RoleBinding {
		return &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: "friend"}},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}}
	}
	// edit cannot create RoleBindings at all.
	_, err := editor.RbacV1().RoleBindings("escalate").Create(ctx, rb("to-admin", "admin"), metav1.CreateOptions{})
	wantForbidden(t, "editor binds admin", err, "")
	// admin of the namespace may bind edit (it holds all of edit's
	// permissions there) but not cluster-admin.
	eventually(t, "boss binds edit", func() error {
		_, err := boss.RbacV1().RoleBindings("escalate").Create(ctx, rb("friend-edit", "edit"), metav1.CreateOptions{})
		return err
	})
	_, err = boss.RbacV1().RoleBindings("escalate").Create(ctx, rb("friend-ca", "cluster-admin"), metav1.CreateOptions{})
	wantForbidden(t, "boss binds cluster-admin", err, "")
	if err != nil && !strings.Contains(err.Error(), "attempting to grant RBAC permissions not currently held") {
		t.Errorf("escalation message: %v", err)
	}
	// A Role with more than the creator holds is refused too.
	_, err = boss.RbacV1().Roles("escalate").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "nodes"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"nodes"}}}}, metav1.CreateOptions{})
	wantForbidden(t, "boss creates a role over nodes", err, "")
	if _, err := boss.RbacV1().Roles("escalate").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "pods"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}, metav1.CreateOptions{}); err != nil {
		t.Errorf("boss creates a role it holds: %v", err)
	}

	// Impersonation needs the verb.
	cfg := userConfig(t, srv.url, "editor")
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "boss"}
	_, err = kubernetes.NewForConfigOrDie(cfg).CoreV1().Pods("escalate").List(ctx, metav1.ListOptions{})
	wantForbidden(t, "impersonate without the verb", err, `users "boss" is forbidden: User "editor" cannot impersonate resource "users" in API group "" at the cluster scope`)
	// edit may impersonate service accounts of its namespace.
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:escalate:default"}
	_, err = kubernetes.NewForConfigOrDie(cfg).CoreV1().Pods("escalate").List(ctx, metav1.ListOptions{})
	wantForbidden(t, "impersonated service account lacks pods", err,
		`pods is forbidden: User "system:serviceaccount:escalate:default" cannot list resource "pods" in API group "" in the namespace "escalate"`)
	// The admin may impersonate anyone, and the request is then theirs.
	acfg := adminConfig(t, srv.url)
	acfg.Impersonate = rest.ImpersonationConfig{UserName: "editor", Groups: []string{"team"}}
	ssr, err := kubernetes.NewForConfigOrDie(acfg).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ssr.Status.UserInfo.Username != "editor" || !strings.Contains(strings.Join(ssr.Status.UserInfo.Groups, ","), "team") {
		t.Errorf("impersonated whoami: %+v", ssr.Status.UserInfo)
	}
}

// TestServiceAccountTokens: a token from TokenRequest (as `kubectl create
// token` makes it) works with client-go and stops when its pod goes; a
// token with a wrong signature, audience or expiry is 401.
func TestServiceAccountTokens(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(adminConfig(t, srv.url))
	namespace(t, admin, "tokens")
	sa, err := admin.CoreV1().ServiceAccounts("tokens").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod, err := admin.CoreV1().Pods("tokens").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{ServiceAccountName: "robot", Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tokenClient := func(token string) kubernetes.Interface {
		return kubernetes.NewForConfigOrDie(&rest.Config{Host: srv.url, BearerToken: token,
			TLSClientConfig: rest.TLSClientConfig{CAData: adminConfig(t, srv.url).CAData}})
	}
	whoami := func(token string) (*authenticationv1.SelfSubjectReview, error) {
		return tokenClient(token).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	}

	// kubectl create token, bound to the pod.
	k := &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}
	bound := strings.TrimSpace(k.ok("create", "token", "robot", "-n", "tokens", "--duration", "15m",
		"--bound-object-kind", "Pod", "--bound-object-name", "p"))
	plain := strings.TrimSpace(k.ok("create", "token", "robot", "-n", "tokens"))
	for name, tok := range map[string]string{"bound": bound, "unbound": plain} {
		r, err := whoami(tok)
		if err != nil {
			t.Fatalf("%s token: %v", name, err)
		}
		u := r.Status.UserInfo
		if u.Username != "system:serviceaccount:tokens:robot" || u.UID != string(sa.UID) ||
			strings.Join(u.Groups, ",") != "system:serviceaccounts,system:serviceaccounts:tokens,system:authenticated" {
			t.Errorf("%s token user: %+v", name, u)
		}
		if name == "bound" && (len(u.Extra["authentication.kubernetes.io/pod-name"]) != 1 || u.Extra["authentication.kubernetes.io/pod-uid"][0] != string(pod.UID)) {
			t.Errorf("bound token extra: %v", u.Extra)
		}
	}
	// The token carries upstream's claims.
	claims := decodeClaims(t, bound)
	for _, c := range []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "kubernetes.io"} {
		if !strings.Contains(claims, `"`+c+`"`) {
			t.Errorf("token lacks claim %q: %s", c, claims)
		}
	}
	// Without a role the service account is denied, not unauthenticated.
	_, err = tokenClient(plain).CoreV1().Pods("tokens").List(ctx, metav1.ListOptions{})
	wantForbidden(t, "service account lists pods", err, "")

	// TokenReview agrees, and names the audiences.
	tr, err := admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: bound}}, metav1.CreateOptions{})
	if err != nil || !tr.Status.Authenticated || tr.Status.User.Username != "system:serviceaccount:tokens:robot" {
		t.Errorf("token review: %v %+v", err, tr.Status)
	}

	// Deleting the pod kills the bound token, not the other one.
	if err := admin.CoreV1().Pods("tokens").Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bound token rejected after pod deletion", func() error {
		_, err := whoami(bound)
		if !apierrors.IsUnauthorized(err) {
			return errString("still accepted: " + errText(err))
		}
		return nil
	})
	if _, err := whoami(plain); err != nil {
		t.Errorf("unbound token after pod deletion: %v", err)
	}

	// Wrong audience: requested for another system.
	other := strings.TrimSpace(k.ok("create", "token", "robot", "-n", "tokens", "--audience", "https://vault.example"))
	if _, err := whoami(other); !apierrors.IsUnauthorized(err) {
		t.Errorf("token for another audience: %v, want 401", err)
	}
	tr, err = admin.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{
		Token: other, Audiences: []string{"https://vault.example"}}}, metav1.CreateOptions{})
	if err != nil || !tr.Status.Authenticated || strings.Join(tr.Status.Audiences, ",") != "https://vault.example" {
		t.Errorf("token review for its own audience: %v %+v", err, tr.Status)
	}

	// Expired, and signed with a key that is not the server's: made here
	// with the test CA directory's service-account key and with a fresh one.
	_, bundle := testCerts(t)
	issuer, err := authn.NewServiceAccountIssuer(bundle.ServiceAccountKey, "https://kubernetes.default.svc.cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	claimsFor := func(exp time.Time) authn.TokenClaims {
		return authn.TokenClaims{Audiences: []string{"https://kubernetes.default.svc.cluster.local"}, Expiry: exp, IssuedAt: exp.Add(-time.Hour),
			Namespace: "tokens", ServiceAccount: "robot", ServiceAccountUID: string(sa.UID)}
	}
	good, err := issuer.Issue(claimsFor(time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := whoami(good); err != nil {
		t.Fatalf("a token signed with the server's key: %v", err)
	}
	expired, _ := issuer.Issue(claimsFor(time.Now().Add(-time.Minute)))
	if _, err := whoami(expired); !apierrors.IsUnauthorized(err) {
		t.Errorf("expired token: %v, want 401", err)
	}
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	forger, _ := authn.NewServiceAccountIssuer(stranger, "https://kubernetes.default.svc.cluster.local")
	forged, _ := forger.Issue(claimsFor(time.Now().Add(time.Hour)))
	if _, err := whoami(forged); !apierrors.IsUnauthorized(err) {
		t.Errorf("token with a foreign signature: %v, want 401", err)
	}
	// Issuer discovery is served to service accounts, with the keys that
	// verify the tokens.
	body, err := tokenClient(plain).Discovery().RESTClient().Get().AbsPath("/.well-known/openid-configuration").DoRaw(ctx)
	if err != nil || !strings.Contains(string(body), `"jwks_uri":"https://kubernetes.default.svc.cluster.local/openid/v1/jwks"`) {
		t.Errorf("openid-configuration: %v %s", err, body)
	}
	body, err = tokenClient(plain).Discovery().RESTClient().Get().AbsPath("/openid/v1/jwks").DoRaw(ctx)
	if err != nil || !strings.Contains(string(body), issuer.KeyID()) {
		t.Errorf("jwks lacks the signing key %s: %v %s", issuer.KeyID(), err, body)
	}
}

func errText(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

func decodeClaims(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGarbageCredentials: broken credentials get a quick 401 Status, never
// a 500, and never fall back to anonymous.
func TestGarbageCredentials(t *testing.T) {
	srv := sharedServer(t)
	random := make([]byte, 64)
	rand.Read(random) //nolint:errcheck
	huge := strings.Repeat("A", 512<<10)
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"https://kubernetes.default.svc.cluster.local","sub":"system:serviceaccount:default:default","aud":["https://kubernetes.default.svc.cluster.local"],"exp":9999999999}`)) + "."
	for name, auth := range map[string]string{
		"random bytes":  "Bearer " + base64.StdEncoding.EncodeToString(random),
		"non-ASCII":     "Bearer \xff\xfe\x80",
		"truncated JWT": "Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6",
		"three dots":    "Bearer a.b.c",
		"alg none":      "Bearer " + none,
		"huge token":    "Bearer " + huge,
		"empty bearer":  "Bearer x y",
		"basic":         "Basic YWRtaW46YWRtaW4=",
	} {
		start := time.Now()
		req, _ := http.NewRequest("GET", srv.url+"/api/v1/namespaces", nil)
		req.Header.Set("Authorization", auth)
		resp, err := probeClient.Do(req)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		var st metav1.Status
		decodeJSONBody(t, resp, &st)
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s: took %v", name, took)
		}
		switch {
		case name == "basic" || name == "empty bearer":
			// Not a bearer token at all: anonymous, and anonymous may not
			// list namespaces.
			if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: %d %+v", name, resp.StatusCode, st)
			}
		case resp.StatusCode != http.StatusUnauthorized || st.Reason != metav1.StatusReasonUnauthorized || st.Kind != "Status":
			t.Errorf("%s: %d %+v, want a 401 Status", name, resp.StatusCode, st)
		}
	}
	// Headers past the server's limit are refused by the HTTP layer.
	req, _ := http.NewRequest("GET", srv.url+"/api/v1/namespaces", nil)
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("B", 2<<20))
	if resp, err := probeClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("2 MiB header: %d, want 431", resp.StatusCode)
		}
	}
	// A client certificate from another CA is not trusted: the TLS
	// handshake (or the request) fails rather than authenticating.
	resp, err := probeClient.Get(srv.url + "/readyz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("server unhealthy after garbage: %v", err)
	}
	resp.Body.Close()
}

// TestSecretsEncryptedAtRest: the shared server (pgkube up's default
// encryption config) stores no Secret value in the clear, history
// included; the audit log records the requests without the contents.
func TestSecretsEncryptedAtRest(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(adminConfig(t, srv.url))
	namespace(t, admin, "crypt")
	const value = "pgkube-plaintext-canary-7f3a"
	s, err := admin.CoreV1().Secrets("crypt").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "canary"},
		StringData: map[string]string{"password": value}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.StringData = map[string]string{"password": value + "-2"}
	if _, err := admin.CoreV1().Secrets("crypt").Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := admin.CoreV1().Secrets("crypt").Get(ctx, "canary", metav1.GetOptions{})
	if err != nil || string(got.Data["password"]) != value+"-2" {
		t.Fatalf("read back: %v %q", err, got.Data)
	}
	conn, err := pgx.Connect(ctx, srv.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	encoded := base64.StdEncoding.EncodeToString([]byte(value))
	var clear, total int
	err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE position($1::bytea IN data) > 0 OR position($2::bytea IN data) > 0), count(*)
		FROM objects WHERE resource = '/secrets' AND namespace = 'crypt'`, []byte(value), []byte(encoded[:16])).Scan(&clear, &total)
	if err != nil {
		t.Fatal(err)
	}
	if total < 2 || clear != 0 {
		t.Errorf("%d of %d stored versions of the secret hold its value in the clear", clear, total)
	}
	var prefixed int
	conn.QueryRow(ctx, `SELECT count(*) FROM objects WHERE resource = '/secrets' AND namespace = 'crypt'
		AND position('k8s:enc:aesgcm:v1:'::bytea IN data) = 1`).Scan(&prefixed) //nolint:errcheck
	if prefixed != total {
		t.Errorf("%d of %d versions are aesgcm-encrypted", prefixed, total)
	}

	// The audit log has the request, at Metadata level.
	eventually(t, "audit line for the secret update", func() error {
		raw, err := os.ReadFile(filepath.Join(srv.dataDir, "audit.log"))
		if err != nil {
			return err
		}
		if strings.Contains(string(raw), value) || strings.Contains(string(raw), encoded[:16]) {
			t.Fatal("the audit log contains the secret's value")
		}
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			var e audit.Event
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("audit line is not JSON: %v\n%s", err, line)
			}
			if e.Kind == "Event" && e.APIVersion == "audit.k8s.io/v1" && e.Level == "Metadata" && e.Verb == "update" &&
				e.User.Username == "admin" && slices.Contains(e.User.Groups, "system:masters") &&
				e.ObjectRef != nil && *e.ObjectRef == (audit.ObjectRef{Resource: "secrets", Namespace: "crypt", Name: "canary", APIVersion: "v1"}) &&
				e.ResponseStatus != nil && e.ResponseStatus.Code == 200 && len(e.SourceIPs) == 1 && e.AuditID != "" &&
				!e.StageTimestamp.Before(e.RequestReceivedTimestamp) {
				return nil
			}
		}
		return errString("no audit line for the update")
	})
}

func decodeJSONBody(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Errorf("%s: body is not JSON: %v", resp.Request.URL, err)
	}
}
