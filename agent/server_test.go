package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/nodeconn"
	"github.com/pgkube/pgkube/pki"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fileStreams is a runtime's Streams whose logs are one real file.
type fileStreams struct{ path string }

func (f fileStreams) LogPath(context.Context, *corev1.Pod, string, bool) (string, error) {
	return f.path, nil
}

func (fileStreams) Exec(context.Context, *corev1.Pod, string, []string, bool, bool, bool, bool) (*url.URL, error) {
	return nil, apierrors.NewBadRequest("no exec here")
}

func (fileStreams) Attach(context.Context, *corev1.Pod, string, bool, bool, bool, bool) (*url.URL, error) {
	return nil, apierrors.NewBadRequest("no attach here")
}

func (fileStreams) PortForward(context.Context, *corev1.Pod, []int32) (*url.URL, error) {
	return nil, apierrors.NewBadRequest("no port forwarding here")
}

func streamPods() map[string]*corev1.Pod {
	running := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "ns", UID: "u1"},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{
			{Name: "a", ContainerID: "containerd://1", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
			{Name: "b", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}},
		}}}
	return map[string]*corev1.Pod{"root/ns/web-1": running}
}

func podLookup(pods map[string]*corev1.Pod) func(cluster, ns, name string) (*corev1.Pod, error) {
	return func(cluster, ns, name string) (*corev1.Pod, error) {
		if p, ok := pods[cluster+"/"+ns+"/"+name]; ok {
			return p, nil
		}
		return nil, apierrors.NewNotFound(corev1.Resource("pods"), name)
	}
}

// agentTestServer runs an agent server with TLS from a fresh cert dir and
// returns it with the cluster's credentials.
func agentTestServer(t *testing.T, streams Streams) (*Server, *pki.Bundle) {
	t.Helper()
	dir := t.TempDir()
	bundle, err := pki.Ensure(dir, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ServingTLS(dir, []string{"n1", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerOptions{Addr: "127.0.0.1:0", TLS: cfg, Streams: streams, Pod: podLookup(streamPods())})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ctx) //nolint:errcheck
	}()
	t.Cleanup(func() { cancel(); <-done })
	return srv, bundle
}

func clientWith(t *testing.T, b *pki.Bundle, cn string, orgs ...string) *http.Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(b.CA)
	cfg := &tls.Config{RootCAs: roots}
	if cn != "" {
		certPEM, keyPEM, err := b.IssueClient(cn, orgs, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, u string, h map[string]string) (int, string, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// Refusals are Statuses; their message is what the cases compare.
	var st metav1.Status
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(b, &st); err != nil || st.Kind != "Status" || int(st.Code) != resp.StatusCode {
			t.Errorf("%s: a refusal that is no Status: %d %q", u, resp.StatusCode, b)
		}
		return resp.StatusCode, st.Message, nil
	}
	return resp.StatusCode, string(b), nil
}

// TestAgentServerTLS: only the API server's client certificate gets in;
// the serving certificate is one the cluster CA vouches for.
func TestAgentServerTLS(t *testing.T) {
	srv, bundle := agentTestServer(t, nil)
	base := "https://127.0.0.1:" + itoa(srv.Port())
	if code, body, err := get(t, clientWith(t, bundle, nodeconn.ClientCN, pki.AdminGroup), base+"/healthz", nil); err != nil || code != 200 || body != "ok" {
		t.Fatalf("API server: %d %q %v", code, body, err)
	}
	for name, c := range map[string]*http.Client{
		"no certificate":    clientWith(t, bundle, ""),
		"admin certificate": clientWith(t, bundle, "admin", pki.AdminGroup),
	} {
		if code, _, err := get(t, c, base+"/healthz", nil); err == nil {
			t.Errorf("%s: let in (%d)", name, code)
		}
	}
	// A certificate of another CA.
	other, err := pki.Ensure(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	foreign := clientWith(t, other, nodeconn.ClientCN, pki.AdminGroup)
	foreign.Transport.(*http.Transport).TLSClientConfig.RootCAs.AddCert(bundle.CA)
	if code, _, err := get(t, foreign, base+"/healthz", nil); err == nil {
		t.Errorf("another CA's certificate: let in (%d)", code)
	}
}

func itoa(p int32) string { return strconv.Itoa(int(p)) }

// TestAgentServerLogs: logs of the pod the request names (cluster and
// UID), the kubelet's refusals in its words, and the simulated runtime's.
func TestAgentServerLogs(t *testing.T) {
	path := writeLog(t, "2026-01-02T03:04:05Z stdout F hello\n2026-01-02T03:04:06Z stderr F world\n")
	srv, bundle := agentTestServer(t, fileStreams{path: path})
	c := clientWith(t, bundle, nodeconn.ClientCN, pki.AdminGroup)
	base := "https://127.0.0.1:" + itoa(srv.Port())
	root := map[string]string{nodeconn.ClusterHeader: "root", nodeconn.PodUIDHeader: "u1"}
	cases := []struct {
		name, path string
		header     map[string]string
		code       int
		body       string
	}{
		{"log", "/containerLogs/ns/web-1/a", root, 200, "hello\nworld\n"},
		{"tail and timestamps", "/containerLogs/ns/web-1/a?tailLines=1&timestamps=true", root, 200, "2026-01-02T03:04:06Z world\n"},
		{"waiting", "/containerLogs/ns/web-1/b", root, 400, `container "b" in pod "web-1" is waiting to start: ContainerCreating`},
		{"previous", "/containerLogs/ns/web-1/a?previous=true", root, 400, `previous terminated container "a" in pod "web-1" not found`},
		{"no such container", "/containerLogs/ns/web-1/c", root, 404, `container "c" not found in pod "web-1"`},
		{"other cluster", "/containerLogs/ns/web-1/a", map[string]string{nodeconn.ClusterHeader: "acme"}, 404, `pod "web-1" does not exist`},
		{"other uid", "/containerLogs/ns/web-1/a", map[string]string{nodeconn.ClusterHeader: "root", nodeconn.PodUIDHeader: "u2"}, 404, `pod "web-1" does not exist`},
		{"no cluster", "/containerLogs/ns/web-1/a", nil, 400, "missing X-Pgkube-Cluster header"},
		{"bad tail", "/containerLogs/ns/web-1/a?tailLines=x", root, 400, `invalid tailLines "x"`},
		{"exec needs an upgrade", "/exec/ns/web-1/a?command=ls&stdout=1", root, 400, "Upgrade request required"},
	}
	for _, tc := range cases {
		code, body, err := get(t, c, base+tc.path, tc.header)
		if err != nil || code != tc.code || !strings.Contains(body, tc.body) {
			t.Errorf("%s: %d %q %v; want %d %q", tc.name, code, body, err, tc.code, tc.body)
		}
	}

	sim, simBundle := agentTestServer(t, nil)
	code, body, err := get(t, clientWith(t, simBundle, nodeconn.ClientCN), "https://127.0.0.1:"+itoa(sim.Port())+"/containerLogs/ns/web-1/a", root)
	if err != nil || code != 400 || body != "the simulated runtime keeps no logs" {
		t.Errorf("simulated: %d %q %v", code, body, err)
	}
}
