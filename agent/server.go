package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pgkube/pgkube/internal/nodeconn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// DefaultPort is the kubelet's port, where the API server reaches the
// agent (status.daemonEndpoints.kubeletEndpoint.port).
const DefaultPort = 10250

// ServerOptions configure the agent's HTTPS server.
type ServerOptions struct {
	// Addr is where to listen, host:port; port 0 takes a free one (the
	// Node reports the one taken).
	Addr string
	// TLS is the server's TLS (see ServingTLS); it must require the API
	// server's client certificate.
	TLS *tls.Config
	// Streams of the runtime; nil (the simulated runtime) answers every
	// log and stream request with why there is none.
	Streams Streams
	// RuntimeName names the runtime in those answers.
	RuntimeName string
	// Pod finds a pod bound to the agent's nodes.
	Pod func(cluster, namespace, name string) (*corev1.Pod, error)
	// Stats measures the nodes and a cluster's pods (see
	// nodeconn.StatsPath); nil when the runtime measures nothing.
	Stats func(ctx context.Context, cluster string) (*nodeconn.Stats, error)
	Log   *slog.Logger
}

// Server is the agent's HTTPS endpoint for the API server, as a kubelet's:
// /containerLogs, /exec, /attach, /portForward and /healthz. Every pod
// request names the pod's logical cluster (and UID) in nodeconn's headers,
// since one agent runs the pods of every cluster.
type Server struct {
	opts ServerOptions
	ln   net.Listener
	http *http.Server
}

// NewServer listens; Serve answers.
func NewServer(o ServerOptions) (*Server, error) {
	if o.TLS == nil {
		return nil, errors.New("agent server: no TLS configuration")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("agent server: %w", err)
	}
	s := &Server{opts: o, ln: ln}
	s.http = &http.Server{Handler: s.Handler(), TLSConfig: o.TLS, ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(o.Log.Handler(), slog.LevelDebug)}
	return s, nil
}

// Port is the port listened on.
func (s *Server) Port() int32 { return int32(s.ln.Addr().(*net.TCPAddr).Port) }

// Serve answers until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	s.http.BaseContext = func(net.Listener) context.Context { return ctx }
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.http.Shutdown(shut) //nolint:errcheck // closing anyway
	}()
	err := s.http.ServeTLS(s.ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		<-done
		return nil
	}
	return err
}

// Handler serves the endpoints (without TLS, for tests of the handlers).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok")) //nolint:errcheck
	})
	mux.HandleFunc("GET /containerLogs/{ns}/{pod}/{container}", s.containerLogs)
	mux.HandleFunc("/exec/{ns}/{pod}/{container}", s.exec)
	mux.HandleFunc("/attach/{ns}/{pod}/{container}", s.attach)
	mux.HandleFunc("/portForward/{ns}/{pod}", s.portForward)
	mux.HandleFunc("GET "+nodeconn.StatsPath, s.serveStats)
	return mux
}

// httpError is an answer other than 200.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// writeError answers with a Status: the API server passes refusals of
// upgrade requests (exec, attach, port-forward) to the client unchanged,
// and kubectl shows a Status' message but not a plain-text body there.
func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	var st apierrors.APIStatus
	switch {
	case errors.As(err, &he):
		code = he.code
	case errors.As(err, &st):
		if c := int(st.Status().Code); c >= 400 {
			code = c
		}
	}
	status := metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
		Code: int32(code), Message: err.Error()}
	if st != nil {
		status.Reason, status.Details = st.Status().Reason, st.Status().Details
	}
	if status.Reason == "" || status.Reason == metav1.StatusReasonUnknown {
		status.Reason = reasonOf(code)
	}
	body, _ := json.Marshal(status)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(body) //nolint:errcheck
}

// reasonOf is the Status reason kube-apiserver gives a code.
func reasonOf(code int) metav1.StatusReason {
	return apierrors.NewGenericServerResponse(code, "", schema.GroupResource{}, "", "", 0, false).ErrStatus.Reason
}

// pod finds the pod a request names: in the cluster the API server says,
// with the UID it saw, on this agent.
func (s *Server) pod(r *http.Request) (*corev1.Pod, error) {
	cluster := r.Header.Get(nodeconn.ClusterHeader)
	if cluster == "" {
		return nil, fail(http.StatusBadRequest, "missing %s header: the pod's logical cluster", nodeconn.ClusterHeader)
	}
	ns, name := r.PathValue("ns"), r.PathValue("pod")
	p, err := s.opts.Pod(cluster, ns, name)
	if apierrors.IsNotFound(err) {
		return nil, fail(http.StatusNotFound, "pod %q does not exist", name)
	}
	if err != nil {
		return nil, err
	}
	if uid := r.Header.Get(nodeconn.PodUIDHeader); uid != "" && types.UID(uid) != p.UID {
		// A pod of that name, but not the one the API server looked at.
		return nil, fail(http.StatusNotFound, "pod %q does not exist", name)
	}
	return p, nil
}

func containerSpec(p *corev1.Pod, name string) bool {
	for _, c := range p.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range p.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range p.Spec.EphemeralContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}

func (s *Server) noStreams(what string) error {
	name := s.opts.RuntimeName
	if name == "" {
		name = "simulated"
	}
	return fail(http.StatusBadRequest, "the %s runtime %s", name, what)
}

// queryBool reads a boolean as kube-apiserver converts query parameters:
// absent, "false" and "0" are false, anything else true.
func queryBool(q url.Values, key string) bool {
	v, ok := q[key]
	if !ok || len(v) == 0 {
		return false
	}
	return v[0] != "0" && !strings.EqualFold(v[0], "false")
}

func queryInt(q url.Values, key string) (*int64, error) {
	v := q.Get(key)
	if v == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return nil, fail(http.StatusBadRequest, "invalid %s %q: %v", key, v, err)
	}
	return &n, nil
}

// logOptions reads the query the API server forwards (corev1.PodLogOptions
// in URL form).
func logOptions(q url.Values, now time.Time) (LogOptions, bool, error) {
	o := LogOptions{TailLines: -1, Follow: queryBool(q, "follow"), Timestamps: queryBool(q, "timestamps"), Stream: q.Get("stream")}
	previous := queryBool(q, "previous")
	switch o.Stream {
	case "", "All", "Stdout", "Stderr":
	default:
		return o, false, fail(http.StatusBadRequest, "invalid stream %q: want All, Stdout or Stderr", o.Stream)
	}
	tail, err := queryInt(q, "tailLines")
	if err != nil {
		return o, false, err
	}
	if tail != nil {
		o.TailLines = max(*tail, 0)
	}
	limit, err := queryInt(q, "limitBytes")
	if err != nil {
		return o, false, err
	}
	if limit != nil && *limit > 0 {
		o.LimitBytes = *limit
	}
	since, err := queryInt(q, "sinceSeconds")
	if err != nil {
		return o, false, err
	}
	if since != nil && *since > 0 {
		o.Since = now.Add(-time.Duration(*since) * time.Second)
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return o, false, fail(http.StatusBadRequest, "invalid sinceTime %q: %v", v, err)
		}
		o.Since = t
	}
	return o, previous, nil
}

// logStatus is the kubelet's check of a container's state before its log
// is read: the container instance whose log is wanted, or why there is
// none, in the kubelet's words.
func logStatus(p *corev1.Pod, container string, previous bool) (containerID string, err error) {
	var st *corev1.ContainerStatus
	for _, list := range [][]corev1.ContainerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses, p.Status.EphemeralContainerStatuses} {
		for i := range list {
			if list[i].Name == container {
				st = &list[i]
			}
		}
		if st != nil {
			break
		}
	}
	if st == nil {
		return "", fail(http.StatusBadRequest, "container %q in pod %q is not available", container, p.Name)
	}
	last := st.LastTerminationState.Terminated
	switch state := st.State; {
	case previous:
		if last == nil || last.ContainerID == "" {
			return "", fail(http.StatusBadRequest, "previous terminated container %q in pod %q not found", container, p.Name)
		}
		return last.ContainerID, nil
	case state.Running != nil:
		return st.ContainerID, nil
	case state.Terminated != nil:
		if state.Terminated.ContainerID != "" {
			return state.Terminated.ContainerID, nil
		}
		if last != nil && last.ContainerID != "" {
			return last.ContainerID, nil
		}
		return "", fail(http.StatusBadRequest, "container %q in pod %q is terminated", container, p.Name)
	case last != nil:
		if last.ContainerID == "" {
			return "", fail(http.StatusBadRequest, "container %q in pod %q is terminated", container, p.Name)
		}
		return last.ContainerID, nil
	case state.Waiting != nil:
		switch reason := state.Waiting.Reason; reason {
		case "ErrImagePull":
			return "", fail(http.StatusBadRequest, "container %q in pod %q is waiting to start: image can't be pulled", container, p.Name)
		case "ImagePullBackOff":
			return "", fail(http.StatusBadRequest, "container %q in pod %q is waiting to start: trying and failing to pull image", container, p.Name)
		default:
			return "", fail(http.StatusBadRequest, "container %q in pod %q is waiting to start: %s", container, p.Name, reason)
		}
	}
	return "", fail(http.StatusBadRequest, "container %q in pod %q is waiting to start - no logs yet", container, p.Name)
}

func (s *Server) containerLogs(w http.ResponseWriter, r *http.Request) {
	if err := s.serveLogs(w, r); err != nil {
		writeError(w, err)
	}
}

func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request) error {
	p, err := s.pod(r)
	if err != nil {
		return err
	}
	container := r.PathValue("container")
	if !containerSpec(p, container) {
		return fail(http.StatusNotFound, "container %q not found in pod %q", container, p.Name)
	}
	opts, previous, err := logOptions(r.URL.Query(), time.Now())
	if err != nil {
		return err
	}
	id, err := logStatus(p, container, previous)
	if err != nil {
		return err
	}
	if s.opts.Streams == nil {
		return s.noStreams("keeps no logs")
	}
	path, err := s.opts.Streams.LogPath(r.Context(), p, container, previous)
	if err != nil {
		return err
	}
	// The log ends when the instance read stops running: a restart
	// writes a new file, which a new request reads.
	cluster, ns, name := r.Header.Get(nodeconn.ClusterHeader), p.Namespace, p.Name
	running := func() bool {
		if previous {
			return false
		}
		cur, err := s.opts.Pod(cluster, ns, name)
		if err != nil || cur.UID != p.UID {
			return false
		}
		for _, list := range [][]corev1.ContainerStatus{cur.Status.ContainerStatuses, cur.Status.InitContainerStatuses, cur.Status.EphemeralContainerStatuses} {
			for _, st := range list {
				if st.Name == container {
					return st.State.Running != nil && st.ContainerID == id
				}
			}
		}
		return false
	}
	w.Header().Set("Content-Type", "text/plain")
	fw := &flushWriter{w: w, rc: http.NewResponseController(w)}
	if err := ReadCRILog(r.Context(), path, opts, fw, running); err != nil {
		if !fw.wrote {
			return err
		}
		s.opts.Log.Info("log stream ended early", "pod", ns+"/"+name, "container", container, "err", err)
	}
	if !fw.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return nil
}

// flushWriter sends what was written when the log reader has no more for
// now (a followed log shows lines as they come).
type flushWriter struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	wrote bool
}

func (f *flushWriter) Write(b []byte) (int, error) {
	f.wrote = true
	return f.w.Write(b)
}

func (f *flushWriter) Flush() {
	if f.wrote {
		f.rc.Flush() //nolint:errcheck // a gone client ends the request's context
	}
}

// streamOptions are exec's and attach's query parameters.
type streamOptions struct {
	stdin, stdout, stderr, tty bool
}

func readStreamOptions(q url.Values) (streamOptions, error) {
	o := streamOptions{stdin: queryBool(q, corev1.ExecStdinParam), stdout: queryBool(q, corev1.ExecStdoutParam),
		stderr: queryBool(q, corev1.ExecStderrParam), tty: queryBool(q, corev1.ExecTTYParam)}
	if o.tty && o.stderr {
		// A terminal has one output: the kubelet drops stderr too.
		o.stderr = false
	}
	if !o.stdin && !o.stdout && !o.stderr {
		return o, fail(http.StatusBadRequest, "you must specify at least 1 of stdin, stdout, stderr")
	}
	return o, nil
}

func (s *Server) exec(w http.ResponseWriter, r *http.Request) {
	s.containerStream(w, r, "runs no containers to exec in", func(p *corev1.Pod, container string, o streamOptions) (*url.URL, error) {
		cmd := r.URL.Query()[corev1.ExecCommandParam]
		if len(cmd) == 0 {
			return nil, fail(http.StatusBadRequest, "you must specify at least one command for the container")
		}
		return s.opts.Streams.Exec(r.Context(), p, container, cmd, o.tty, o.stdin, o.stdout, o.stderr)
	})
}

func (s *Server) attach(w http.ResponseWriter, r *http.Request) {
	s.containerStream(w, r, "runs no containers to attach to", func(p *corev1.Pod, container string, o streamOptions) (*url.URL, error) {
		return s.opts.Streams.Attach(r.Context(), p, container, o.tty, o.stdin, o.stdout, o.stderr)
	})
}

// containerStream is a stream into one container (exec, attach): the
// container must be the pod's, the options sound and streams served.
func (s *Server) containerStream(w http.ResponseWriter, r *http.Request, none string, locate func(*corev1.Pod, string, streamOptions) (*url.URL, error)) {
	s.stream(w, r, func(p *corev1.Pod) (*url.URL, error) {
		container := r.PathValue("container")
		if !containerSpec(p, container) {
			return nil, fail(http.StatusNotFound, "container not found (%q)", container)
		}
		o, err := readStreamOptions(r.URL.Query())
		if err != nil {
			return nil, err
		}
		if s.opts.Streams == nil {
			return nil, s.noStreams(none)
		}
		return locate(p, container, o)
	})
}

func (s *Server) portForward(w http.ResponseWriter, r *http.Request) {
	s.stream(w, r, func(p *corev1.Pod) (*url.URL, error) {
		ports, err := parsePorts(r.URL.Query()[corev1.PortHeader])
		if err != nil {
			return nil, err
		}
		if s.opts.Streams == nil {
			return nil, s.noStreams("runs no containers to forward ports to")
		}
		return s.opts.Streams.PortForward(r.Context(), p, ports)
	})
}

// parsePorts reads port parameters, each one port or a comma-separated
// list (as the API server sends them).
func parsePorts(vals []string) ([]int32, error) {
	var out []int32
	for _, v := range vals {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			n, err := strconv.ParseUint(f, 10, 16)
			if err != nil || n == 0 {
				return nil, fail(http.StatusBadRequest, "unable to parse %q as a port", f)
			}
			out = append(out, int32(n))
		}
	}
	return out, nil
}

// stream serves exec, attach and portForward: the runtime gives a URL of
// its streaming server for the request, and the client's upgrade goes on
// there, as the kubelet proxies to its runtime's streaming server.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, locate func(*corev1.Pod) (*url.URL, error)) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeError(w, fail(http.StatusMethodNotAllowed, "method %s not allowed", r.Method))
		return
	}
	p, err := s.pod(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if !nodeconn.IsUpgrade(r) {
		writeError(w, fail(http.StatusBadRequest, "Upgrade request required"))
		return
	}
	target, err := locate(p)
	if err != nil {
		writeError(w, err)
		return
	}
	t := *target
	if t.RawQuery == "" {
		// The runtime's URL stands for the request; the client's query
		// (port forwarding's ports over WebSocket) goes along.
		t.RawQuery = r.URL.RawQuery
	}
	r.Header.Del(nodeconn.ClusterHeader)
	r.Header.Del(nodeconn.PodUIDHeader)
	if err := nodeconn.ProxyUpgrade(w, r, &t, nil); err != nil {
		writeError(w, err)
	}
}

// newServer listens for the API server when the agent has a cert dir: on
// the node's IP (127.0.0.1 for several simulated nodes, whose addresses
// are made up), so the address the Node reports is where it is reached.
func (a *Agent) newServer() (*Server, error) {
	if a.opts.CertDir == "" {
		return nil, nil
	}
	host, hosts := "127.0.0.1", []string(nil)
	if a.single != "" {
		host = a.nodes[a.single].spec.InternalIP
		hosts = []string{a.single, host}
	}
	tlsConfig, err := ServingTLS(a.opts.CertDir, hosts)
	if err != nil {
		return nil, err
	}
	var streams Streams
	if st, ok := a.opts.Runtime.(Streams); ok {
		streams = st
	}
	o := ServerOptions{
		Addr: net.JoinHostPort(host, strconv.Itoa(a.opts.Port)), TLS: tlsConfig,
		Streams: streams, RuntimeName: a.opts.Runtime.Name(), Pod: a.boundPod, Log: a.log,
	}
	if sc := a.newStatsCollector(); sc != nil {
		o.Stats = sc.collect
	}
	srv, err := NewServer(o)
	if err != nil {
		return nil, err
	}
	a.port = srv.Port()
	a.log.Info("serving logs and streams", "addr", srv.ln.Addr().String())
	return srv, nil
}

// boundPod is a pod bound to one of the agent's nodes.
func (a *Agent) boundPod(cluster, namespace, name string) (*corev1.Pod, error) {
	p, err := a.pods.Get(cluster, namespace, name)
	if err != nil {
		return nil, err
	}
	if a.nodes[p.Spec.NodeName] == nil {
		return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
	}
	return p, nil
}
