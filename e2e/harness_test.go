// Package e2e drives a real pgkube (the built binary, on a real PostgreSQL)
// with stock kubectl, client-go and raw HTTP, as its users do.
package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/pgtest"
	"github.com/pgkube/pgkube/migrations"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error

	sharedMu    sync.Mutex
	shared      *pgkube
	sharedUsers = map[string]bool{} // tests that have used the current shared server
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrations.ApplyURL)
	code := pgtest.Main(m, stopShared)
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// pgkubeBinary builds cmd/pgkube once per test binary.
func pgkubeBinary(t testing.TB) string {
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pgkube-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "pgkube")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/pgkube/pgkube/cmd/pgkube").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// pgkube is a running `pgkube up` process.
type pgkube struct {
	cmd        *exec.Cmd
	dataDir    string
	url        string
	kubeconfig string
	dbURL      string // empty for the embedded PostgreSQL
	exited     chan struct{}
	log        *strings.Builder
	logMu      sync.Mutex
}

// freePort asks the kernel for a free loopback port.
func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// tempDir makes a directory PostgreSQL's unprivileged user can reach when
// tests run as root (t.TempDir's parents are private).
func tempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "pgkube-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startUp runs `pgkube up` and waits for /readyz. dbURL may be empty for the
// embedded PostgreSQL.
func startUp(t testing.TB, dataDir, listen, dbURL string, flags ...string) *pgkube {
	return startUpEnv(t, nil, dataDir, listen, dbURL, flags...)
}

// startUpEnv is startUp with environment variables set for pgkube up
// (and so its children), over the test's own.
func startUpEnv(t testing.TB, env []string, dataDir, listen, dbURL string, flags ...string) *pgkube {
	args := append([]string{"up", "--data-dir", dataDir, "--listen", listen}, flags...)
	if dbURL != "" {
		args = append(args, "--database-url", dbURL)
	}
	p := &pgkube{dataDir: dataDir, url: "https://" + listen, kubeconfig: filepath.Join(dataDir, "kubeconfig"), dbURL: dbURL,
		exited: make(chan struct{}), log: &strings.Builder{}}
	p.cmd = exec.Command(pgkubeBinary(t), args...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.logMu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.logMu.Unlock()
		}
		p.cmd.Wait() //nolint:errcheck
		close(p.exited)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ready(p.url) {
			if _, err := os.Stat(p.kubeconfig); err == nil {
				return p
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("pgkube up exited early:\n%s", p.output())
		default:
		}
		if time.Now().After(deadline) {
			p.kill()
			t.Fatalf("pgkube up not ready after 60s:\n%s", p.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *pgkube) output() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// stop sends SIGINT, as Ctrl-C does, and waits for a clean exit.
func (p *pgkube) stop() error {
	p.cmd.Process.Signal(os.Interrupt) //nolint:errcheck
	select {
	case <-p.exited:
		if st := p.cmd.ProcessState; st != nil && !st.Success() {
			return fmt.Errorf("pgkube up exited with %v:\n%s", st, p.output())
		}
		return nil
	case <-time.After(30 * time.Second):
		p.kill()
		return fmt.Errorf("pgkube up did not stop within 30s:\n%s", p.output())
	}
}

func (p *pgkube) kill() {
	p.cmd.Process.Kill() //nolint:errcheck
	<-p.exited
}

// sharedServer is one `pgkube up` on the shared PostgreSQL for every test
// that does not need a server of its own.
//
// Tests use fixed names on it, so when a test asks for it a second time
// (go test -count=N), a fresh server with a fresh database replaces it.
func sharedServer(t testing.TB) *pgkube {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedUsers[t.Name()] && shared != nil {
		stopShared()
		sharedUsers = map[string]bool{}
	}
	sharedUsers[t.Name()] = true
	if shared == nil {
		dir, err := os.MkdirTemp("", "pgkube-shared-")
		if err != nil {
			t.Fatal(err)
		}
		certs, _ := testCerts(t)
		// No scheduler and no node agent on the shared server: its tests
		// place pods and report their status themselves.
		shared = startUp(t, dir, freePort(t), sharedDatabase(), "--cert-dir", certs, "--scheduler=false", "--agent=none")
	}
	return shared
}

// stopShared stops the shared server, if any, and removes its directory.
func stopShared() {
	if shared == nil {
		return
	}
	if err := shared.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stopping the shared server:", err)
	}
	os.RemoveAll(shared.dataDir)
	shared = nil
}

// sharedDatabase creates the shared server's database outside any one test,
// so it lives as long as the server.
func sharedDatabase() string {
	return pgtest.NewDatabase(binaryScope{})
}

// binaryScope is a testing.TB whose cleanups never run: the database lives
// until PostgreSQL stops at the end of the test binary.
type binaryScope struct{ testing.TB }

func (binaryScope) Helper()                   {}
func (binaryScope) Cleanup(func())            {}
func (binaryScope) Name() string              { return "shared" }
func (binaryScope) Fatal(args ...any)         { panic(fmt.Sprint(args...)) }
func (binaryScope) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (binaryScope) Errorf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (binaryScope) Logf(string, ...any)       {}
