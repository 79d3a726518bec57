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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// managerProc is a `pgkube controller-manager` process the test runs.
type managerProc struct {
	id     string
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    strings.Builder
	exited chan struct{}
}

func (m *managerProc) Write(b []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out.Write(b)
}

func (m *managerProc) log() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out.String()
}

func startManager(t *testing.T, kubeconfig, id string) *managerProc {
	m := &managerProc{id: id, exited: make(chan struct{})}
	m.cmd = exec.Command(pgkubeBinary(t), "controller-manager", "--kubeconfig", kubeconfig, "--leader-elect-identity", id)
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	m.cmd.Stdout, m.cmd.Stderr = m, m
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { m.cmd.Wait(); close(m.exited) }() //nolint:errcheck
	t.Cleanup(func() {
		m.cmd.Process.Kill() //nolint:errcheck
		<-m.exited
	})
	return m
}

// TestControllerManagerLeaderElection: two controller managers against one
// API server (`pgkube up --controller-manager=false`): one holds the Lease
// and acts, the other waits; the leader killed, the other takes over
// within 15 s; a manager stopped cleanly gives the Lease up.
func TestControllerManagerLeaderElection(t *testing.T) {
	certs, _ := testCerts(t)
	srv := startUp(t, tempDir(t), freePort(t), pgtest.NewDatabase(t), "--cert-dir", certs, "--controller-manager=false", "--agent=simulated")
	t.Cleanup(func() {
		if err := srv.stop(); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))

	// Without a manager nothing makes service accounts.
	namespace(t, cs, "before")
	time.Sleep(2 * time.Second)
	if _, err := cs.CoreV1().ServiceAccounts("before").Get(ctx, "default", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("up --controller-manager=false: a default service account appeared anyway: %v", err)
	}

	a, b := startManager(t, srv.kubeconfig, "cm-a"), startManager(t, srv.kubeconfig, "cm-b")
	holder := func() string {
		l, err := cs.CoordinationV1().Leases("kube-system").Get(ctx, "pgkube-controller-manager", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	var leader, other *managerProc
	within(t, 20*time.Second, "a leader", func() error {
		switch holder() {
		case "cm-a":
			leader, other = a, b
		case "cm-b":
			leader, other = b, a
		default:
			return fmt.Errorf("lease held by %q", holder())
		}
		return nil
	})
	within(t, 15*time.Second, "the leader's service account in a namespace made before it started", func() error {
		_, err := cs.CoreV1().ServiceAccounts("before").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	within(t, 5*time.Second, "the leader's log", func() error {
		if !strings.Contains(leader.log(), "became leader") || !strings.Contains(leader.log(), "started controller") {
			return fmt.Errorf("leader %s log:\n%s", leader.id, leader.log())
		}
		return nil
	})
	// Long enough for the other to have tried the Lease several times.
	time.Sleep(3 * time.Second)
	if l := other.log(); strings.Contains(l, "became leader") || strings.Contains(l, "started controller") {
		t.Fatalf("the other manager %s acts too:\n%s", other.id, l)
	}
	if h := holder(); h != leader.id {
		t.Fatalf("lease moved to %q without a reason", h)
	}

	// The leader dies without releasing the Lease: the other takes over
	// once it expires, within 15 s, and acts.
	leader.cmd.Process.Kill() //nolint:errcheck
	<-leader.exited
	killed := time.Now()
	within(t, 20*time.Second, "the other manager leading", func() error {
		if h := holder(); h != other.id {
			return fmt.Errorf("lease held by %q", h)
		}
		return nil
	})
	took := time.Since(killed)
	t.Logf("%s took over %v after %s was killed", other.id, took, leader.id)
	if took > 15*time.Second {
		t.Errorf("the other manager took %v to take over, want at most 15s", took)
	}
	namespace(t, cs, "after")
	within(t, 15*time.Second, "the new leader's service account", func() error {
		_, err := cs.CoreV1().ServiceAccounts("after").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	if !strings.Contains(other.log(), "became leader") {
		t.Errorf("the new leader's log:\n%s", other.log())
	}

	// Stopped cleanly (Ctrl-C), the leader releases the Lease.
	other.cmd.Process.Signal(os.Interrupt) //nolint:errcheck
	select {
	case <-other.exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("the controller manager did not stop on SIGINT:\n%s", other.log())
	}
	if !other.cmd.ProcessState.Success() {
		t.Errorf("the controller manager exited with %v on SIGINT:\n%s", other.cmd.ProcessState, other.log())
	}
	if h := holder(); h != "" {
		t.Errorf("after a clean stop the Lease is still held by %q", h)
	}
}
