package probe

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// hostPort splits a test server's URL into the pod IP and port a probe
// aims at.
func hostPort(t *testing.T, rawURL string) (string, int) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return u.Hostname(), port
}

// closedPort is a local port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func httpProbe(port intstr.IntOrString, path string) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: port, Path: path}}}
}

func TestHTTPSuccessAndRequest(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		fmt.Fprint(w, "ok body")
	}))
	defer srv.Close()
	ip, port := hostPort(t, srv.URL)

	p := httpProbe(intstr.FromString("http"), "/healthz?full=1")
	p.HTTPGet.HTTPHeaders = []corev1.HTTPHeader{{Name: "X-Custom", Value: "v"}, {Name: "Host", Value: "example.test"}}
	c := &corev1.Container{Name: "web", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}
	res, out := Do(context.Background(), p, Target{PodIP: ip, Container: c})
	if res != Success || out != "ok body" {
		t.Fatalf("got %v %q, want success %q", res, out, "ok body")
	}
	if got.URL.Path != "/healthz" || got.URL.RawQuery != "full=1" {
		t.Errorf("request URL %v, want /healthz?full=1", got.URL)
	}
	if ua := got.Header.Get("User-Agent"); ua != "kube-probe/1.37" {
		t.Errorf("User-Agent %q", ua)
	}
	if a := got.Header.Get("Accept"); a != "*/*" {
		t.Errorf("Accept %q", a)
	}
	if got.Host != "example.test" {
		t.Errorf("Host %q, want the override", got.Host)
	}
	if v := got.Header.Get("X-Custom"); v != "v" {
		t.Errorf("X-Custom %q", v)
	}
}

func TestHTTPUserAgentAndAcceptOverrides(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer srv.Close()
	ip, port := hostPort(t, srv.URL)
	p := httpProbe(intstr.FromInt32(int32(port)), "/")
	p.HTTPGet.HTTPHeaders = []corev1.HTTPHeader{{Name: "User-Agent", Value: "mine"}, {Name: "Accept", Value: ""}}
	if res, out := Do(context.Background(), p, Target{PodIP: ip}); res != Success {
		t.Fatalf("got %v %q", res, out)
	}
	if got.Get("User-Agent") != "mine" {
		t.Errorf("User-Agent %q, want the probe's", got.Get("User-Agent"))
	}
	if _, ok := got["Accept"]; ok {
		t.Errorf("Accept %q sent, want none", got.Get("Accept"))
	}
}

func TestHTTPFailureStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "secret details", http.StatusInternalServerError)
	}))
	defer srv.Close()
	ip, port := hostPort(t, srv.URL)
	res, out := Do(context.Background(), httpProbe(intstr.FromInt32(int32(port)), "/"), Target{PodIP: ip})
	if res != Failure || out != "HTTP probe failed with statuscode: 500" {
		t.Fatalf("got %v %q", res, out)
	}
}

func TestHTTPRefused(t *testing.T) {
	port := closedPort(t)
	res, out := Do(context.Background(), httpProbe(intstr.FromInt32(int32(port)), "/healthz"), Target{PodIP: "127.0.0.1"})
	want := fmt.Sprintf(`Get "http://127.0.0.1:%d/healthz": dial tcp 127.0.0.1:%d: connect: connection refused`, port, port)
	if res != Failure || out != want {
		t.Fatalf("got %v %q, want failure %q", res, out, want)
	}
}

func TestHTTPTimeoutSeconds(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	ip, port := hostPort(t, srv.URL)
	p := httpProbe(intstr.FromInt32(int32(port)), "/slow")
	start := time.Now()
	res, out := Do(context.Background(), p, Target{PodIP: ip})
	took := time.Since(start)
	if res != Failure || !strings.Contains(out, "Client.Timeout exceeded while awaiting headers") {
		t.Fatalf("got %v %q, want a client timeout", res, out)
	}
	// timeoutSeconds unset means 1 s.
	if took < 900*time.Millisecond || took > 3*time.Second {
		t.Errorf("probe took %v, want about 1s", took)
	}
}

func TestHTTPSSelfSigned(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	// The plain-HTTP attempt below makes the server log a handshake error.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	ip, port := hostPort(t, srv.URL)
	p := httpProbe(intstr.FromInt32(int32(port)), "/")
	if res, out := Do(context.Background(), p, Target{PodIP: ip}); res != Failure {
		t.Fatalf("plain HTTP to a TLS server: got %v %q, want failure", res, out)
	}
	p.HTTPGet.Scheme = corev1.URISchemeHTTPS
	if res, out := Do(context.Background(), p, Target{PodIP: ip}); res != Success {
		t.Fatalf("HTTPS: got %v %q, want success", res, out)
	}
}

func TestHTTPRedirects(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	var srvPort int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
		switch r.URL.Path {
		case "/local":
			http.Redirect(w, r, "/target", http.StatusFound)
		case "/target":
			fmt.Fprint(w, "landed")
		case "/away":
			http.Redirect(w, r, fmt.Sprintf("http://localhost:%d/target", srvPort), http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		}
	}))
	defer srv.Close()
	ip, port := hostPort(t, srv.URL)
	srvPort = port
	tgt := Target{PodIP: ip}

	if res, out := Do(context.Background(), httpProbe(intstr.FromInt32(int32(port)), "/local"), tgt); res != Success || out != "landed" {
		t.Errorf("same-host redirect: got %v %q, want it followed", res, out)
	}
	res, out := Do(context.Background(), httpProbe(intstr.FromInt32(int32(port)), "/away"), tgt)
	if res != Warning || !strings.HasPrefix(out, "Probe terminated redirects, Response body: ") {
		t.Errorf("other-host redirect: got %v %q, want a warning", res, out)
	}
	mu.Lock()
	if hits["/target"] != 1 {
		t.Errorf("target hit %d times, want once (the other host not followed)", hits["/target"])
	}
	mu.Unlock()
	res, out = Do(context.Background(), httpProbe(intstr.FromInt32(int32(port)), "/loop"), tgt)
	if res != Failure || !strings.HasSuffix(out, "stopped after 10 redirects") {
		t.Errorf("redirect loop: got %v %q", res, out)
	}
}

func TestHTTPBodyLimited(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strings.Repeat("x", 3*maxOutput))
	}))
	defer srv.Close()
	ip, port := hostPort(t, srv.URL)
	res, out := Do(context.Background(), httpProbe(intstr.FromInt32(int32(port)), "/"), Target{PodIP: ip})
	if res != Success || len(out) != maxOutput {
		t.Fatalf("got %v with %d bytes, want success with %d", res, len(out), maxOutput)
	}
}

func TestPorts(t *testing.T) {
	c := &corev1.Container{Name: "web", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}
	for _, tc := range []struct {
		port    intstr.IntOrString
		want    int
		wantErr string
	}{
		{intstr.FromInt32(81), 81, ""},
		{intstr.FromString("http"), 8080, ""},
		{intstr.FromString("9090"), 9090, ""},
		{intstr.FromString("metrics"), 0, `port "metrics" not found in container "web"`},
		{intstr.FromInt32(0), 0, "invalid port number: 0"},
		{intstr.FromInt32(70000), 0, "invalid port number: 70000"},
	} {
		got, err := resolvePort(tc.port, c)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("%v: got %d, %v; want error %q", tc.port.String(), got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v: got %d, %v; want %d", tc.port.String(), got, err, tc.want)
		}
	}
	// A port that cannot be resolved keeps the probe from running.
	res, out := Do(context.Background(), httpProbe(intstr.FromString("metrics"), "/"), Target{PodIP: "127.0.0.1", Container: c})
	if res != Unknown || out != `port "metrics" not found in container "web"` {
		t.Errorf("got %v %q, want unknown", res, out)
	}
}

func TestTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	c := &corev1.Container{Name: "db", Ports: []corev1.ContainerPort{{Name: "pg", ContainerPort: int32(port)}}}
	p := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("pg")}}}
	if res, out := Do(context.Background(), p, Target{PodIP: "127.0.0.1", Container: c}); res != Success {
		t.Fatalf("open port: got %v %q", res, out)
	}

	closed := closedPort(t)
	p.TCPSocket.Port = intstr.FromInt32(int32(closed))
	res, out := Do(context.Background(), p, Target{PodIP: "127.0.0.1"})
	want := fmt.Sprintf("dial tcp 127.0.0.1:%d: connect: connection refused", closed)
	if res != Failure || out != want {
		t.Fatalf("closed port: got %v %q, want %q", res, out, want)
	}

	// The host field overrides the pod IP.
	p.TCPSocket.Port, p.TCPSocket.Host = intstr.FromInt32(int32(port)), "127.0.0.1"
	if res, out := Do(context.Background(), p, Target{PodIP: "127.0.0.2"}); res != Success {
		t.Fatalf("host override: got %v %q", res, out)
	}
}

// slowHealth answers Check only when its context ends.
type slowHealth struct {
	healthpb.UnimplementedHealthServer
}

func (slowHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	<-ctx.Done()
	return nil, status.Error(codes.DeadlineExceeded, "late")
}

// grpcServer serves register's services on a local port.
func grpcServer(t *testing.T, register func(*grpc.Server)) (int, *[]string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var agents []string
	s := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		mu.Lock()
		agents = append(agents, md.Get("user-agent")...)
		mu.Unlock()
		return h(ctx, req)
	}))
	register(s)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return l.Addr().(*net.TCPAddr).Port, &agents
}

func grpcProbe(port int, service string) *corev1.Probe {
	g := &corev1.GRPCAction{Port: int32(port)}
	if service != "" {
		g.Service = &service
	}
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: g}}
}

func TestGRPC(t *testing.T) {
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
	port, agents := grpcServer(t, func(s *grpc.Server) { healthpb.RegisterHealthServer(s, hs) })
	tgt := Target{PodIP: "127.0.0.1"}

	if res, out := Do(context.Background(), grpcProbe(port, ""), tgt); res != Success || out != "service healthy" {
		t.Errorf("serving: got %v %q", res, out)
	}
	if len(*agents) == 0 || !strings.HasPrefix((*agents)[0], "kube-probe/1.37") {
		t.Errorf("user agents %q, want kube-probe/1.37", *agents)
	}
	if res, out := Do(context.Background(), grpcProbe(port, "db"), tgt); res != Failure || out != `service unhealthy (responded with "NOT_SERVING")` {
		t.Errorf("not serving: got %v %q", res, out)
	}
	res, out := Do(context.Background(), grpcProbe(port, "nope"), tgt)
	if res != Failure || out != "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service" {
		t.Errorf("unknown service: got %v %q", res, out)
	}
}

func TestGRPCNoHealthService(t *testing.T) {
	port, _ := grpcServer(t, func(*grpc.Server) {})
	res, out := Do(context.Background(), grpcProbe(port, ""), Target{PodIP: "127.0.0.1"})
	if res != Failure || !strings.HasPrefix(out, "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): ") {
		t.Errorf("got %v %q", res, out)
	}
}

func TestGRPCTimeouts(t *testing.T) {
	closed := closedPort(t)
	res, out, err := do(context.Background(), grpcProbe(closed, ""), Target{PodIP: "127.0.0.1"}, 200*time.Millisecond)
	want := fmt.Sprintf(`timeout: failed to connect service "127.0.0.1:%d" within 200ms: context deadline exceeded`, closed)
	if err != nil || res != Failure || out != want {
		t.Errorf("refused: got %v %q %v, want %q", res, out, err, want)
	}

	port, _ := grpcServer(t, func(s *grpc.Server) { healthpb.RegisterHealthServer(s, slowHealth{}) })
	res, out, err = do(context.Background(), grpcProbe(port, ""), Target{PodIP: "127.0.0.1"}, 200*time.Millisecond)
	if err != nil || res != Failure || out != "timeout: health rpc did not complete within 200ms" {
		t.Errorf("slow: got %v %q %v", res, out, err)
	}
}

// fakeExec answers ExecSync from a function, recording its calls.
type fakeExec struct {
	fn      func(ctx context.Context) ([]byte, []byte, int, error)
	mu      sync.Mutex
	calls   int
	id      string
	cmd     []string
	timeout time.Duration
}

func (f *fakeExec) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, []byte, int, error) {
	f.mu.Lock()
	f.calls++
	f.id, f.cmd, f.timeout = id, cmd, timeout
	f.mu.Unlock()
	return f.fn(ctx)
}

func (f *fakeExec) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func execProbe(cmd ...string) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}}}
}

func TestExec(t *testing.T) {
	f := &fakeExec{fn: func(context.Context) ([]byte, []byte, int, error) { return []byte("out "), []byte("err"), 0, nil }}
	tgt := Target{ContainerID: "c1", Exec: f}
	p := execProbe("cat", "/tmp/healthy")
	if res, out := Do(context.Background(), p, tgt); res != Success || out != "out err" {
		t.Errorf("exit 0: got %v %q", res, out)
	}
	if f.id != "c1" || strings.Join(f.cmd, " ") != "cat /tmp/healthy" || f.timeout != time.Second {
		t.Errorf("ExecSync(%q, %q, %v), want c1, the command, 1s", f.id, f.cmd, f.timeout)
	}
	p.TimeoutSeconds = 3
	f.fn = func(context.Context) ([]byte, []byte, int, error) {
		return nil, []byte("cat: /tmp/healthy: No such file or directory\n"), 1, nil
	}
	if res, out := Do(context.Background(), p, tgt); res != Failure || out != "cat: /tmp/healthy: No such file or directory\n" {
		t.Errorf("exit 1: got %v %q", res, out)
	}
	if f.timeout != 3*time.Second {
		t.Errorf("timeout %v, want timeoutSeconds", f.timeout)
	}
}

func TestExecTimeoutAndErrors(t *testing.T) {
	p := execProbe("sh", "-c", "sleep 5")
	for name, err := range map[string]error{
		"context": fmt.Errorf("exec: %w", context.DeadlineExceeded),
		"grpc":    status.Error(codes.DeadlineExceeded, "timed out"),
	} {
		f := &fakeExec{fn: func(context.Context) ([]byte, []byte, int, error) { return nil, nil, -1, err }}
		res, out := Do(context.Background(), p, Target{ContainerID: "c1", Exec: f})
		if res != Failure || out != `command "sh -c sleep 5" timed out` {
			t.Errorf("%s: got %v %q", name, res, out)
		}
	}
	// A runtime that ignores the timeout is cut off a little after it.
	f := &fakeExec{fn: func(ctx context.Context) ([]byte, []byte, int, error) {
		<-ctx.Done()
		return nil, nil, -1, ctx.Err()
	}}
	start := time.Now()
	res, out, err := do(context.Background(), p, Target{ContainerID: "c1", Exec: f}, 100*time.Millisecond)
	if err != nil || res != Failure || out != `command "sh -c sleep 5" timed out` || time.Since(start) > 3*time.Second {
		t.Errorf("hung runtime: got %v %q %v after %v", res, out, err, time.Since(start))
	}

	f = &fakeExec{fn: func(context.Context) ([]byte, []byte, int, error) { return nil, nil, -1, fmt.Errorf("runtime down") }}
	if res, out := Do(context.Background(), p, Target{ContainerID: "c1", Exec: f}); res != Unknown || !strings.Contains(out, "runtime down") {
		t.Errorf("runtime error: got %v %q, want unknown", res, out)
	}
	if res, _ := Do(context.Background(), p, Target{ContainerID: "c1"}); res != Unknown {
		t.Errorf("no execer: got %v, want unknown", res)
	}
}

func TestNoHandler(t *testing.T) {
	if res, out := Do(context.Background(), &corev1.Probe{}, Target{Container: &corev1.Container{Name: "x"}}); res != Unknown || out != `missing probe handler for container "x"` {
		t.Errorf("got %v %q", res, out)
	}
}
