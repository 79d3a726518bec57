package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	readyTimeout = 2 * time.Minute
	stopTimeout  = 15 * time.Second
	// clockTicks is USER_HZ, the unit of /proc CPU times; Go cannot ask
	// sysconf(_SC_CLK_TCK) without cgo, and Linux fixes it at 100 on
	// every architecture Go supports.
	clockTicks = 100
)

// apiServer is the pgkube API server running as a child process.
type apiServer struct {
	cmd     *exec.Cmd
	url     string
	admin   credentials // CN admin in system:masters, whom RBAC never limits
	logPath string
	done    chan struct{} // closed once the process has exited
	waitErr error         // valid after done is closed

	stopOnce sync.Once
	stopErr  error
}

// startAPIServer runs `pgkube apiserver` on a free loopback port with the
// certificates in certDir and returns once /readyz answers ok.
func startAPIServer(ctx context.Context, bin, databaseURL, certDir string, admin credentials, logPath string) (*apiServer, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating API server log: %w", err)
	}
	cmd := exec.Command(bin, "apiserver", "--database-url", databaseURL, "--listen", addr, "--cert-dir", certDir)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Its own process group keeps a terminal's Ctrl-C away from it, so that
	// bench alone decides the shutdown order (API server before
	// PostgreSQL). Pdeathsig kills it should bench itself be killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting API server %s: %w", bin, err)
	}
	s := &apiServer{cmd: cmd, url: "https://" + addr, admin: admin, logPath: logPath, done: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		logFile.Close()
		close(s.done)
	}()
	if err := s.waitReady(ctx); err != nil {
		return nil, errors.Join(err, s.stop())
	}
	return s, nil
}

func (s *apiServer) pid() int { return s.cmd.Process.Pid }

func (s *apiServer) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	// /readyz is open to anonymous users, but the admin's certificate
	// also proves that the server trusts the CA bench made for it.
	tr, err := s.admin.transport(1)
	if err != nil {
		return fmt.Errorf("readiness probe: %w", err)
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: 2 * time.Second, Transport: tr}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("building readiness request: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "ok" {
				return nil
			}
			err = fmt.Errorf("%s: %q", resp.Status, body)
		}
		last = err
		select {
		case <-s.done:
			return fmt.Errorf("API server exited while starting (%v); its log ends:\n%s", s.waitErr, tailOf(s.logPath, 4096))
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("API server not ready after %v (last /readyz: %v); its log ends:\n%s",
					readyTimeout, last, tailOf(s.logPath, 4096))
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// stop asks the server to shut down (SIGTERM), escalating to SIGKILL. An
// exit before stop was called is a crash and reported with the log's end.
func (s *apiServer) stop() error {
	s.stopOnce.Do(func() {
		select {
		case <-s.done:
			s.stopErr = fmt.Errorf("API server exited unexpectedly (%v); its log ends:\n%s", s.waitErr, tailOf(s.logPath, 4096))
			return
		default:
		}
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			s.stopErr = fmt.Errorf("signalling API server (pid %d): %w", s.pid(), err)
		}
		select {
		case <-s.done:
			if s.waitErr != nil {
				s.stopErr = fmt.Errorf("API server shut down with %v; its log ends:\n%s", s.waitErr, tailOf(s.logPath, 4096))
			}
		case <-time.After(stopTimeout):
			_ = s.cmd.Process.Kill() // the error could only say it has exited meanwhile
			<-s.done
			s.stopErr = fmt.Errorf("API server ignored SIGTERM for %v; killed it", stopTimeout)
		}
	})
	return s.stopErr
}

// freeLoopbackAddr picks a port by letting the kernel choose one; the
// short window before the server binds it again is acceptable for a
// benchmark on a private loopback address.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("releasing port %s: %w", addr, err)
	}
	return addr, nil
}

// memSample is resident memory in bytes. Summing RSS over PostgreSQL's
// processes counts shared buffers once per process that touched them; PSS
// divides shared pages among their users, so its sum is the real footprint.
type memSample struct {
	apiRSS  int64
	pgRSS   int64
	pgPSS   int64
	pgProcs int
}

// sampler polls memory use while the benchmark runs, keeping the peaks.
type sampler struct {
	apiPID  int
	pidFile string // PostgreSQL's postmaster.pid

	mu   sync.Mutex
	peak memSample

	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

const (
	sampleInterval = 100 * time.Millisecond
	// Reading smaps_rollup walks every page table of a process, which for
	// PostgreSQL's processes with their shared buffers mapped cost the
	// 2-CPU test machine ~6% of its CPU at 10 Hz; PSS changes slowly, so
	// it is sampled less often.
	pssEvery = 10 // samples
)

func startSampler(apiPID int, postmasterPIDFile string) *sampler {
	s := &sampler{apiPID: apiPID, pidFile: postmasterPIDFile, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(sampleInterval)
		defer t.Stop()
		for n := 0; ; n++ {
			s.sample(n%pssEvery == 0)
			select {
			case <-s.quit:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// now takes a full sample, folds it into the peaks and returns it.
func (s *sampler) now() memSample { return s.sample(true) }

func (s *sampler) sample(withPSS bool) memSample {
	var m memSample
	m.apiRSS = statusKB(s.apiPID, "VmRSS") * 1024
	pids := s.postgresPIDs()
	m.pgProcs = len(pids)
	for _, pid := range pids {
		m.pgRSS += statusKB(pid, "VmRSS") * 1024
		if withPSS {
			m.pgPSS += fieldKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss") * 1024
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peak.apiRSS = max(s.peak.apiRSS, m.apiRSS)
	if m.pgRSS > s.peak.pgRSS {
		s.peak.pgRSS, s.peak.pgProcs = m.pgRSS, m.pgProcs
	}
	s.peak.pgPSS = max(s.peak.pgPSS, m.pgPSS)
	return m
}

// stop ends sampling and returns the peaks. The API server's peak is the
// kernel's high-water mark where available, which no polling can miss; it
// must therefore be called while the server still runs.
func (s *sampler) stop() memSample {
	s.stopOnce.Do(func() {
		close(s.quit)
		<-s.done
		s.now()
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	if hwm := statusKB(s.apiPID, "VmHWM") * 1024; hwm > s.peak.apiRSS {
		s.peak.apiRSS = hwm
	}
	return s.peak
}

// postgresPIDs returns the postmaster and its children, which are all of
// a PostgreSQL server's processes (backends, checkpointer, WAL writer…).
func (s *sampler) postgresPIDs() []int {
	b, err := os.ReadFile(s.pidFile)
	if err != nil {
		return nil
	}
	first, _, _ := strings.Cut(string(b), "\n")
	postmaster, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return nil
	}
	pids := []int{postmaster}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return pids
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if f := statFields(pid); len(f) > 1 && f[1] == strconv.Itoa(postmaster) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// statFields returns the fields of /proc/PID/stat after the command name,
// which is parenthesized and may contain spaces: f[0] is the state (field
// 3 in proc(5)), so field N is f[N-3].
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func statusKB(pid int, field string) int64 {
	return fieldKB(fmt.Sprintf("/proc/%d/status", pid), field)
}

// fieldKB reads a "Name:   123 kB" line of a /proc file; 0 if absent
// (the process has exited, or the kernel lacks the file).
func fieldKB(path, field string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		num, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
		n, _ := strconv.ParseInt(num, 10, 64)
		return n
	}
	return 0
}

// cpuTimes is CPU time in seconds, split by consumer, to tell on a shared
// machine how much of it the benchmark actually had.
type cpuTimes struct {
	at       time.Time // when read; after sub, wall holds the interval
	wall     time.Duration
	api      float64
	postgres float64
	client   float64 // bench itself: client-go encoding/decoding, sampling
	busy     float64 // all CPUs, everything
	idle     float64
}

func readCPU(apiPID int, mem *sampler) cpuTimes {
	t := cpuTimes{at: time.Now()}
	t.api = procCPU(apiPID, false)
	for i, pid := range mem.postgresPIDs() {
		// Backends that have exited were reaped by the postmaster, whose
		// children's times hold theirs.
		t.postgres += procCPU(pid, i == 0)
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		t.client = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal …
		for i := 1; i < len(f) && i <= 8; i++ {
			v, _ := strconv.ParseFloat(f[i], 64)
			if i == 4 || i == 5 {
				t.idle += v / clockTicks
			} else {
				t.busy += v / clockTicks
			}
		}
	}
	return t
}

// procCPU is a process's user+system time, with its reaped children's if
// children is set.
func procCPU(pid int, children bool) float64 {
	f := statFields(pid)
	if len(f) < 15 {
		return 0
	}
	idx := []int{14, 15} // utime, stime
	if children {
		idx = append(idx, 16, 17) // cutime, cstime
	}
	var ticks float64
	for _, n := range idx {
		v, _ := strconv.ParseFloat(f[n-3], 64)
		ticks += v
	}
	return ticks / clockTicks
}

func (a cpuTimes) sub(b cpuTimes) cpuTimes {
	return cpuTimes{
		wall:     a.at.Sub(b.at),
		api:      a.api - b.api,
		postgres: a.postgres - b.postgres,
		client:   a.client - b.client,
		busy:     a.busy - b.busy,
		idle:     a.idle - b.idle,
	}
}

// perfRecorder runs a system-wide `perf record` while the load runs.
// System-wide, because the API server's cost is partly in PostgreSQL, and
// because on a shared machine it shows who else took the CPUs.
type perfRecorder struct {
	cmd      *exec.Cmd
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
	stopErr  error
}

func startPerf(out string) (*perfRecorder, error) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return nil, fmt.Errorf("-perf: %w", err)
	}
	// 499 Hz keeps the overhead small and avoids lockstep with timers;
	// -g follows frame pointers, which Go keeps.
	cmd := exec.Command(perf, "record", "-F", "499", "-a", "-g", "-o", out)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGINT}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting perf: %w", err)
	}
	p := &perfRecorder{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop ends the recording with SIGINT, on which perf writes its file.
func (p *perfRecorder) stop() error {
	p.stopOnce.Do(func() {
		if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("signalling perf: %w", err)
		}
		select {
		case <-p.done:
			// perf exits with the status of the interrupted recording.
			var exit *exec.ExitError
			if p.waitErr != nil && !(errors.As(p.waitErr, &exit) && exit.ExitCode() <= 0) {
				p.stopErr = fmt.Errorf("perf record: %w", p.waitErr)
			}
		case <-time.After(time.Minute):
			_ = p.cmd.Process.Kill() // the error could only say it has exited meanwhile
			<-p.done
			p.stopErr = errors.New("perf record did not finish writing within a minute; killed it")
		}
	})
	return p.stopErr
}
