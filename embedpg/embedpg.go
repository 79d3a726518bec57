// Package embedpg runs a private PostgreSQL server for `pgkube up`, so that
// trying pgkube needs nothing but an installed PostgreSQL package.
//
// The server listens only on a unix socket inside pgkube's data directory,
// so it neither collides with a system PostgreSQL nor is reachable over
// the network.
package embedpg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Options configures Start.
type Options struct {
	// DataDir is pgkube's data directory. PostgreSQL's cluster lives in
	// DataDir/postgres and its unix socket in DataDir/run.
	DataDir string
	// Log receives PostgreSQL's stdout and stderr; nil discards them.
	// Writes must not block for long: a blocked Log stalls PostgreSQL.
	Log io.Writer
	// SearchPath, if non-nil, replaces the default list of directories
	// searched for initdb and postgres (PATH, the distributions' versioned
	// directories, pg_config --bindir).
	SearchPath []string
}

const (
	// superuser owns the cluster; it is also the name of the database
	// Start creates, so that URL("pgkube") works out of the box.
	superuser = "pgkube"
	database  = "pgkube"

	// port only names the socket file (.s.PGSQL.5432): nothing listens on
	// TCP, and the socket directory is private, so it cannot collide.
	port = 5432

	startTimeout = 2 * time.Minute
	stopTimeout  = time.Minute
)

// Server is a running PostgreSQL started by Start.
type Server struct {
	pgData  string
	sockDir string
	cmd     *exec.Cmd
	tail    *tailWriter

	done    chan struct{} // closed once the postmaster has exited
	waitErr error         // valid after done is closed

	stopOnce sync.Once
	stopErr  error
}

// Start starts PostgreSQL on opts.DataDir, initializing the cluster on first
// use, and returns once it accepts connections. ctx bounds only the
// startup; the server runs until Stop, or until this process dies.
//
// On Linux PostgreSQL receives SIGINT (fast shutdown) when this process
// exits, even by SIGKILL. Elsewhere a crashed pgkube leaves PostgreSQL
// running; the next Start then fails with an "already running" error until
// that server is stopped.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.DataDir == "" {
		return nil, errors.New("embedpg: DataDir is required")
	}
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("embedpg: resolving data directory: %w", err)
	}
	s := &Server{
		pgData:  filepath.Join(dataDir, "postgres"),
		sockDir: filepath.Join(dataDir, "run"),
		tail:    &tailWriter{next: opts.Log},
		done:    make(chan struct{}),
	}
	// Checked before anything touches the disk: PostgreSQL would only
	// complain after initdb, in its log, and less clearly.
	sockPath := filepath.Join(s.sockDir, fmt.Sprintf(".s.PGSQL.%d", port))
	if len(sockPath) > maxSocketPath {
		return nil, fmt.Errorf("embedpg: data directory %s is too long: PostgreSQL's socket path %s would be %d bytes, "+
			"but unix socket paths are limited to %d; choose a data directory with a shorter path",
			dataDir, sockPath, len(sockPath), maxSocketPath)
	}

	initialized, pgMajor, err := readPGVersion(s.pgData)
	if err != nil {
		return nil, err
	}
	searchPath := opts.SearchPath
	if searchPath == nil {
		searchPath = defaultSearchPath(ctx)
	}
	bins, err := findBinaries(ctx, searchPath, pgMajor)
	if err != nil {
		return nil, fmt.Errorf("embedpg: %w", err)
	}

	cred, err := s.prepareDirs(dataDir, initialized)
	if err != nil {
		return nil, fmt.Errorf("embedpg: %w", err)
	}
	if !initialized {
		if err := s.initdb(ctx, bins, cred); err != nil {
			return nil, fmt.Errorf("embedpg: %w", err)
		}
	}
	if err := s.removeStalePIDFile(); err != nil {
		return nil, fmt.Errorf("embedpg: %w", err)
	}
	if err := s.start(bins, cred); err != nil {
		return nil, fmt.Errorf("embedpg: %w", err)
	}
	if err := s.waitReady(ctx); err != nil {
		// Stopping also reaps the process; its error adds nothing here.
		_ = s.Stop()
		return nil, fmt.Errorf("embedpg: %w", err)
	}
	return s, nil
}

// URL returns a pgx connection URL for database over the unix socket.
// Port and sslmode are explicit so that PGPORT or PGSSLMODE in the
// environment cannot redirect the connection.
func (s *Server) URL(database string) string { return s.URLAs(superuser, database) }

// URLAs connects to database as role (local connections are trusted).
func (s *Server) URLAs(role, database string) string {
	return fmt.Sprintf("postgres://%s@/%s?host=%s&port=%d&sslmode=disable",
		uriEscape(role), uriEscape(database), uriEscape(s.sockDir), port)
}

// uriEscape percent-encodes s for any part of a connection URI. pgx decodes
// URIs like libpq, which does not read "+" as a space, so url.QueryEscape
// alone would corrupt paths containing spaces.
func uriEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// Done is closed when PostgreSQL has exited, whether through Stop or not,
// so that `pgkube up` can shut down instead of serving errors.
func (s *Server) Done() <-chan struct{} { return s.done }

// Stop shuts PostgreSQL down with a fast shutdown (rolling back open
// transactions, checkpointing) and waits for it to exit. If that hangs it
// escalates to an immediate shutdown, which is still crash-safe. Calling
// Stop again returns the first result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() { s.stopErr = s.stop() })
	return s.stopErr
}

func (s *Server) stop() error {
	select {
	case <-s.done:
		if err := s.exitErr(); err != nil {
			return fmt.Errorf("embedpg: PostgreSQL exited before Stop: %w%s", err, s.tail.report())
		}
		return fmt.Errorf("embedpg: PostgreSQL exited before Stop%s", s.tail.report())
	default:
	}
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGINT, stopTimeout}, {syscall.SIGQUIT, 10 * time.Second}, {syscall.SIGKILL, 10 * time.Second}} {
		// Only the postmaster: it stops its children itself, and
		// signalling them directly would count as a crash.
		if err := s.cmd.Process.Signal(step.sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("embedpg: signalling PostgreSQL (pid %d): %w", s.cmd.Process.Pid, err)
		}
		select {
		case <-s.done:
			if step.sig != syscall.SIGINT {
				return fmt.Errorf("embedpg: PostgreSQL ignored fast shutdown; stopped it with %v%s", step.sig, s.tail.report())
			}
			if err := s.exitErr(); err != nil {
				return fmt.Errorf("embedpg: PostgreSQL shut down with %w%s", err, s.tail.report())
			}
			return nil
		case <-time.After(step.wait):
		}
	}
	return fmt.Errorf("embedpg: PostgreSQL (pid %d) did not exit", s.cmd.Process.Pid)
}

// exitErr hides the wait error exec returns when the output copier is cut
// off after the postmaster exited (an orphaned child still held the pipe).
func (s *Server) exitErr() error {
	if errors.Is(s.waitErr, exec.ErrWaitDelay) {
		return nil
	}
	return s.waitErr
}

// readPGVersion reports whether pgData holds a cluster, and its major
// version. initdb writes PG_VERSION early, so its presence alone would not
// prove a finished initdb; that is why initdb runs in a scratch directory
// that is renamed into place only once complete.
func readPGVersion(pgData string) (bool, string, error) {
	b, err := os.ReadFile(filepath.Join(pgData, "PG_VERSION"))
	if errors.Is(err, os.ErrNotExist) {
		if _, statErr := os.Stat(pgData); statErr == nil {
			return false, "", fmt.Errorf("embedpg: %s exists but holds no PostgreSQL cluster (no PG_VERSION); move it away to start afresh", pgData)
		}
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("embedpg: reading cluster version: %w", err)
	}
	return true, strings.TrimSpace(string(b)), nil
}

// prepareDirs creates the data and socket directories. When pgkube runs as
// root it returns the credential to run PostgreSQL with, since PostgreSQL
// refuses to run as root; otherwise nil.
func (s *Server) prepareDirs(dataDir string, initialized bool) (*syscall.Credential, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		var err error
		if cred, err = serverCredential(s.pgData, initialized); err != nil {
			return nil, err
		}
		// DataDir stays pgkube's; 0711 lets PostgreSQL reach its own
		// subdirectories without being able to list or touch pgkube's files.
		if err := os.Chmod(dataDir, 0o711); err != nil {
			return nil, fmt.Errorf("making data directory traversable for PostgreSQL: %w", err)
		}
		if err := checkTraversable(dataDir, cred); err != nil {
			return nil, err
		}
	}
	if err := mkdirOwned(s.sockDir, cred); err != nil {
		return nil, fmt.Errorf("creating socket directory: %w", err)
	}
	return cred, nil
}

// serverCredential picks the OS user to run PostgreSQL as when pgkube is
// root. An existing cluster keeps its owner, because PostgreSQL insists on
// running as the owner of its data directory.
func serverCredential(pgData string, initialized bool) (*syscall.Credential, error) {
	if initialized {
		fi, err := os.Stat(pgData)
		if err != nil {
			return nil, fmt.Errorf("inspecting cluster directory: %w", err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid == 0 {
			return nil, fmt.Errorf("cluster directory %s is owned by root, but PostgreSQL cannot run as root; "+
				"chown -R it to an unprivileged user (e.g. postgres)", pgData)
		}
		if u, err := user.LookupId(strconv.FormatUint(uint64(st.Uid), 10)); err == nil {
			return credentialFor(u)
		}
		return &syscall.Credential{Uid: st.Uid, Gid: st.Gid}, nil
	}
	var errs []error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return credentialFor(u)
	}
	return nil, fmt.Errorf("PostgreSQL cannot run as root and no unprivileged user to run it as was found: %w", errors.Join(errs...))
}

func credentialFor(u *user.User) (*syscall.Credential, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: parsing uid %q: %w", u.Username, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %s: parsing gid %q: %w", u.Username, u.Gid, err)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	// Keeping supplementary groups matches what a login as that user could
	// access (Debian's postgres is in ssl-cert, for instance).
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.ParseUint(id, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(g))
			}
		}
	}
	return cred, nil
}

// checkTraversable verifies that cred may search every ancestor of dir.
// pgkube must not widen permissions outside its own directory, so the best
// it can do is to name the directory that blocks PostgreSQL.
func checkTraversable(dir string, cred *syscall.Credential) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("checking access to %s: %w", d, err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		var bit os.FileMode
		switch {
		case st.Uid == cred.Uid:
			bit = 0o100
		case inGroup(st.Gid, cred):
			bit = 0o010
		default:
			bit = 0o001
		}
		if fi.Mode().Perm()&bit == 0 {
			return fmt.Errorf("PostgreSQL must run as an unprivileged user (uid %d) because pgkube runs as root, "+
				"but that user cannot enter %s (mode %v); allow it (e.g. chmod o+x %s) or choose a data directory elsewhere",
				cred.Uid, d, fi.Mode().Perm(), d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func inGroup(gid uint32, cred *syscall.Credential) bool {
	if gid == cred.Gid {
		return true
	}
	for _, g := range cred.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// mkdirOwned creates dir with mode 0700, owned by cred's user if set.
// An existing dir is chowned too, in case it was left by a run as another user.
func mkdirOwned(dir string, cred *syscall.Credential) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	return nil
}

// initdb creates the cluster in a scratch directory and renames it into
// place, so that a crash during initdb never leaves a half-made cluster
// that later starts would mistake for a real one.
func (s *Server) initdb(ctx context.Context, bins binaries, cred *syscall.Credential) error {
	scratch := s.pgData + ".initdb"
	if err := os.RemoveAll(scratch); err != nil {
		return fmt.Errorf("removing leftovers of an interrupted initdb: %w", err)
	}
	if err := mkdirOwned(scratch, cred); err != nil {
		return fmt.Errorf("creating cluster directory: %w", err)
	}
	cmd := exec.Command(bins.initdb,
		"--pgdata="+scratch,
		"--username="+superuser,
		// Trust is safe only because the socket directory is private
		// (mode 0700); TCP is refused outright.
		"--auth-local=trust",
		"--auth-host=reject",
		"--encoding=UTF8",
		// The C locale works with any encoding on every system (C.UTF-8
		// does not exist everywhere) and sorts bytewise, like etcd.
		"--locale=C",
	)
	cmd.Env = serverEnv()
	cmd.Stdout = s.tail
	cmd.Stderr = s.tail
	// SIGTERM lets initdb delete what it created if pgkube dies meanwhile.
	cmd.SysProcAttr = sysProcAttr(cred, syscall.SIGTERM)
	waitErr := make(chan error, 1)
	if err := startLocked(cmd, func(err error) { waitErr <- err }); err != nil {
		return fmt.Errorf("starting initdb: %w", err)
	}
	select {
	case err := <-waitErr:
		if err != nil {
			return fmt.Errorf("initdb failed: %w%s", err, s.tail.report())
		}
	case <-ctx.Done():
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-waitErr
		return fmt.Errorf("initdb interrupted: %w", ctx.Err())
	}

	// Settings a user may reasonably tune go into postgresql.conf rather
	// than on the command line, where they could not be overridden.
	conf, err := os.OpenFile(filepath.Join(scratch, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("opening postgresql.conf: %w", err)
	}
	_, err = io.WriteString(conf, "\n# Added by pgkube for a small development machine.\n"+
		"shared_buffers = 128MB\n"+
		"max_connections = 200\n"+
		"log_line_prefix = '%m [%p] %q%u@%d '\n")
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing postgresql.conf: %w", err)
	}

	if err := os.Rename(scratch, s.pgData); err != nil {
		return fmt.Errorf("moving new cluster into place: %w", err)
	}
	// initdb synced the cluster's contents; the rename needs its own sync.
	if err := syncDir(filepath.Dir(s.pgData)); err != nil {
		return fmt.Errorf("syncing data directory: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// serverEnv is this process's environment without PG* variables: PGDATA,
// PGPORT and friends would otherwise change what initdb and postgres do.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

// removeStalePIDFile removes a postmaster.pid left by a killed server.
// PostgreSQL already ignores a lock file whose PID is dead, but in
// containers that PID is often reused by an unrelated process after a
// restart, and PostgreSQL would then refuse to start.
func (s *Server) removeStalePIDFile() error {
	pidFile := filepath.Join(s.pgData, "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", pidFile, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	// PostgreSQL stores a negative PID for a single-user backend.
	if pid < 0 {
		pid = -pid
	}
	if err == nil && pid > 0 && isPostgresOf(pid, s.pgData) {
		return fmt.Errorf("PostgreSQL is already running on %s (pid %d); is another pgkube using this data directory?", s.pgData, pid)
	}
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale %s: %w", pidFile, err)
	}
	return nil
}

// start launches the postmaster. Settings that pgkube relies on are passed
// on the command line, which overrides postgresql.conf and ALTER SYSTEM.
func (s *Server) start(bins binaries, cred *syscall.Credential) error {
	s.cmd = exec.Command(bins.postgres,
		"-D", s.pgData,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=",
		"-c", "unix_socket_directories="+quoteListElement(s.sockDir),
		// Durability: pgkube promises that acknowledged writes survive a crash.
		"-c", "fsync=on",
		"-c", "synchronous_commit=on",
		"-c", "full_page_writes=on",
		// Makes the processes recognizable in ps: "postgres: pgkube: checkpointer".
		"-c", "cluster_name=pgkube",
	)
	s.cmd.Env = serverEnv()
	s.cmd.Stdout = s.tail
	s.cmd.Stderr = s.tail
	// Orphaned backends of a SIGKILLed postmaster keep the output pipe
	// open; don't let them hold up Wait.
	s.cmd.WaitDelay = 5 * time.Second
	// SIGINT requests a fast shutdown. A process group of its own keeps a
	// terminal's Ctrl-C away from PostgreSQL, so pgkube can stop it in order.
	s.cmd.SysProcAttr = sysProcAttr(cred, syscall.SIGINT)
	err := startLocked(s.cmd, func(err error) {
		s.waitErr = err
		close(s.done)
	})
	if err != nil {
		return fmt.Errorf("starting %s: %w", bins.postgres, err)
	}
	return nil
}

// startLocked starts cmd from an OS thread that stays locked until cmd
// exits, then calls exited with its wait error. Linux delivers Pdeathsig
// when the *thread* that forked the child exits, and the Go runtime may
// retire an idle thread at any time; pinning the thread makes the signal
// mean "pgkube died".
func startLocked(cmd *exec.Cmd, exited func(error)) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited(cmd.Wait())
	}()
	return <-started
}

// quoteListElement quotes a path for a comma-separated list setting such
// as unix_socket_directories, where spaces or commas would split it.
func quoteListElement(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// waitReady polls until PostgreSQL accepts connections, then makes sure
// pgkube's database exists.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	begin := time.Now()
	lastErr := errors.New("server not ready yet")
	for {
		// Connecting too early makes PostgreSQL log a FATAL "starting up"
		// for each attempt, which would alarm users reading the log. The
		// status line in postmaster.pid (PostgreSQL 10+) says when to try;
		// the fallback covers servers that never write it.
		if s.postmasterStatus() == "ready" || time.Since(begin) > 5*time.Second {
			conn, err := pgx.Connect(ctx, s.URL("postgres"))
			if err == nil {
				err = ensureDatabase(ctx, conn, database)
				conn.Close(context.Background())
				return err
			}
			lastErr = err
		}
		select {
		case <-s.done:
			return fmt.Errorf("PostgreSQL exited during startup: %v%s", s.waitErr, s.tail.report())
		case <-ctx.Done():
			return fmt.Errorf("PostgreSQL did not accept connections: %w (last error: %v)%s", ctx.Err(), lastErr, s.tail.report())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// postmasterStatus returns the status line of postmaster.pid, the way
// pg_ctl -w waits for startup.
func (s *Server) postmasterStatus() string {
	b, err := os.ReadFile(filepath.Join(s.pgData, "postmaster.pid"))
	if err != nil {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 8 {
		return ""
	}
	return strings.TrimSpace(lines[7])
}

func ensureDatabase(ctx context.Context, conn *pgx.Conn, name string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("looking up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: someone beat us to it
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating database %s: %w", name, err)
	}
	return nil
}

// tailWriter forwards PostgreSQL's output to the user's writer and keeps
// the last few KiB, so that startup failures can show why.
type tailWriter struct {
	next io.Writer
	mu   sync.Mutex
	buf  []byte
}

const tailSize = 8 << 10

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > tailSize {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-tailSize:]...)
	}
	if w.next != nil {
		// Errors from the user's writer are dropped: reporting them would
		// make exec stop draining the pipe and stall PostgreSQL.
		_, _ = w.next.Write(p)
	}
	return len(p), nil
}

// report formats the tail for appending to an error message.
func (w *tailWriter) report() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := string(w.buf)
	if len(w.buf) == tailSize {
		// The buffer most likely starts mid-line; drop the fragment.
		if _, rest, ok := strings.Cut(out, "\n"); ok {
			out = rest
		}
	}
	out = strings.TrimSpace(out)
	if out == "" {
		return ""
	}
	return "\nPostgreSQL output (last lines):\n" + out
}
