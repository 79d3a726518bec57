package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"

	"github.com/pgkube/pgkube/clusters"
	"github.com/pgkube/pgkube/internal/nodeconn"
	"github.com/pgkube/pgkube/storage"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// metrics.k8s.io/v1beta1 (kubectl top, HorizontalPodAutoscalers) is served
// here, as metrics-server would serve it behind kube-apiserver's
// aggregation, but measured on demand: each request asks the agents of the
// nodes concerned (nodeconn.StatsPath, over the same TLS as logs and exec)
// at once, and a node whose agent does not answer in time is left out, as
// metrics-server leaves out a kubelet it cannot scrape.
//
// Tenancy: PodMetrics are those of the caller's cluster's pods, wherever
// they run (agents report only the pods of the cluster asked for, and the
// answer is matched to the cluster's own pods by UID). NodeMetrics are
// those of the cluster's own Node objects, as kubectl get nodes shows
// them: a tenant that runs on the root's shared nodes sees none, since
// their usage tells of every other tenant's load.

const (
	// agentStatsTimeout bounds one agent's answer; an agent measuring a
	// container for the first time takes about a second.
	agentStatsTimeout = 5 * time.Second
	// agentStatsParallel bounds the agents asked at once.
	agentStatsParallel = 32
	maxAgentStatsBytes = 64 << 20
)

// The names upstream's NotFound errors give, so kubectl's messages read as
// against metrics-server.
var (
	podMetricsGR  = schema.GroupResource{Group: metricsv1beta1.GroupName, Resource: "podmetrics"}
	nodeMetricsGR = schema.GroupResource{Group: metricsv1beta1.GroupName, Resource: "nodemetrics"}
)

// serveMetrics serves get and list of metrics.k8s.io nodes and pods.
func (s *Server) serveMetrics(c *call) error {
	if isWildcard(c.ctx) || c.ri.Subresource != "" {
		// The wildcard view is for stored objects.
		return notFoundPath(c.r)
	}
	if c.ri.Verb != "get" && c.ri.Verb != "list" {
		return methodNotAllowed(c)
	}
	var base string
	switch c.res.Resource {
	case "nodes", "pods":
		base = c.res.Resource
	default:
		return notFoundPath(c.r)
	}
	core, ok := s.cfg.Registry.For(c.cluster).Lookup("", "v1", base)
	if !ok {
		return notFoundPath(c.r)
	}
	lo := storage.ListOptions{Resource: core.StorageKey(), Namespace: c.ri.Namespace}
	if c.ri.Verb == "get" {
		lo.Fields = fields.OneTermEqualSelector("metadata.name", c.ri.Name)
	} else {
		q := c.r.URL.Query()
		if v := q.Get("labelSelector"); v != "" {
			sel, err := labels.Parse(v)
			if err != nil {
				return badRequest("unable to parse requirement: %v", err)
			}
			lo.Labels = sel
		}
		if v := q.Get("fieldSelector"); v != "" {
			sel, err := fields.ParseSelector(v)
			if err != nil {
				return badRequest("invalid field selector: %v", err)
			}
			// The fields of the measured kind (a pod's spec.nodeName).
			cc := *c
			cc.res = core
			if err := s.checkFields(&cc, sel); err != nil {
				return err
			}
			lo.Fields = sel
		}
	}
	page, err := s.cfg.Store.List(c.ctx, c.cluster, lo)
	if err != nil {
		return err
	}
	objs := make([]runtime.Object, 0, len(page.Items))
	for _, it := range page.Items {
		obj, err := s.fromStorage(core, it.Data)
		if err != nil {
			return err
		}
		objs = append(objs, obj)
	}
	var out []runtime.Object
	if base == "nodes" {
		out, err = s.nodeMetrics(c, objs)
	} else {
		out, err = s.podMetrics(c, objs)
	}
	if err != nil {
		return err
	}
	if c.ri.Verb == "get" {
		if len(out) == 0 {
			if base == "nodes" {
				return apierrors.NewNotFound(nodeMetricsGR, c.ri.Name)
			}
			return apierrors.NewNotFound(podMetricsGR, c.ri.Namespace+"/"+c.ri.Name)
		}
		setGVK(out[0], c.res.GVK())
		return s.respond(c, http.StatusOK, out[0])
	}
	return s.respondList(c, out, metav1.ListMeta{})
}

func (s *Server) nodeMetrics(c *call, objs []runtime.Object) ([]runtime.Object, error) {
	nodes := map[string]*corev1.Node{}
	for _, o := range objs {
		if n, ok := o.(*corev1.Node); ok {
			nodes[n.Name] = n
		}
	}
	stats, err := s.agentStats(c.ctx, c.cluster, nodes)
	if err != nil {
		return nil, err
	}
	now := metav1.Now()
	out := []runtime.Object{}
	for _, o := range objs {
		n, ok := o.(*corev1.Node)
		if !ok {
			continue
		}
		ns, ok := stats.nodes[n.Name]
		if !ok {
			continue
		}
		out = append(out, &metricsv1beta1.NodeMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels, CreationTimestamp: now},
			Timestamp:  metav1.NewTime(ns.Timestamp), Window: metav1.Duration{Duration: time.Duration(ns.WindowNanoseconds)},
			Usage: usageList(ns.Usage),
		})
	}
	return out, nil
}

func (s *Server) podMetrics(c *call, objs []runtime.Object) ([]runtime.Object, error) {
	var pods []*corev1.Pod
	wanted := map[string]bool{}
	for _, o := range objs {
		p, ok := o.(*corev1.Pod)
		if !ok || p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		pods = append(pods, p)
		wanted[p.Spec.NodeName] = true
	}
	if len(pods) == 0 {
		return []runtime.Object{}, nil
	}
	// A tenant's pods run on its own nodes or on the root's, which
	// tenants share (as podAgentURL finds them).
	nodes := map[string]*corev1.Node{}
	read := []string{clusters.Root}
	if c.cluster != clusters.Root {
		read = append(read, c.cluster)
	}
	for _, cl := range read {
		found, err := s.listNodes(c.ctx, cl)
		if err != nil {
			return nil, err
		}
		for _, n := range found {
			if wanted[n.Name] {
				nodes[n.Name] = n // the cluster's own node wins, read last
			}
		}
	}
	stats, err := s.agentStats(c.ctx, c.cluster, nodes)
	if err != nil {
		return nil, err
	}
	now := metav1.Now()
	out := []runtime.Object{}
	for _, p := range pods {
		ps, ok := stats.pods[string(p.UID)]
		if !ok {
			continue
		}
		pm := &metricsv1beta1.PodMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, CreationTimestamp: now},
			Timestamp:  metav1.NewTime(ps.Timestamp), Window: metav1.Duration{Duration: time.Duration(ps.WindowNanoseconds)},
			Containers: make([]metricsv1beta1.ContainerMetrics, 0, len(ps.Containers)),
		}
		for _, cs := range ps.Containers {
			pm.Containers = append(pm.Containers, metricsv1beta1.ContainerMetrics{Name: cs.Name, Usage: usageList(cs.Usage)})
		}
		out = append(out, pm)
	}
	return out, nil
}

func (s *Server) listNodes(ctx context.Context, cluster string) ([]*corev1.Node, error) {
	res, ok := s.cfg.Registry.For(cluster).Lookup("", "v1", "nodes")
	if !ok {
		return nil, nil
	}
	page, err := s.cfg.Store.List(ctx, cluster, storage.ListOptions{Resource: res.StorageKey()})
	if err != nil {
		return nil, fmt.Errorf("listing the nodes of cluster %s: %w", cluster, err)
	}
	var out []*corev1.Node
	for _, it := range page.Items {
		obj, err := s.fromStorage(res, it.Data)
		if err != nil {
			return nil, err
		}
		if n, ok := obj.(*corev1.Node); ok {
			out = append(out, n)
		}
	}
	return out, nil
}

func usageList(u nodeconn.Usage) corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewScaledQuantity(int64(min(u.CPUNanoCores, 1<<62)), resource.Nano),
		corev1.ResourceMemory: *resource.NewQuantity(int64(min(u.MemoryWorkingSetBytes, 1<<62)), resource.BinarySI),
	}
}

// measured is what the agents answered: by node name, and by pod UID.
type measured struct {
	nodes map[string]nodeconn.NodeStats
	pods  map[string]nodeconn.PodStats
}

// agentStats asks the agents of nodes (one request per agent address:
// one agent may stand for many simulated nodes) for their nodes' usage and
// cluster's pods'. An agent that fails or is late is left out with its
// nodes and pods; the client sees fewer items, as from metrics-server.
func (s *Server) agentStats(ctx context.Context, cluster string, nodes map[string]*corev1.Node) (*measured, error) {
	m := &measured{nodes: map[string]nodeconn.NodeStats{}, pods: map[string]nodeconn.PodStats{}}
	byAddr := map[string]map[string]bool{}
	for name, n := range nodes {
		addr, err := agentAddress(n)
		if err != nil {
			continue // an agent that serves nothing has no figures either
		}
		if byAddr[addr] == nil {
			byAddr[addr] = map[string]bool{}
		}
		byAddr[addr][name] = true
	}
	if len(byAddr) == 0 {
		return m, nil
	}
	tlsConfig, err := s.nodeTLS(false)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true, TLSHandshakeTimeout: agentStatsTimeout,
		ResponseHeaderTimeout: agentStatsTimeout}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: agentStatsTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	addrs := make([]string, 0, len(byAddr))
	for a := range byAddr {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, agentStatsParallel)
	for _, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			st, err := fetchAgentStats(ctx, client, addr, cluster)
			if err != nil {
				return
			}
			mine := byAddr[addr]
			mu.Lock()
			defer mu.Unlock()
			// Only what concerns the nodes found at this address: an
			// agent speaks for its own nodes.
			for _, n := range st.Nodes {
				if mine[n.Name] {
					m.nodes[n.Name] = n
				}
			}
			for _, p := range st.Pods {
				if mine[p.Node] {
					m.pods[p.UID] = p
				}
			}
		}()
	}
	wg.Wait()
	return m, nil
}

func fetchAgentStats(ctx context.Context, client *http.Client, addr, cluster string) (*nodeconn.Stats, error) {
	u := url.URL{Scheme: "https", Host: addr, Path: nodeconn.StatsPath}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(nodeconn.ClusterHeader, cluster)
	req.Header.Set("Accept", mediaJSON)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking the agent at %s for resource usage: %w", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAgentStatsBytes))
	if err != nil {
		return nil, fmt.Errorf("reading the agent at %s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the agent at %s answered %d: %s", addr, resp.StatusCode, body)
	}
	var st nodeconn.Stats
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("decoding the agent at %s: %w", addr, err)
	}
	return &st, nil
}
