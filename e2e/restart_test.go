package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestRestartKeepsEverything runs `pgkube up` on its embedded PostgreSQL,
// stops it the way Ctrl-C does, starts it again on the same data dir, and
// then kills both the API server and PostgreSQL with SIGKILL: every
// acknowledged write is still there and resourceVersions keep growing.
func TestRestartKeepsEverything(t *testing.T) {
	dir := filepath.Join(tempDir(t), "data")
	listen := freePort(t)
	ctx := context.Background()

	p := startUp(t, dir, listen, "", "--agent=simulated")
	cs := kubernetes.NewForConfigOrDie(restConfig(t, p, false))
	namespace(t, cs, "keep")
	var lastRV int64
	for i := 0; i < 20; i++ {
		cm, err := cs.CoreV1().ConfigMaps("keep").Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}, Data: map[string]string{"i": strconv.Itoa(i)}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		lastRV = rvOf(t, cm.ResourceVersion)
	}
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	if pids := postgresPIDs(dir); len(pids) != 0 {
		t.Fatalf("PostgreSQL still running after pgkube up stopped: %v", pids)
	}

	p = startUp(t, dir, listen, "", "--agent=simulated")
	cs = kubernetes.NewForConfigOrDie(restConfig(t, p, false))
	list, err := cs.CoreV1().ConfigMaps("keep").List(ctx, metav1.ListOptions{})
	// The controller manager adds kube-root-ca.crt to the namespace when
	// it gets to it: count the test's own.
	ours := 0
	for _, cm := range list.Items {
		if strings.HasPrefix(cm.Name, "cm-") {
			ours++
		}
	}
	if err != nil || ours != 20 {
		t.Fatalf("after restart: %v, %d of the 20 configmaps", err, ours)
	}
	cm, err := cs.CoreV1().ConfigMaps("keep").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "acked"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rv := rvOf(t, cm.ResourceVersion); rv <= lastRV {
		t.Fatalf("resourceVersion went backwards across a restart: %d after %d", rv, lastRV)
	}
	lastRV = rvOf(t, cm.ResourceVersion)

	// kill -9 of PostgreSQL and of the API server, right after the ack.
	pg := postgresPIDs(dir)
	if len(pg) == 0 {
		t.Fatal("no postmaster.pid under the data dir")
	}
	syscall.Kill(pg[0], syscall.SIGKILL)
	p.kill()
	waitGone(t, pg[0])

	p = startUp(t, dir, listen, "", "--agent=simulated")
	defer p.stop()
	cs = kubernetes.NewForConfigOrDie(restConfig(t, p, false))
	got, err := cs.CoreV1().ConfigMaps("keep").Get(ctx, "acked", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("an acknowledged write was lost by kill -9: %v", err)
	}
	if got.ResourceVersion != cm.ResourceVersion {
		t.Fatalf("resourceVersion changed: %s → %s", cm.ResourceVersion, got.ResourceVersion)
	}
	next, err := cs.CoreV1().ConfigMaps("keep").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "after"}}, metav1.CreateOptions{})
	if err != nil || rvOf(t, next.ResourceVersion) <= lastRV {
		t.Fatalf("write after crash: %v, rv %s (last %d)", err, next.ResourceVersion, lastRV)
	}
}

func rvOf(t *testing.T, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("resourceVersion %q is not an integer", s)
	}
	return n
}

// postgresPIDs returns the postmaster's PID if it is running.
func postgresPIDs(dataDir string) []int {
	b, err := os.ReadFile(filepath.Join(dataDir, "postgres", "postmaster.pid"))
	if err != nil {
		return nil
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || syscall.Kill(pid, 0) != nil {
		return nil
	}
	return []int{pid}
}

func waitGone(t *testing.T, pid int) {
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not exit", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
