package e2e

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/pgtest"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// topRows are the rows of kubectl top's table, each with single spaces,
// without the header.
func topRows(out string) []string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var rows []string
	for _, l := range lines[1:] {
		rows = append(rows, spaces.ReplaceAllString(strings.TrimSpace(l), " "))
	}
	sort.Strings(rows)
	return rows
}

func topPod(t *testing.T, cs kubernetes.Interface, ns, name, cpu, mem string) {
	t.Helper()
	c := corev1.Container{Name: "app", Image: "busybox"}
	if cpu != "" {
		c.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
	if name == "duo" {
		side := corev1.Container{Name: "side", Image: "busybox", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("16Mi")}}}
		p.Spec.Containers = append(p.Spec.Containers, side)
	}
	if _, err := cs.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func topRunning(t *testing.T, cs kubernetes.Interface, ns string, n int) {
	t.Helper()
	agWait(t, 60*time.Second, "pods running in "+ns, func() error {
		l, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return err
		}
		running := 0
		for _, p := range l.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		if running != n {
			return fmt.Errorf("%d of %d running", running, n)
		}
		return nil
	})
}

var topNodeHeader = regexp.MustCompile(`^NAME CPU\(cores\) CPU(%|\(%\)) MEMORY\(bytes\) MEMORY(%|\(%\))$`)

// TestTop: stock kubectl top against pgkube up with the simulated agent,
// whose containers use what they request (1m and 4Mi when they request
// nothing) and whose node uses the sum of its pods: nodes, pods of a
// namespace, of all, per container, by label, and a tenant's own.
func TestTop(t *testing.T) {
	certs, _ := testCerts(t)
	srv := startUp(t, tempDir(t), freePort(t), pgtest.NewDatabase(t), "--cert-dir", certs, "--agent=simulated")
	defer srv.stop() //nolint:errcheck
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	node := agHostNode(t)
	namespace(t, cs, "top")
	topPod(t, cs, "top", "web", "250m", "64Mi")
	topPod(t, cs, "top", "idle", "", "")
	topPod(t, cs, "top", "duo", "100m", "32Mi")
	topRunning(t, cs, "top", 3)

	kc := tenant(t, srv, "top-tenant")
	tcs := clientFor(t, kc)
	agWait(t, 30*time.Second, "tenant's default namespace", func() error {
		_, err := tcs.CoreV1().ServiceAccounts("default").Get(context.Background(), "default", metav1.GetOptions{})
		return err
	})
	topPod(t, tcs, "default", "mine", "500m", "1Gi")
	topRunning(t, tcs, "default", 1)

	versions := kubectls(t)
	var names []string
	for v := range versions {
		names = append(names, v)
	}
	sort.Strings(names)
	for _, v := range names {
		t.Run(v, func(t *testing.T) {
			k := &kubectl{t: t, bin: versions[v], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}
			tk := &kubectl{t: t, bin: versions[v], kubeconfig: kc, cacheDir: t.TempDir()}

			out := k.ok("top", "pods", "-n", "top")
			if h := header(out); h != "NAME CPU(cores) MEMORY(bytes)" {
				t.Errorf("top pods header %q:\n%s", h, out)
			}
			if got, want := strings.Join(topRows(out), "|"), "duo 150m 48Mi|idle 1m 4Mi|web 250m 64Mi"; got != want {
				t.Errorf("top pods: %q, want %q:\n%s", got, want, out)
			}
			out = k.ok("top", "pods", "-n", "top", "--containers")
			if h := header(out); h != "POD NAME CPU(cores) MEMORY(bytes)" {
				t.Errorf("top pods --containers header %q:\n%s", h, out)
			}
			if got, want := strings.Join(topRows(out), "|"), "duo app 100m 32Mi|duo side 50m 16Mi|idle app 1m 4Mi|web app 250m 64Mi"; got != want {
				t.Errorf("top pods --containers: %q, want %q:\n%s", got, want, out)
			}
			out = k.ok("top", "pods", "-n", "top", "-l", "app=web")
			if got := strings.Join(topRows(out), "|"); got != "web 250m 64Mi" {
				t.Errorf("top pods -l app=web: %q:\n%s", got, out)
			}
			out = k.ok("top", "pods", "-n", "top", "idle")
			if got := strings.Join(topRows(out), "|"); got != "idle 1m 4Mi" {
				t.Errorf("top pod idle: %q:\n%s", got, out)
			}
			out = k.ok("top", "pods", "-A")
			if h := header(out); h != "NAMESPACE NAME CPU(cores) MEMORY(bytes)" {
				t.Errorf("top pods -A header %q:\n%s", h, out)
			}
			if strings.Contains(out, "mine") {
				t.Errorf("the root sees the tenant's pod:\n%s", out)
			}
			out = k.fails("top", "pods", "-n", "top", "nothere")
			if !strings.Contains(out, `podmetrics.metrics.k8s.io "top/nothere" not found`) {
				t.Errorf("top pod nothere:\n%s", out)
			}

			// The node runs the root's pods and the tenant's.
			out = k.ok("top", "nodes")
			if h := header(out); !topNodeHeader.MatchString(h) {
				t.Errorf("top nodes header %q:\n%s", h, out)
			}
			rows := topRows(out)
			if len(rows) != 1 {
				t.Fatalf("top nodes rows %q", rows)
			}
			f := strings.Fields(rows[0])
			if len(f) != 5 || f[0] != node || f[1] != "901m" || f[3] != "1140Mi" || !strings.HasSuffix(f[2], "%") || !strings.HasSuffix(f[4], "%") {
				t.Errorf("top nodes: %q, want %s 901m ..%% 1140Mi ..%%", rows[0], node)
			}
			out = k.ok("top", "node", node)
			if rows := topRows(out); len(rows) != 1 || !strings.HasPrefix(rows[0], node+" 901m ") {
				t.Errorf("top node %s:\n%s", node, out)
			}

			// Plain names still mean the core kinds; the metrics kinds
			// are there by their own names.
			if h := header(k.ok("get", "pods", "-n", "top")); h != "NAME READY STATUS RESTARTS AGE" {
				t.Errorf("get pods header %q", h)
			}
			if h := header(k.ok("get", "nodes")); h != "NAME STATUS ROLES AGE VERSION" {
				t.Errorf("get nodes header %q", h)
			}
			contains(t, k.ok("get", "podmetrics", "-n", "top", "-o", "name"), "podmetrics.metrics.k8s.io/web")

			// The tenant sees its own pod, and no nodes (it has none).
			out = tk.ok("top", "pods", "-A")
			if got := strings.Join(topRows(out), "|"); got != "default mine 500m 1024Mi" {
				t.Errorf("tenant's top pods -A: %q:\n%s", got, out)
			}
			out = tk.fails("top", "nodes")
			if !strings.Contains(out, "metrics not available yet") {
				t.Errorf("tenant's top nodes:\n%s", out)
			}
		})
	}
}
