package embedpg

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// tempDataDir returns a not yet existing data directory. Its parent is
// world-traversable because, when the tests run as root, PostgreSQL runs
// as another user that must reach it.
func tempDataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "embedpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "data")
}

func start(t *testing.T, dataDir string) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{DataDir: dataDir, Log: testLog{t}})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// testLog shows PostgreSQL's output with the test's, so failures explain themselves.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func connect(t *testing.T, s *Server) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), s.URL("pgkube"))
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec1(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, conn *pgx.Conn) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM kv").Scan(&n); err != nil {
		t.Fatalf("counting rows: %v", err)
	}
	return n
}

func TestRestartKeepsData(t *testing.T) {
	t.Parallel()
	dataDir := tempDataDir(t)
	s := start(t, dataDir)
	conn := connect(t, s)
	exec1(t, conn, "CREATE TABLE kv (k text PRIMARY KEY, v text)")
	exec1(t, conn, "INSERT INTO kv VALUES ('a', '1'), ('b', '2')")

	var listen string
	if err := conn.QueryRow(context.Background(), "SHOW listen_addresses").Scan(&listen); err != nil {
		t.Fatal(err)
	}
	if listen != "" {
		t.Errorf("listen_addresses = %q, want empty (no TCP)", listen)
	}
	conn.Close(context.Background())
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "postgres", "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("postmaster.pid after clean shutdown: %v", err)
	}

	s = start(t, dataDir)
	if n := count(t, connect(t, s)); n != 2 {
		t.Errorf("after restart: %d rows, want 2", n)
	}
}

func TestRestartAfterKill9(t *testing.T) {
	t.Parallel()
	dataDir := tempDataDir(t)
	s := start(t, dataDir)
	conn := connect(t, s)
	exec1(t, conn, "CREATE TABLE kv (k text PRIMARY KEY, v text)")
	exec1(t, conn, "INSERT INTO kv VALUES ('a', '1')")
	// Leave the connection open: its backend is orphaned by the kill and
	// must not prevent the restart.

	if err := syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("postmaster did not exit after SIGKILL")
	}
	if _, err := os.Stat(filepath.Join(dataDir, "postgres", "postmaster.pid")); err != nil {
		t.Fatalf("expected a stale postmaster.pid: %v", err)
	}

	s = start(t, dataDir)
	conn = connect(t, s)
	if n := count(t, conn); n != 1 {
		t.Errorf("after kill -9: %d rows, want 1", n)
	}
	exec1(t, conn, "INSERT INTO kv VALUES ('b', '2')")
}

// A PID from a previous boot is often reused by an unrelated process in a
// container; PostgreSQL alone would refuse to start then.
func TestStalePIDFileOfOtherProcess(t *testing.T) {
	t.Parallel()
	dataDir := tempDataDir(t)
	s := start(t, dataDir)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sleep.Process.Kill()
		sleep.Wait()
	}()
	pidFile := filepath.Join(dataDir, "postgres", "postmaster.pid")
	content := strconv.Itoa(sleep.Process.Pid) + "\n" + filepath.Join(dataDir, "postgres") + "\n"
	if err := os.WriteFile(pidFile, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, dataDir)
}

func TestSecondStartWhileRunning(t *testing.T) {
	t.Parallel()
	dataDir := tempDataDir(t)
	start(t, dataDir)
	s, err := Start(context.Background(), Options{DataDir: dataDir})
	if err == nil {
		s.Stop()
		t.Fatal("second Start on a running data directory succeeded")
	}
	if !strings.Contains(err.Error(), "already running") {
		t.Errorf("error = %v, want it to say the server is already running", err)
	}
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	_, err := Start(context.Background(), Options{DataDir: tempDataDir(t), SearchPath: []string{t.TempDir()}})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("error = %v, want ErrNotFound", err)
	}
	for _, want := range []string{"apt install postgresql", "postgresql-server", "brew install postgresql", "--database-url"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestSocketPathTooLong(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(tempDataDir(t), strings.Repeat("x", 100))
	_, err := Start(context.Background(), Options{DataDir: dataDir})
	if err == nil || !strings.Contains(err.Error(), "too long") {
		t.Fatalf("error = %v, want a path-too-long error", err)
	}
	if _, statErr := os.Stat(dataDir); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("data directory was created despite the error")
	}
}

func TestUntraversableParentAsRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("only root runs PostgreSQL as another user")
	}
	parent := filepath.Dir(tempDataDir(t))
	locked := filepath.Join(parent, "locked")
	if err := os.Mkdir(locked, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Options{DataDir: filepath.Join(locked, "data")})
	if err == nil || !strings.Contains(err.Error(), locked+" ") {
		t.Fatalf("error = %v, want it to name %s", err, locked)
	}
}

func TestVersionedDirsOrder(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, v := range []string{"9.6", "15", "16", "10"} {
		if err := os.MkdirAll(filepath.Join(root, v, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got := versionedDirs(filepath.Join(root, "*", "bin"), root+"/", "/bin")
	var versions []string
	for _, d := range got {
		versions = append(versions, filepath.Base(filepath.Dir(d)))
	}
	if want := "16 15 10 9.6"; strings.Join(versions, " ") != want {
		t.Errorf("order = %v, want %s", versions, want)
	}
}

func TestURLEscapesSocketDir(t *testing.T) {
	t.Parallel()
	s := &Server{sockDir: "/tmp/a b&c/run"}
	cfg, err := pgx.ParseConfig(s.URL("my db"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "/tmp/a b&c/run" || cfg.Database != "my db" || cfg.User != "pgkube" || cfg.Port != 5432 {
		t.Errorf("parsed %s as host=%q db=%q user=%q port=%d", s.URL("my db"), cfg.Host, cfg.Database, cfg.User, cfg.Port)
	}
}

// TestPostgresDiesWithPgkube starts a server from a child process, kills
// that child with SIGKILL, and expects PostgreSQL to shut down cleanly on
// its own (Pdeathsig), which it shows by removing postmaster.pid.
func TestPostgresDiesWithPgkube(t *testing.T) {
	if dir := os.Getenv("EMBEDPG_HELPER_DATADIR"); dir != "" {
		s, err := Start(context.Background(), Options{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		// Let the runtime retire idle threads, which must not matter.
		for i := 0; i < 10; i++ {
			go func() { runtime.LockOSThread() }()
		}
		os.Stdout.WriteString("pid " + strconv.Itoa(s.cmd.Process.Pid) + "\n")
		select {}
	}
	if runtime.GOOS != "linux" {
		t.Skip("Pdeathsig is Linux-only")
	}
	t.Parallel()
	dataDir := tempDataDir(t)
	child := exec.Command(os.Args[0], "-test.run=^TestPostgresDiesWithPgkube$")
	child.Env = append(os.Environ(), "EMBEDPG_HELPER_DATADIR="+dataDir)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		child.Process.Kill()
		t.Fatalf("helper did not report the postmaster's pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid ")))
	if err != nil {
		child.Process.Kill()
		t.Fatalf("helper said %q", line)
	}
	time.Sleep(200 * time.Millisecond) // give idle threads a chance to be retired
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}

	pidFile := filepath.Join(dataDir, "postgres", "postmaster.pid")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(pidFile); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("PostgreSQL (pid %d) still running 30s after pgkube died", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
