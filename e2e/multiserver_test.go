package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/pgtest"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// startAPIServer runs `pgkube apiserver` on a database and waits for /readyz.
func startAPIServer(t *testing.T, dbURL string, flags ...string) string {
	listen := freePort(t)
	certs, _ := testCerts(t)
	cmd := exec.Command(pgkubeBinary(t), append([]string{"apiserver", "--database-url", dbURL, "--listen", listen, "--cert-dir", certs}, flags...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) //nolint:errcheck
		cmd.Wait()                       //nolint:errcheck
	})
	url := "https://" + listen
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ready(url) {
			return url
		}
		if time.Now().After(deadline) {
			t.Fatalf("apiserver not ready:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startAPIServers starts n API servers on one database at once, so they
// race on migrations and bootstrap as a real rollout would.
func startAPIServers(t *testing.T, db string, n int) []string {
	urls := make([]string, n)
	var wg sync.WaitGroup
	for i := range urls {
		wg.Add(1)
		go func(i int) { defer wg.Done(); urls[i] = startAPIServer(t, db) }(i)
	}
	wg.Wait()
	return urls
}

// TestTwoAPIServersOneDatabase starts two API server processes together on
// one fresh database (racing on migrations and bootstrap) and writes through
// both at once: resourceVersions stay unique and ordered, ClusterIPs and
// NodePorts are never handed out twice, and each sees the other's writes.
func TestTwoAPIServersOneDatabase(t *testing.T) {
	urls := startAPIServers(t, pgtest.NewDatabase(t), 2)
	var wg sync.WaitGroup
	ctx := context.Background()
	clients := make([]kubernetes.Interface, 2)
	for i, u := range urls {
		clients[i] = kubernetes.NewForConfigOrDie(adminConfig(t, u))
	}
	namespace(t, clients[0], "multi")

	const perServer = 40
	var mu sync.Mutex
	rvs := map[string]string{}
	ips := map[string]string{}
	ports := map[int32]string{}
	errs := make(chan error, 4*perServer)
	for i, cs := range clients {
		for j := 0; j < perServer; j++ {
			wg.Add(1)
			go func(i, j int, cs kubernetes.Interface) {
				defer wg.Done()
				name := fmt.Sprintf("s%d-%d", i, j)
				cm, err := cs.CoreV1().ConfigMaps("multi").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
				if err != nil {
					errs <- err
					return
				}
				svc, err := cs.CoreV1().Services("multi").Create(ctx, &corev1.Service{
					ObjectMeta: metav1.ObjectMeta{Name: name},
					Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeNodePort,
						Ports: []corev1.ServicePort{{Port: 80}}},
				}, metav1.CreateOptions{})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if other, dup := rvs[cm.ResourceVersion]; dup {
					errs <- fmt.Errorf("resourceVersion %s given to %s and %s", cm.ResourceVersion, other, name)
				}
				rvs[cm.ResourceVersion] = name
				if other, dup := ips[svc.Spec.ClusterIP]; dup {
					errs <- fmt.Errorf("ClusterIP %s given to %s and %s", svc.Spec.ClusterIP, other, name)
				}
				ips[svc.Spec.ClusterIP] = name
				np := svc.Spec.Ports[0].NodePort
				if other, dup := ports[np]; dup || np < 30000 || np > 32767 {
					errs <- fmt.Errorf("NodePort %d given to %s (also %q)", np, name, other)
				}
				ports[np] = name
			}(i, j, cs)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, cs := range clients {
		list, err := cs.CoreV1().ConfigMaps("multi").List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) != 2*perServer {
			t.Fatalf("server %d lists %d configmaps (want %d): %v", i, len(list.Items), 2*perServer, err)
		}
	}
	// A requested ClusterIP that the other server already handed out is refused.
	var taken string
	for ip := range ips {
		taken = ip
		break
	}
	_, err := clients[1].CoreV1().Services("multi").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "dup"},
		Spec:       corev1.ServiceSpec{ClusterIP: taken, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "provided IP is already allocated") {
		t.Fatalf("duplicate ClusterIP: want 'already allocated', got %v", err)
	}
	// Deleting a Service frees its IP for reuse.
	owner := ips[taken]
	if err := clients[0].CoreV1().Services("multi").Delete(ctx, owner, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := clients[1].CoreV1().Services("multi").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "dup"},
		Spec:       corev1.ServiceSpec{ClusterIP: taken, Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{})
	if err != nil || svc.Spec.ClusterIP != taken {
		t.Fatalf("a freed ClusterIP should be reusable: %v", err)
	}
	// The kubernetes Service exists once, with the first address.
	k, err := clients[1].CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || k.Spec.ClusterIP != "10.96.0.1" {
		t.Fatalf("kubernetes service: %v %+v", err, k)
	}
	slice, err := clients[0].DiscoveryV1().EndpointSlices("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil || len(slice.Endpoints) != 1 || slice.Endpoints[0].Addresses[0] != "127.0.0.1" || *slice.Ports[0].Port == 0 {
		t.Fatalf("kubernetes EndpointSlice: %v %+v", err, slice)
	}
}

// TestHealthVersionMetrics checks the plain endpoints monitoring relies on.
func TestHealthVersionMetrics(t *testing.T) {
	srv := sharedServer(t)
	for _, path := range []string{"/healthz", "/livez", "/readyz"} {
		code, body := do(t, "GET", srv.url+path, "", nil)
		if code != 200 || string(body) != "ok" {
			t.Fatalf("%s: %d %q", path, code, body)
		}
	}
	code, body := do(t, "GET", srv.url+"/version", "", nil)
	if code != 200 || !strings.Contains(string(body), `"gitVersion":"v1.33`) {
		t.Fatalf("/version: %d %s", code, body)
	}
	do(t, "GET", srv.url+"/api/v1/namespaces/default/configmaps", "", nil)
	code, body = do(t, "GET", srv.url+"/metrics", "", nil)
	for _, want := range []string{
		`apiserver_request_total{verb="list",resource="configmaps",subresource="",code="200"}`,
		`apiserver_request_duration_seconds_bucket{verb="list",resource="configmaps"`,
		`pgkube_storage_duration_seconds_count{operation="list"}`,
		`apiserver_current_inflight_requests`,
	} {
		if code != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("/metrics lacks %s:\n%.2000s", want, body)
		}
	}
}

// TestUpdatesAcrossServersNeverLoseWrites: each API server starts an
// update from the version it wrote last, a guess another server may have
// made stale. Updates alternating between two servers must each land,
// also an unconditional one whose content equals that stale guess, and a
// stale client resourceVersion is still a conflict.
func TestUpdatesAcrossServersNeverLoseWrites(t *testing.T) {
	urls := startAPIServers(t, pgtest.NewDatabase(t), 2)
	ctx := context.Background()
	servers := []kubernetes.Interface{
		kubernetes.NewForConfigOrDie(adminConfig(t, urls[0])),
		kubernetes.NewForConfigOrDie(adminConfig(t, urls[1])),
	}
	namespace(t, servers[0], "guess")
	cm, err := servers[0].CoreV1().ConfigMaps("guess").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c"},
		Data: map[string]string{"n": "0"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		cs := servers[i%2]
		cur, err := cs.CoreV1().ConfigMaps("guess").Get(ctx, "c", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cur.Data["n"] != fmt.Sprint(i-1) {
			t.Fatalf("before update %d: data %v", i, cur.Data)
		}
		cur.Data["n"] = fmt.Sprint(i)
		if _, err := cs.CoreV1().ConfigMaps("guess").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update %d through server %d: %v", i, i%2, err)
		}
	}
	// Server 1 last wrote n=19; server 0 wrote n=20 after it. Writing n=19
	// again, unconditionally, through server 1 must really write it.
	again := cm.DeepCopy()
	again.ResourceVersion = ""
	again.Data = map[string]string{"n": "19"}
	if got, err := servers[1].CoreV1().ConfigMaps("guess").Update(ctx, again, metav1.UpdateOptions{}); err != nil || got.Data["n"] != "19" {
		t.Fatalf("unconditional update equal to a stale guess: %v %v", err, got)
	}
	if got, _ := servers[0].CoreV1().ConfigMaps("guess").Get(ctx, "c", metav1.GetOptions{}); got.Data["n"] != "19" {
		t.Fatalf("the update was lost: stored %v", got.Data)
	}
	cm.Data = map[string]string{"stale": "yes"}
	if _, err := servers[1].CoreV1().ConfigMaps("guess").Update(ctx, cm, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("stale resourceVersion through the other server: want Conflict, got %v", err)
	}
}
