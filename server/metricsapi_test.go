package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgkube/pgkube/agent"
	"github.com/pgkube/pgkube/internal/nodeconn"
	"github.com/pgkube/pgkube/internal/pgtest"
	"github.com/pgkube/pgkube/migrations"
	"github.com/pgkube/pgkube/pki"
	"github.com/pgkube/pgkube/registry"
	"github.com/pgkube/pgkube/storage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrations.ApplyURL)
	os.Exit(pgtest.Main(m))
}

// oneTenant is a Clusters with the root and acme.
type oneTenant struct{}

func (oneTenant) Exists(_ context.Context, name string) (bool, error) { return name == "acme", nil }
func (oneTenant) Ready(context.Context, string) error                 { return nil }

// fakeAgent is a real agent-side HTTPS endpoint (the cluster CA's serving
// certificate, the API server's client certificate required) that answers
// at nodeconn.StatsPath with what the test sets per cluster.
type fakeAgent struct {
	mu      sync.Mutex
	answers map[string]nodeconn.Stats // by cluster
	code    int
	asked   []string // clusters asked for
	port    int
}

func startFakeAgent(t *testing.T, certDir string) *fakeAgent {
	t.Helper()
	cfg, err := agent.ServingTLS(certDir, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAgent{answers: map[string]nodeconn.Stats{}, code: http.StatusOK}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != nodeconn.StatsPath || len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != nodeconn.ClientCN {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		cluster := r.Header.Get(nodeconn.ClusterHeader)
		a.mu.Lock()
		a.asked = append(a.asked, cluster)
		st, code := a.answers[cluster], a.code
		a.mu.Unlock()
		if code != http.StatusOK {
			http.Error(w, "broken", code)
			return
		}
		json.NewEncoder(w).Encode(st) //nolint:errcheck
	}))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	a.port = srv.Listener.Addr().(*net.TCPAddr).Port
	return a
}

type metricsEnv struct {
	t      *testing.T
	url    string
	client *http.Client
}

func (e *metricsEnv) do(method, path, accept string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", mediaJSON)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (e *metricsEnv) ok(method, path string, body any, into any) {
	e.t.Helper()
	code, out := e.do(method, path, "", body)
	if code >= 300 {
		e.t.Fatalf("%s %s: %d %s", method, path, code, out)
	}
	if into != nil {
		if err := json.Unmarshal(out, into); err != nil {
			e.t.Fatalf("%s %s: %v in %s", method, path, err, out)
		}
	}
}

func newMetricsEnv(t *testing.T) (*metricsEnv, string) {
	store := storage.New(pgtest.Pool(t, pgtest.NewDatabase(t)))
	for _, cl := range []string{"root", "acme"} {
		if err := store.EnsureCluster(context.Background(), cl); err != nil {
			t.Fatal(err)
		}
	}
	reg, err := registry.New()
	if err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	bundle, err := pki.Ensure(certDir, pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := bundle.IssueClient(nodeconn.ClientCN, []string{pki.AdminGroup}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(bundle.CA)
	s := New(Config{Store: store, Registry: reg, Clusters: oneTenant{},
		NodeTLS: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots}})
	api := httptest.NewServer(s.Handler())
	t.Cleanup(api.Close)
	return &metricsEnv{t: t, url: api.URL, client: api.Client()}, certDir
}

func (e *metricsEnv) node(name string, port int, labels map[string]string) {
	e.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Status: corev1.NodeStatus{
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
	}}
	e.ok(http.MethodPost, "/api/v1/nodes", n, nil)
}

// pod creates a running pod and returns its UID.
func (e *metricsEnv) pod(prefix, ns, name, node string, labels map[string]string) string {
	e.t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "busybox"}}}}
	var created corev1.Pod
	e.ok(http.MethodPost, prefix+"/api/v1/namespaces/"+ns+"/pods", p, &created)
	if node != "" {
		created.Status.Phase = corev1.PodRunning
		e.ok(http.MethodPut, prefix+"/api/v1/namespaces/"+ns+"/pods/"+name+"/status", &created, nil)
	}
	return string(created.UID)
}

func podStats(ns, name, uid, node string, milli, mib uint64) nodeconn.PodStats {
	return nodeconn.PodStats{Namespace: ns, Name: name, UID: uid, Node: node,
		Sample:     nodeconn.Sample{Timestamp: time.Unix(1700000000, 0), WindowNanoseconds: int64(10 * time.Second)},
		Containers: []nodeconn.ContainerStats{{Name: "app", Usage: nodeconn.Usage{CPUNanoCores: milli * 1e6, MemoryWorkingSetBytes: mib << 20}}}}
}

func nodeStats(name string, milli, mib uint64) nodeconn.NodeStats {
	return nodeconn.NodeStats{Name: name, Sample: nodeconn.Sample{Timestamp: time.Unix(1700000000, 0), WindowNanoseconds: int64(15 * time.Second)},
		Usage: nodeconn.Usage{CPUNanoCores: milli * 1e6, MemoryWorkingSetBytes: mib << 20}}
}

func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func names(items []metav1.Object) string {
	var out []string
	for _, it := range items {
		n := it.GetName()
		if it.GetNamespace() != "" {
			n = it.GetNamespace() + "/" + n
		}
		out = append(out, n)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func nodeNames(l metricsv1beta1.NodeMetricsList) string {
	var objs []metav1.Object
	for i := range l.Items {
		objs = append(objs, &l.Items[i])
	}
	return names(objs)
}

func podNames(l metricsv1beta1.PodMetricsList) string {
	var objs []metav1.Object
	for i := range l.Items {
		objs = append(objs, &l.Items[i])
	}
	return names(objs)
}

// TestMetricsAPI: NodeMetrics and PodMetrics from the agents of the nodes
// concerned, with selectors, get and list, nodes whose agent fails left
// out, a tenant's own pods only, and Statuses for what is not served.
func TestMetricsAPI(t *testing.T) {
	e, certDir := newMetricsEnv(t)
	good := startFakeAgent(t, certDir)   // one agent for n1 and n2
	broken := startFakeAgent(t, certDir) // n3's
	broken.code = http.StatusInternalServerError
	e.node("n1", good.port, map[string]string{"role": "a"})
	e.node("n2", good.port, map[string]string{"role": "b"})
	e.node("n3", broken.port, nil)
	e.node("n4", 0, nil)             // its agent serves nothing
	e.node("n5", closedPort(t), nil) // its agent is down
	for _, ns := range []string{"web", "other"} {
		e.ok(http.MethodPost, "/api/v1/namespaces", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, nil)
	}
	e.ok(http.MethodPost, "/clusters/acme/api/v1/namespaces", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "web"}}, nil)
	p1 := e.pod("", "web", "p1", "n1", map[string]string{"app": "x"})
	p2 := e.pod("", "web", "p2", "n2", map[string]string{"app": "y"})
	p3 := e.pod("", "web", "p3", "n3", nil)
	e.pod("", "web", "pending", "", nil)
	o1 := e.pod("", "other", "o1", "n1", nil)
	t1 := e.pod("/clusters/acme", "web", "t1", "n1", nil)
	good.answers["root"] = nodeconn.Stats{
		Nodes: []nodeconn.NodeStats{nodeStats("n1", 1500, 2048), nodeStats("n2", 250, 512), nodeStats("n3", 1, 1)},
		Pods: []nodeconn.PodStats{podStats("web", "p1", p1, "n1", 100, 64), podStats("web", "p2", p2, "n2", 200, 32),
			podStats("other", "o1", o1, "n1", 5, 4),
			// Not this agent's to tell: n3 is elsewhere; a UID of
			// no pod of the cluster.
			podStats("web", "p3", p3, "n3", 1, 1), podStats("web", "ghost", "nope", "n1", 1, 1)},
	}
	good.answers["acme"] = nodeconn.Stats{Nodes: good.answers["root"].Nodes,
		Pods: []nodeconn.PodStats{podStats("web", "t1", t1, "n1", 300, 128)}}

	const base = "/apis/metrics.k8s.io/v1beta1"
	var nl metricsv1beta1.NodeMetricsList
	e.ok(http.MethodGet, base+"/nodes", nil, &nl)
	if got := nodeNames(nl); got != "n1,n2" || nl.Kind != "NodeMetricsList" || nl.APIVersion != "metrics.k8s.io/v1beta1" {
		t.Fatalf("nodes: %s (%s %s)", got, nl.Kind, nl.APIVersion)
	}
	n1 := nl.Items[0]
	if n1.Usage.Cpu().MilliValue() != 1500 || n1.Usage.Memory().Value() != 2048<<20 || n1.Window.Duration != 15*time.Second ||
		!n1.Timestamp.Equal(&metav1.Time{Time: time.Unix(1700000000, 0)}) || n1.Labels["role"] != "a" {
		t.Errorf("n1: %+v", n1)
	}
	e.ok(http.MethodGet, base+"/nodes?labelSelector=role%3Db", nil, &nl)
	if got := nodeNames(nl); got != "n2" {
		t.Errorf("nodes with role=b: %s", got)
	}
	var nm metricsv1beta1.NodeMetrics
	e.ok(http.MethodGet, base+"/nodes/n2", nil, &nm)
	if nm.Name != "n2" || nm.Kind != "NodeMetrics" || nm.Usage.Cpu().MilliValue() != 250 {
		t.Errorf("n2: %+v", nm)
	}

	var pl metricsv1beta1.PodMetricsList
	e.ok(http.MethodGet, base+"/namespaces/web/pods", nil, &pl)
	if got := podNames(pl); got != "web/p1,web/p2" {
		t.Fatalf("pods in web: %s", got)
	}
	if c := pl.Items[0].Containers; len(c) != 1 || c[0].Name != "app" || c[0].Usage.Cpu().MilliValue() != 100 || c[0].Usage.Memory().Value() != 64<<20 ||
		pl.Items[0].Labels["app"] != "x" || pl.Items[0].Window.Duration != 10*time.Second {
		t.Errorf("p1: %+v", pl.Items[0])
	}
	e.ok(http.MethodGet, base+"/pods", nil, &pl)
	if got := podNames(pl); got != "other/o1,web/p1,web/p2" {
		t.Errorf("pods everywhere: %s", got)
	}
	for q, want := range map[string]string{
		"labelSelector=app%3Dx":            "web/p1",
		"labelSelector=app+notin+(x)":      "web/p2",
		"fieldSelector=metadata.name%3Dp2": "web/p2",
		"fieldSelector=spec.nodeName%3Dn1": "web/p1",
	} {
		e.ok(http.MethodGet, base+"/namespaces/web/pods?"+q, nil, &pl)
		if got := podNames(pl); got != want {
			t.Errorf("pods with %s: %s, want %s", q, got, want)
		}
	}
	var pm metricsv1beta1.PodMetrics
	e.ok(http.MethodGet, base+"/namespaces/web/pods/p2", nil, &pm)
	if pm.Name != "p2" || pm.Namespace != "web" || pm.Kind != "PodMetrics" || len(pm.Containers) != 1 {
		t.Errorf("p2: %+v", pm)
	}

	// The tenant: its own pods, though they run on the root's node, and
	// no nodes of its own.
	e.ok(http.MethodGet, "/clusters/acme"+base+"/pods", nil, &pl)
	if got := podNames(pl); got != "web/t1" || pl.Items[0].Containers[0].Usage.Cpu().MilliValue() != 300 {
		t.Errorf("acme's pods: %s %+v", got, pl.Items)
	}
	e.ok(http.MethodGet, "/clusters/acme"+base+"/nodes", nil, &nl)
	if len(nl.Items) != 0 {
		t.Errorf("acme sees nodes: %s", nodeNames(nl))
	}
	good.mu.Lock()
	asked := strings.Join(good.asked, ",")
	good.mu.Unlock()
	if !strings.Contains(asked, "acme") || !strings.Contains(asked, "root") {
		t.Errorf("clusters asked for: %s", asked)
	}

	// Refusals, as Statuses.
	for _, tc := range []struct {
		method, path string
		code         int
		msg          string
	}{
		{"GET", base + "/nodes/n3", 404, `nodemetrics.metrics.k8s.io "n3" not found`},
		{"GET", base + "/nodes/nothere", 404, `nodemetrics.metrics.k8s.io "nothere" not found`},
		{"GET", base + "/namespaces/web/pods/pending", 404, `podmetrics.metrics.k8s.io "web/pending" not found`},
		{"GET", base + "/namespaces/web/pods/p3", 404, `podmetrics.metrics.k8s.io "web/p3" not found`},
		{"GET", "/clusters/acme" + base + "/namespaces/web/pods/p1", 404, `podmetrics.metrics.k8s.io "web/p1" not found`},
		{"GET", base + "/namespaces/web/pods?fieldSelector=status.bogus%3D1", 400, "field label not supported: status.bogus"},
		{"GET", base + "/namespaces/web/pods?labelSelector=a+b", 400, "unable to parse requirement"},
		{"GET", base + "/namespaces/web/pods?fieldSelector=%3D%3D%3D", 400, "invalid field selector"},
		{"GET", base + "/namespaces/web/pods?watch=true", 405, ""},
		{"GET", base + "/watch/nodes", 405, ""},
		{"POST", base + "/namespaces/web/pods", 405, ""},
		{"DELETE", base + "/nodes/n1", 405, ""},
		{"PATCH", base + "/nodes/n1", 405, ""},
		{"GET", base + "/nodes/n1/status", 404, ""},
		{"GET", base + "/namespaces/web/nodes", 404, ""},
		{"GET", "/clusters/*" + base + "/pods", 404, ""},
	} {
		code, out := e.do(tc.method, tc.path, "", nil)
		var st metav1.Status
		if err := json.Unmarshal(out, &st); err != nil || code != tc.code || st.Kind != "Status" || int(st.Code) != tc.code || !strings.Contains(st.Message, tc.msg) {
			t.Errorf("%s %s: %d %s; want %d %q", tc.method, tc.path, code, out, tc.code, tc.msg)
		}
	}

	// Other forms: Table (kubectl get), protobuf.
	code, out := e.do("GET", base+"/nodes", "application/json;as=Table;v=v1;g=meta.k8s.io", nil)
	var table metav1.Table
	if err := json.Unmarshal(out, &table); code != 200 || err != nil || table.Kind != "Table" || len(table.Rows) != 2 {
		t.Errorf("table: %d %s", code, out)
	}
	if code, out := e.do("GET", base+"/namespaces/web/pods", "application/vnd.kubernetes.protobuf", nil); code != 200 || !bytes.HasPrefix(out, []byte("k8s\x00")) {
		t.Errorf("protobuf: %d %q", code, out)
	}
}

// TestMetricsDiscovery: the group is discovered, plain and aggregated,
// with its two read-only resources.
func TestMetricsDiscovery(t *testing.T) {
	e, _ := newMetricsEnv(t)
	var l metav1.APIResourceList
	e.ok(http.MethodGet, "/apis/metrics.k8s.io/v1beta1", nil, &l)
	got := map[string]string{}
	for _, r := range l.APIResources {
		got[r.Name] = r.Kind + " " + strconv.FormatBool(r.Namespaced) + " " + strings.Join(r.Verbs, ",")
	}
	if len(got) != 2 || got["nodes"] != "NodeMetrics false get,list" || got["pods"] != "PodMetrics true get,list" {
		t.Errorf("resources: %v", got)
	}
	var g metav1.APIGroup
	e.ok(http.MethodGet, "/apis/metrics.k8s.io", nil, &g)
	if g.PreferredVersion.GroupVersion != "metrics.k8s.io/v1beta1" {
		t.Errorf("group: %+v", g)
	}
	code, out := e.do(http.MethodGet, "/apis", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", nil)
	if code != 200 || !strings.Contains(string(out), `"name":"metrics.k8s.io"`) || !strings.Contains(string(out), `"responseKind":{"group":"metrics.k8s.io","version":"v1beta1","kind":"PodMetrics"}`) {
		t.Errorf("aggregated discovery: %d %s", code, out)
	}
	// Nothing to measure: empty lists, not errors.
	var nl metricsv1beta1.NodeMetricsList
	e.ok(http.MethodGet, "/apis/metrics.k8s.io/v1beta1/nodes", nil, &nl)
	if len(nl.Items) != 0 {
		t.Errorf("nodes of an empty cluster: %+v", nl.Items)
	}
}
