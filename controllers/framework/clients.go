package framework

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// ClusterURLPrefix is the path below which the API server serves a logical
// cluster: /clusters/NAME/api/v1/...; /clusters/*/ is the wildcard view.
const ClusterURLPrefix = "/clusters/"

// Clients are the manager's API clients: one per logical cluster for
// writes, and the list/watch client informers use, which is the wildcard
// view when the server has one and else the cluster the kubeconfig names.
type Clients struct {
	base           *rest.Config // no /clusters/ path
	defaultCluster string
	wildcard       bool
	listWatch      kubernetes.Interface
	dynListWatch   dynamic.Interface

	mu     sync.Mutex
	typed  map[string]clientEntry
	static map[string]kubernetes.Interface // for tests
	dyn    map[string]dynamic.Interface
}

type clientEntry struct {
	cs  kubernetes.Interface
	dyn dynamic.Interface
}

// NewClients makes the clients of cfg (the manager's kubeconfig), probing
// the server for its wildcard view, and sets the default cluster.
func NewClients(ctx context.Context, cfg *rest.Config) (*Clients, error) {
	u, err := url.Parse(cfg.Host)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: not a URL", cfg.Host)
	}
	cluster := RootCluster
	path := strings.TrimSuffix(u.Path, "/")
	if i := strings.Index(path, ClusterURLPrefix); i >= 0 {
		cluster = strings.Trim(path[i+len(ClusterURLPrefix):], "/")
		path = path[:i]
	}
	u.Path = path
	base := rest.CopyConfig(cfg)
	base.Host = u.String()
	c := &Clients{base: base, defaultCluster: cluster, typed: map[string]clientEntry{}, dyn: map[string]dynamic.Interface{}}

	wc := rest.CopyConfig(base)
	wc.Host = strings.TrimSuffix(base.Host, "/") + ClusterURLPrefix + "*"
	wcs, err := kubernetes.NewForConfig(wc)
	if err != nil {
		return nil, err
	}
	if c.probeWildcard(ctx, wcs) {
		c.wildcard = true
		c.listWatch = wcs
		if c.dynListWatch, err = dynamic.NewForConfig(wc); err != nil {
			return nil, err
		}
	} else {
		c.listWatch = c.For(cluster)
		c.dynListWatch = c.Dynamic(cluster)
	}
	return c, nil
}

// probeWildcard: the server has a wildcard view when listing namespaces
// there answers with objects that name their cluster.
func (c *Clients) probeWildcard(ctx context.Context, wcs kubernetes.Interface) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := wcs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil || len(l.Items) == 0 {
		return false
	}
	return l.Items[0].Annotations[ClusterAnnotation] != ""
}

// NewStaticClients is for tests: fixed clientsets per cluster (e.g. fakes),
// listWatch used by informers.
func NewStaticClients(defaultCluster string, listWatch kubernetes.Interface, perCluster map[string]kubernetes.Interface) *Clients {
	return &Clients{defaultCluster: defaultCluster, listWatch: listWatch, static: perCluster,
		typed: map[string]clientEntry{}, dyn: map[string]dynamic.Interface{}}
}

// Wildcard tells whether informers see every cluster.
func (c *Clients) Wildcard() bool { return c.wildcard }

// DefaultCluster is the cluster of the kubeconfig.
func (c *Clients) DefaultCluster() string { return c.defaultCluster }

// ListWatch is the client informers list and watch with.
func (c *Clients) ListWatch() kubernetes.Interface { return c.listWatch }

// DynamicListWatch is ListWatch for any resource.
func (c *Clients) DynamicListWatch() dynamic.Interface { return c.dynListWatch }

// Root is the root cluster's client.
func (c *Clients) Root() kubernetes.Interface { return c.For(RootCluster) }

// For is the client of one cluster, with the kubeconfig's credentials: the
// API server lets the root's system:masters into every cluster.
func (c *Clients) For(cluster string) kubernetes.Interface {
	if c.static != nil {
		return c.static[cluster]
	}
	return c.entry(cluster).cs
}

// Dynamic is the dynamic client of one cluster.
func (c *Clients) Dynamic(cluster string) dynamic.Interface {
	if c.static != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.dyn[cluster]
	}
	return c.entry(cluster).dyn
}

// SetDynamic is for tests: the dynamic client of a cluster.
func (c *Clients) SetDynamic(cluster string, d dynamic.Interface) {
	c.mu.Lock()
	c.dyn[cluster] = d
	c.mu.Unlock()
}

// Forget drops a cluster's clients, e.g. when it is deleted.
func (c *Clients) Forget(cluster string) {
	c.mu.Lock()
	delete(c.typed, cluster)
	c.mu.Unlock()
}

// Config is the rest.Config of one cluster (with the kubeconfig's
// credentials).
func (c *Clients) Config(cluster string) *rest.Config {
	cfg := rest.CopyConfig(c.base)
	if cluster != RootCluster {
		cfg.Host = strings.TrimSuffix(c.base.Host, "/") + ClusterURLPrefix + cluster
	}
	return cfg
}

func (c *Clients) entry(cluster string) clientEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.typed[cluster]; ok {
		return e
	}
	cfg := c.Config(cluster)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		panic(fmt.Sprintf("framework: client of cluster %s: %v", cluster, err)) // only a malformed config does this
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		panic(fmt.Sprintf("framework: dynamic client of cluster %s: %v", cluster, err))
	}
	e := clientEntry{cs: cs, dyn: dyn}
	c.typed[cluster] = e
	return e
}
