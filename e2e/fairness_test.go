package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/pgtest"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// tenantConfig creates a logical cluster through the root API and returns
// an admin client config for it.
func tenantConfig(t *testing.T, url, name string) *rest.Config {
	t.Helper()
	ctx := context.Background()
	lcs := dynamic.NewForConfigOrDie(adminConfig(t, url)).Resource(schema.GroupVersionResource{
		Group: "tenancy.pgkube.io", Version: "v1alpha1", Resource: "logicalclusters"})
	eventually(t, "create "+name, func() error {
		_, err := lcs.Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "tenancy.pgkube.io/v1alpha1",
			"kind": "LogicalCluster", "metadata": map[string]any{"name": name}}}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
	eventually(t, name+" ready", func() error {
		lc, err := lcs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if phase, _, _ := unstructured.NestedString(lc.Object, "status", "phase"); phase != "Ready" {
			return errors.New("phase " + phase)
		}
		return nil
	})
	sec, err := kubernetes.NewForConfigOrDie(adminConfig(t, url)).CoreV1().Secrets("kube-system").Get(ctx, "tenant-"+name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, b := testCerts(t)
	return &rest.Config{Host: url + "/clusters/" + name, TLSClientConfig: rest.TLSClientConfig{
		CAData: b.CAPEM, CertData: sec.Data["admin.crt"], KeyData: sec.Data["admin.key"]}}
}

// TestTenantFairness: a tenant flooding the server gets 429s with
// Retry-After; another tenant and the root cluster are served meanwhile.
func TestTenantFairness(t *testing.T) {
	url := startAPIServer(t, pgtest.NewDatabase(t), "--tenant-qps", "20", "--tenant-burst", "20")
	noisy, quiet := tenantConfig(t, url, "noisy"), tenantConfig(t, url, "quiet")
	noisy.RateLimiter = flowcontrol.NewFakeAlwaysRateLimiter()
	ctx := context.Background()
	noisyClient := kubernetes.NewForConfigOrDie(noisy)
	// client-go retries 429s on its own; ask once to see each answer.
	get := func() error {
		return noisyClient.CoreV1().RESTClient().Get().Resource("namespaces").Name("default").MaxRetries(0).Do(ctx).Error()
	}
	var mu sync.Mutex
	var throttled, served int
	var wg sync.WaitGroup
	stop := time.Now().Add(2 * time.Second)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				err := get()
				mu.Lock()
				switch {
				case err == nil:
					served++
				case apierrors.IsTooManyRequests(err):
					throttled++
				default:
					t.Errorf("noisy tenant: %v", err)
				}
				mu.Unlock()
			}
		}()
	}
	// Meanwhile the quiet tenant and the root are served at once.
	quietClient := kubernetes.NewForConfigOrDie(quiet)
	root := kubernetes.NewForConfigOrDie(adminConfig(t, url))
	// The root's admin acting in the noisy tenant (as pgkube's controller
	// manager does) is not held to the tenant's limits.
	inNoisy := adminConfig(t, url)
	inNoisy.Host = url + "/clusters/noisy"
	rootInNoisy := kubernetes.NewForConfigOrDie(inNoisy)
	for i := 0; i < 10; i++ {
		if err := rootInNoisy.CoreV1().RESTClient().Get().Resource("namespaces").Name("default").MaxRetries(0).Do(ctx).Error(); err != nil {
			t.Errorf("root admin in the flooded tenant: %v", err)
		}
		start := time.Now()
		if _, err := quietClient.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
			t.Errorf("quiet tenant while another floods: %v", err)
		}
		if _, err := root.CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{}); err != nil {
			t.Errorf("root while a tenant floods: %v", err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("quiet requests took %v", took)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	t.Logf("noisy tenant: %d served, %d throttled", served, throttled)
	if throttled == 0 || served > 120 {
		t.Errorf("a tenant limited to 20 requests/s was served %d and throttled %d times in 2 s", served, throttled)
	}
}

// feedGoroutines counts the API server's goroutines that keep logical
// clusters' in-memory state (feeds, aggregation, CRD controllers), from a
// pprof goroutine profile: connections' goroutines come and go with the
// test's clients and are left out.
func feedGoroutines(t *testing.T, url string) int {
	t.Helper()
	resp, err := adminHTTP(t).Get(url + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, group := range strings.Split(string(body), "\n\n") {
		var count int
		if _, err := fmt.Sscanf(group, "%d @", &count); err != nil {
			continue
		}
		if strings.Contains(group, "pgkube/pgkube/apiserver.") || strings.Contains(group, "pgkube/pgkube/watch.") {
			n += count
		}
	}
	return n
}

// TestIdleTenantsCostNoGoroutines: a tenant's in-memory state (RBAC,
// admission and CRD feeds) runs while it is used and stops when it has been
// idle, and comes back on its next request.
func TestIdleTenantsCostNoGoroutines(t *testing.T) {
	url := startAPIServer(t, pgtest.NewDatabase(t), "--tenant-idle-timeout", "2s")
	ctx := context.Background()
	settle := func() int {
		// Take the lowest of a few readings: a request in flight may be
		// starting something.
		low := 1 << 30
		for range 5 {
			low = min(low, feedGoroutines(t, url))
			time.Sleep(200 * time.Millisecond)
		}
		return low
	}
	before := settle()
	cs := kubernetes.NewForConfigOrDie(tenantConfig(t, url, "sleepy"))
	if _, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	active := feedGoroutines(t, url)
	if active <= before {
		t.Fatalf("goroutines with an active tenant %d, before %d: the test cannot tell", active, before)
	}
	time.Sleep(4 * time.Second)
	idle := settle()
	t.Logf("goroutines: before %d, tenant active %d, tenant idle %d", before, active, idle)
	if idle > before {
		t.Errorf("an idle tenant still costs %d goroutines", idle-before)
	}
	// The next request brings it back.
	if _, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "awake"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("a request to an idle tenant: %v", err)
	}
}

// TestTenantStorageLimits: a tenant that has stored its limit of objects
// or bytes gets 403 with a message naming the limit; deleting makes room;
// other tenants are not affected.
func TestTenantStorageLimits(t *testing.T) {
	url := startAPIServer(t, pgtest.NewDatabase(t), "--tenant-max-objects", "400", "--tenant-max-bytes", "8000000")
	ctx := context.Background()
	client := func(name string) corev1client.ConfigMapInterface {
		cfg := tenantConfig(t, url, name)
		cfg.QPS, cfg.Burst = 1000, 1000
		return kubernetes.NewForConfigOrDie(cfg).CoreV1().ConfigMaps("default")
	}
	many, big, other := client("many"), client("big"), client("other")
	cm := func(name string, size int) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"v": strings.Repeat("x", size)}}
	}
	full := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "reached its limit of") || !strings.Contains(err.Error(), what) {
			t.Fatalf("got %v, want 403 naming the %s limit", err, what)
		}
	}
	var created int
	var err error
	for created = 0; created < 400; created++ {
		if _, err = many.Create(ctx, cm(fmt.Sprintf("cm-%d", created), 10), metav1.CreateOptions{}); err != nil {
			break
		}
	}
	full("400 stored objects", err)
	if created == 0 {
		t.Fatal("the first create already failed")
	}
	if err := many.Delete(ctx, "cm-0", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete in a full tenant: %v", err)
	}
	if _, err := many.Create(ctx, cm("after-room", 10), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create after making room: %v", err)
	}

	for i := 0; ; i++ {
		_, err = big.Create(ctx, cm(fmt.Sprintf("big-%d", i), 900_000), metav1.CreateOptions{})
		if err != nil || i > 10 {
			break
		}
	}
	full("8000000 stored bytes", err)
	if _, err := other.Create(ctx, cm("fine", 900_000), metav1.CreateOptions{}); err != nil {
		t.Fatalf("another tenant while two are full: %v", err)
	}
}
