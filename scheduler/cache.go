package scheduler

import (
	"sort"
	"sync"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// nodeKey names a node: nodes are cluster-scoped objects of one logical
// cluster.
type nodeKey struct{ cluster, name string }

func (k nodeKey) String() string { return k.cluster + "|" + k.name }

// nodeInfo is a node and the aggregates of the pods placed on it, kept up
// to date as pods come and go so that checking a pod against a node costs
// the same whatever the number of pods.
type nodeInfo struct {
	key  nodeKey
	node *corev1.Node // nil while only pods name the node

	taints      []corev1.Taint // with the not-ready/unreachable taints its conditions imply
	alloc       resources
	allowedPods int64
	zone        string

	requested  resources // sum of the pods' requests
	nzMilliCPU int64     // ... with defaults for pods that request nothing
	nzMemory   int64
	pods       map[types.UID]*podInfo
	ports      map[hostPort]int
	generation int64 // bumped on every change
}

// podInfo is a pod as the scheduler accounts it.
type podInfo struct {
	pod      *corev1.Pod
	uid      types.UID
	key      framework.Key
	cluster  string
	node     nodeKey // where it is placed (assigned pods)
	req      resources
	nzCPU    int64
	nzMemory int64
	ports    []hostPort
	priority int32
	owner    types.UID // controller owner
	assumed  bool      // placed by this scheduler, not yet seen bound
	// terms of required and preferred pod (anti-)affinity
	hasAffinity     bool
	hasAntiAffinity bool // required anti-affinity
	terms           *podTerms
}

func newPodInfo(pod *corev1.Pod) *podInfo {
	pi := &podInfo{pod: pod, uid: pod.UID, key: framework.KeyOf(pod), cluster: framework.ClusterOf(pod)}
	pi.req = podRequests(pod)
	pi.nzCPU, pi.nzMemory = nonZeroRequests(pod)
	pi.ports = podHostPorts(pod)
	pi.priority = podPriority(pod)
	if ref := metav1.GetControllerOf(pod); ref != nil {
		pi.owner = ref.UID
	}
	if a := pod.Spec.Affinity; a != nil {
		if pa := a.PodAffinity; pa != nil && (len(pa.RequiredDuringSchedulingIgnoredDuringExecution) > 0 || len(pa.PreferredDuringSchedulingIgnoredDuringExecution) > 0) {
			pi.hasAffinity = true
		}
		if aa := a.PodAntiAffinity; aa != nil {
			if len(aa.RequiredDuringSchedulingIgnoredDuringExecution) > 0 {
				pi.hasAntiAffinity = true
				pi.hasAffinity = true
			}
			if len(aa.PreferredDuringSchedulingIgnoredDuringExecution) > 0 {
				pi.hasAffinity = true
			}
		}
	}
	if pi.hasAffinity {
		pi.terms = termsOf(pod)
	}
	return pi
}

func podPriority(pod *corev1.Pod) int32 {
	if pod.Spec.Priority != nil {
		return *pod.Spec.Priority
	}
	return 0
}

func (pi *podInfo) terminating() bool { return pi.pod.DeletionTimestamp != nil }

// startTime is when the pod started, or was made.
func (pi *podInfo) startTime() time.Time {
	if pi.pod.Status.StartTime != nil {
		return pi.pod.Status.StartTime.Time
	}
	return pi.pod.CreationTimestamp.Time
}

// cache holds the nodes of every cluster and the pods placed on them.
//
// Which nodes a pod may use: those of its own logical cluster when that
// cluster has nodes, else the nodes of the scheduler's own cluster (the
// root), which every tenant shares; a pod bound to a node name is placed on
// that node by the same rule.
type cache struct {
	mu             sync.RWMutex
	defaultCluster string

	nodes        map[nodeKey]*nodeInfo
	clusterNodes map[string][]*nodeInfo // nodes that exist, by cluster, sorted by name

	pods      map[types.UID]*podInfo            // placed pods, assumed ones too
	byNS      map[string]map[types.UID]*podInfo // "cluster|namespace"
	byCluster map[string]map[types.UID]*podInfo
	affinity  map[string]map[types.UID]*podInfo // cluster: pods with pod (anti-)affinity terms
	owners    map[types.UID]map[nodeKey]int     // controller: pods per node

	nominated map[types.UID]*podInfo // pending pods with status.nominatedNodeName; node is the nominated one

	generation int64
}

func newCache(defaultCluster string) *cache {
	return &cache{
		defaultCluster: defaultCluster,
		nodes:          map[nodeKey]*nodeInfo{},
		clusterNodes:   map[string][]*nodeInfo{},
		pods:           map[types.UID]*podInfo{},
		byNS:           map[string]map[types.UID]*podInfo{},
		byCluster:      map[string]map[types.UID]*podInfo{},
		affinity:       map[string]map[types.UID]*podInfo{},
		owners:         map[types.UID]map[nodeKey]int{},
		nominated:      map[types.UID]*podInfo{},
	}
}

// poolCluster is the cluster whose nodes a pod of cluster c may use.
func (c *cache) poolCluster(cluster string) string {
	if len(c.clusterNodes[cluster]) > 0 {
		return cluster
	}
	return c.defaultCluster
}

// pool is the nodes a pod of cluster c may use.
func (c *cache) pool(cluster string) []*nodeInfo { return c.clusterNodes[c.poolCluster(cluster)] }

// nodeFor is the key of the node a pod of cluster c bound to name is on.
func (c *cache) nodeFor(cluster, name string) nodeKey {
	return nodeKey{cluster: c.poolCluster(cluster), name: name}
}

func (c *cache) nodeInfo(k nodeKey) *nodeInfo {
	n := c.nodes[k]
	if n == nil {
		n = &nodeInfo{key: k, pods: map[types.UID]*podInfo{}, ports: map[hostPort]int{}}
		c.nodes[k] = n
	}
	return n
}

// setNode adds or updates a node; it tells whether anything the
// scheduler looks at changed.
func (c *cache) setNode(node *corev1.Node) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := nodeKey{cluster: framework.ClusterOf(node), name: node.Name}
	n := c.nodeInfo(k)
	old := n.node
	n.node = node
	n.taints = effectiveTaints(node)
	n.alloc = fromList(node.Status.Allocatable)
	n.allowedPods = 0
	if q, ok := node.Status.Allocatable[corev1.ResourcePods]; ok {
		n.allowedPods = q.Value()
	}
	n.zone = node.Labels[corev1.LabelTopologyZone]
	n.generation++
	c.generation++
	if old == nil {
		c.indexNodes(k.cluster)
		if k.cluster != c.defaultCluster && len(c.clusterNodes[k.cluster]) == 1 {
			c.rehome(k.cluster)
		}
		return true
	}
	return schedulingChanged(old, node)
}

// schedulingChanged: what the filters look at differs (not heartbeats).
func schedulingChanged(a, b *corev1.Node) bool {
	if a.Spec.Unschedulable != b.Spec.Unschedulable || !equalMaps(a.Labels, b.Labels) ||
		len(a.Spec.Taints) != len(b.Spec.Taints) || len(a.Status.Allocatable) != len(b.Status.Allocatable) {
		return true
	}
	for i := range a.Spec.Taints {
		if a.Spec.Taints[i].Key != b.Spec.Taints[i].Key || a.Spec.Taints[i].Value != b.Spec.Taints[i].Value ||
			a.Spec.Taints[i].Effect != b.Spec.Taints[i].Effect {
			return true
		}
	}
	for n, q := range a.Status.Allocatable {
		if q2, ok := b.Status.Allocatable[n]; !ok || q.Cmp(q2) != 0 {
			return true
		}
	}
	return readyStatus(a) != readyStatus(b)
}

func readyStatus(n *corev1.Node) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (c *cache) deleteNode(cluster, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := nodeKey{cluster: cluster, name: name}
	n := c.nodes[k]
	if n == nil {
		return
	}
	n.node = nil
	if len(n.pods) == 0 {
		delete(c.nodes, k)
	}
	c.generation++
	c.indexNodes(cluster)
	if cluster != c.defaultCluster && len(c.clusterNodes[cluster]) == 0 {
		c.rehome(cluster)
	}
}

func (c *cache) indexNodes(cluster string) {
	var list []*nodeInfo
	for k, n := range c.nodes {
		if k.cluster == cluster && n.node != nil {
			list = append(list, n)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].key.name < list[j].key.name })
	if len(list) == 0 {
		delete(c.clusterNodes, cluster)
		return
	}
	c.clusterNodes[cluster] = list
}

// rehome moves the pods of cluster to the nodes its pool now names (the
// cluster got its first node or lost its last).
func (c *cache) rehome(cluster string) {
	for _, pi := range c.byCluster[cluster] {
		want := c.nodeFor(cluster, pi.node.name)
		if want != pi.node {
			c.unplace(pi)
			pi.node = want
			c.place(pi)
		}
	}
}

// place adds a pod's requests to its node.
func (c *cache) place(pi *podInfo) {
	c.nodeInfo(pi.node).addPod(pi)
	if pi.owner != "" {
		m := c.owners[pi.owner]
		if m == nil {
			m = map[nodeKey]int{}
			c.owners[pi.owner] = m
		}
		m[pi.node]++
	}
}

func (c *cache) unplace(pi *podInfo) {
	n := c.nodes[pi.node]
	if n == nil || n.pods[pi.uid] == nil {
		return
	}
	n.removePod(pi)
	if pi.owner != "" {
		if m := c.owners[pi.owner]; m != nil {
			if m[pi.node]--; m[pi.node] <= 0 {
				delete(m, pi.node)
			}
			if len(m) == 0 {
				delete(c.owners, pi.owner)
			}
		}
	}
	if n.node == nil && len(n.pods) == 0 {
		delete(c.nodes, pi.node)
	}
}

func (n *nodeInfo) addPod(pi *podInfo) {
	n.pods[pi.uid] = pi
	n.requested.add(&pi.req, 1)
	n.nzMilliCPU += pi.nzCPU
	n.nzMemory += pi.nzMemory
	for _, p := range pi.ports {
		n.ports[p]++
	}
	n.generation++
}

func (n *nodeInfo) removePod(pi *podInfo) {
	delete(n.pods, pi.uid)
	n.requested.add(&pi.req, -1)
	n.nzMilliCPU -= pi.nzCPU
	n.nzMemory -= pi.nzMemory
	for _, p := range pi.ports {
		if n.ports[p]--; n.ports[p] <= 0 {
			delete(n.ports, p)
		}
	}
	n.generation++
}

// simulated is a copy of n that preemption may take pods off without
// touching n.
func (n *nodeInfo) simulated() *nodeInfo {
	s := *n
	s.requested = n.requested.clone()
	s.pods = make(map[types.UID]*podInfo, len(n.pods))
	for k, v := range n.pods {
		s.pods[k] = v
	}
	s.ports = make(map[hostPort]int, len(n.ports))
	for k, v := range n.ports {
		s.ports[k] = v
	}
	return &s
}

func addTo(m map[string]map[types.UID]*podInfo, k string, pi *podInfo) {
	s := m[k]
	if s == nil {
		s = map[types.UID]*podInfo{}
		m[k] = s
	}
	s[pi.uid] = pi
}

func removeFrom(m map[string]map[types.UID]*podInfo, k string, uid types.UID) {
	if s := m[k]; s != nil {
		delete(s, uid)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}

func nsKey(cluster, ns string) string { return cluster + "|" + ns }

// addPod places a pod; any earlier version (an assumed one too) goes.
func (c *cache) addPod(pi *podInfo) {
	if old := c.pods[pi.uid]; old != nil {
		c.removePod(old)
	}
	c.pods[pi.uid] = pi
	c.place(pi)
	addTo(c.byNS, nsKey(pi.cluster, pi.key.Namespace), pi)
	addTo(c.byCluster, pi.cluster, pi)
	if pi.hasAffinity {
		addTo(c.affinity, pi.cluster, pi)
	}
	c.generation++
}

func (c *cache) removePod(pi *podInfo) {
	c.unplace(pi)
	delete(c.pods, pi.uid)
	removeFrom(c.byNS, nsKey(pi.cluster, pi.key.Namespace), pi.uid)
	removeFrom(c.byCluster, pi.cluster, pi.uid)
	removeFrom(c.affinity, pi.cluster, pi.uid)
	c.generation++
}

// placedPod records an assigned pod from the informer, replacing an
// assumption of it.
func (c *cache) placedPod(pod *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.nominated, pod.UID)
	pi := newPodInfo(pod)
	pi.node = c.nodeFor(pi.cluster, pod.Spec.NodeName)
	c.addPod(pi)
}

// forgetPod drops a pod (deleted, finished, or an assumption that failed).
func (c *cache) forgetPod(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.nominated, uid)
	pi := c.pods[uid]
	if pi == nil {
		return false
	}
	c.removePod(pi)
	return true
}

// forgetAssumed drops a pod only while it is an assumption.
func (c *cache) forgetAssumed(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pi := c.pods[uid]; pi != nil && pi.assumed {
		c.removePod(pi)
	}
}

// assume places a pod on node before its binding is written, so that the
// next pods see its requests (as upstream's scheduler cache does).
func (c *cache) assume(pi *podInfo, node nodeKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.nominated, pi.uid)
	a := *pi
	a.assumed = true
	a.node = node
	c.addPod(&a)
}

// isPlaced: the cache has the pod on a node (bound or assumed).
func (c *cache) isPlaced(uid types.UID) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.pods[uid] != nil
}

// setNominated records a pending pod's nominated node ("" clears).
func (c *cache) setNominated(pi *podInfo, node string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if node == "" {
		delete(c.nominated, pi.uid)
		return
	}
	n := *pi
	n.node = c.nodeFor(pi.cluster, node)
	c.nominated[pi.uid] = &n
}

// nominatedOn is what pods nominated to node with at least priority prio
// (other than the pod uid) will take there.
func (c *cache) nominatedOn(node nodeKey, prio int32, uid types.UID) (req resources, count int64, ok bool) {
	for _, pi := range c.nominated {
		if pi.node != node || pi.uid == uid || pi.priority < prio {
			continue
		}
		req.add(&pi.req, 1)
		count++
		ok = true
	}
	return req, count, ok
}

// clusterForgotten drops what the cache holds of a removed cluster.
func (c *cache) clusterForgotten(cluster string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pi := range c.byCluster[cluster] {
		c.removePod(pi)
	}
	for k, n := range c.nodes {
		if k.cluster == cluster {
			n.node = nil
			if len(n.pods) == 0 {
				delete(c.nodes, k)
			}
		}
	}
	delete(c.clusterNodes, cluster)
	for uid, pi := range c.nominated {
		if pi.cluster == cluster {
			delete(c.nominated, uid)
		}
	}
}
