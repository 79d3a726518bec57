package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// tenant creates a logical cluster with `pgkube tenant create` and returns
// the path of its admin kubeconfig.
func tenant(t *testing.T, srv *pgkube, name string) string {
	t.Helper()
	out, err := exec.Command(pgkubeBinary(t), "tenant", "create", name, "--kubeconfig", srv.kubeconfig).CombinedOutput()
	if err != nil {
		t.Fatalf("pgkube tenant create %s: %v\n%s", name, err, out)
	}
	kc, err := exec.Command(pgkubeBinary(t), "tenant", "kubeconfig", name, "--kubeconfig", srv.kubeconfig).Output()
	if err != nil {
		t.Fatalf("pgkube tenant kubeconfig %s: %v", name, err)
	}
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func clientFor(t *testing.T, kubeconfig string) kubernetes.Interface {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

// TestTenantsAreIsolated: two logical clusters hold the same names without
// collision, see nothing of each other with any kubectl, reject each
// other's credentials, and a deleted one leaves no row behind.
func TestTenantsAreIsolated(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	kcA, kcB := tenant(t, srv, "tenant-a"), tenant(t, srv, "tenant-b")
	a, b := clientFor(t, kcA), clientFor(t, kcB)
	for _, c := range []kubernetes.Interface{a, b} {
		namespace(t, c, "shared-name")
		if _, err := c.CoreV1().ConfigMaps("shared-name").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "same"}},
			metav1.CreateOptions{}); err != nil {
			t.Fatalf("the same name in two tenants: %v", err)
		}
	}
	if _, err := a.CoreV1().Secrets("shared-name").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "only-in-a"}},
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Each kubectl, as tenant B: nothing of A's, by list, get or watch.
	for v, bin := range kubectls(t) {
		k := &kubectl{t: t, bin: bin, kubeconfig: kcB, cacheDir: t.TempDir()}
		if out := k.ok("get", "secrets", "-A", "-o", "name"); strings.Contains(out, "only-in-a") {
			t.Errorf("kubectl %s as tenant B lists tenant A's secret:\n%s", v, out)
		}
		contains(t, k.fails("get", "secret", "only-in-a", "-n", "shared-name"), `secrets "only-in-a" not found`)
		if out := k.ok("get", "ns", "-o", "name"); strings.Contains(out, "tenant-") {
			t.Errorf("kubectl %s sees other clusters' objects: %s", v, out)
		}
	}
	w, err := b.CoreV1().Secrets("").Watch(ctx, metav1.ListOptions{ResourceVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	a.CoreV1().Secrets("shared-name").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "later-in-a"}}, metav1.CreateOptions{}) //nolint:errcheck
	b.CoreV1().Secrets("shared-name").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "in-b"}}, metav1.CreateOptions{})       //nolint:errcheck
	for e := range w.ResultChan() {
		if s, ok := e.Object.(*corev1.Secret); ok {
			if strings.Contains(s.Name, "-in-a") || s.Name == "only-in-a" {
				t.Fatalf("tenant B's watch delivered tenant A's %s", s.Name)
			}
			if s.Name == "in-b" {
				break
			}
		}
	}
	w.Stop()

	// A CRD of tenant A is served in A only; the root's LogicalCluster kind
	// in neither.
	kA := &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: kcA, cacheDir: t.TempDir()}
	kB := &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: kcB, cacheDir: t.TempDir()}
	kA.okIn(widgetCRD("tenant.example.com"), "apply", "-f", "-")
	eventually(t, "tenant A serves its CRD", func() error {
		_, err := kA.run("apiVersion: tenant.example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: shared-name}\nspec: {replicas: 1}\n", "apply", "-f", "-")
		return err
	})
	if out := kB.ok("api-resources", "-o", "name"); strings.Contains(out, "widgets") || strings.Contains(out, "logicalclusters") {
		t.Errorf("tenant B's discovery shows another cluster's CRDs:\n%s", out)
	}
	if out := kA.ok("api-resources", "-o", "name"); strings.Contains(out, "logicalclusters") {
		t.Errorf("tenant A's discovery shows the root's LogicalCluster kind")
	}
	contains(t, kB.fails("get", "widgets.tenant.example.com"), "the server doesn't have a resource type")

	// A's certificate at B's URL, and at the root: 401.
	cross := strings.Replace(readFile(t, kcA), "/clusters/tenant-a", "/clusters/tenant-b", 1)
	crossPath := filepath.Join(t.TempDir(), "cross")
	os.WriteFile(crossPath, []byte(cross), 0o600) //nolint:errcheck
	if _, err := clientFor(t, crossPath).CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("tenant A's certificate at tenant B: %v, want 401", err)
	}
	rootPath := filepath.Join(t.TempDir(), "root")
	os.WriteFile(rootPath, []byte(strings.Replace(readFile(t, kcA), "/clusters/tenant-a", "", 1)), 0o600) //nolint:errcheck
	if _, err := clientFor(t, rootPath).CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("tenant A's certificate at the root cluster: %v, want 401", err)
	}
	// A service-account token of A at B: 401.
	if _, err := a.CoreV1().ServiceAccounts("shared-name").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := a.CoreV1().ServiceAccounts("shared-name").CreateToken(ctx, "robot", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfgB, _ := clientcmd.BuildConfigFromFlags("", kcB)
	cfgB.CertData, cfgB.KeyData, cfgB.BearerToken = nil, nil, tr.Status.Token
	if _, err := kubernetes.NewForConfigOrDie(cfgB).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("tenant A's token at tenant B: %v, want 401", err)
	}
	cfgA, _ := clientcmd.BuildConfigFromFlags("", kcA)
	cfgA.CertData, cfgA.KeyData, cfgA.BearerToken = nil, nil, tr.Status.Token
	if r, err := kubernetes.NewForConfigOrDie(cfgA).AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{}); err != nil ||
		r.Status.UserInfo.Username != "system:serviceaccount:shared-name:robot" {
		t.Errorf("tenant A's token at tenant A: %v", err)
	}

	// Deleting a tenant removes every row of it.
	out, err := exec.Command(pgkubeBinary(t), "tenant", "delete", "tenant-a", "--kubeconfig", srv.kubeconfig).CombinedOutput()
	if err != nil {
		t.Fatalf("pgkube tenant delete: %v\n%s", err, out)
	}
	conn, err := pgx.Connect(ctx, srv.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM objects WHERE cluster = 'tenant-a') + (SELECT count(*) FROM clusters WHERE name = 'tenant-a')
		+ (SELECT count(*) FROM allocations WHERE cluster = 'tenant-a') + (SELECT count(*) FROM rv_marks WHERE cluster = 'tenant-a')`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Errorf("%d rows of a deleted tenant left", rows)
	}
	if _, err := b.CoreV1().ConfigMaps("shared-name").Get(ctx, "same", metav1.GetOptions{}); err != nil {
		t.Errorf("tenant B after A's deletion: %v", err)
	}
	exec.Command(pgkubeBinary(t), "tenant", "delete", "tenant-b", "--kubeconfig", srv.kubeconfig).Run() //nolint:errcheck
}

func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
