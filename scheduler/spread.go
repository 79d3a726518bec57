package scheduler

import (
	"math"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// constraint is a topology spread constraint made ready to count pods.
type constraint struct {
	maxSkew       int64
	key           string
	sel           labels.Selector
	minDomains    int64
	honorAffinity bool
	honorTaints   bool
	selfMatch     int64
}

// constraintsOf are a pod's constraints with the given action.
func constraintsOf(pod *corev1.Pod, action corev1.UnsatisfiableConstraintAction) []constraint {
	var out []constraint
	for i := range pod.Spec.TopologySpreadConstraints {
		tc := &pod.Spec.TopologySpreadConstraints[i]
		if tc.WhenUnsatisfiable != action {
			continue
		}
		sel := labelSelector(tc.LabelSelector)
		if tc.LabelSelector != nil {
			for _, k := range tc.MatchLabelKeys {
				if v, ok := pod.Labels[k]; ok {
					if r, err := labels.NewRequirement(k, selection.In, []string{v}); err == nil {
						sel = sel.Add(*r)
					}
				}
			}
		}
		c := constraint{maxSkew: int64(tc.MaxSkew), key: tc.TopologyKey, sel: sel, minDomains: 1,
			honorAffinity: tc.NodeAffinityPolicy == nil || *tc.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor,
			honorTaints:   tc.NodeTaintsPolicy != nil && *tc.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor}
		if tc.MinDomains != nil {
			c.minDomains = int64(*tc.MinDomains)
		}
		if sel.Matches(labels.Set(pod.Labels)) {
			c.selfMatch = 1
		}
		out = append(out, c)
	}
	return out
}

// spreadState counts, for the pod's DoNotSchedule constraints, the pods
// its selectors match in each topology domain, as upstream's
// PodTopologySpread pre-filter.
type spreadState struct {
	pod         *corev1.Pod
	constraints []constraint
	counts      map[topoPair]int64
	eligible    map[nodeKey]bool // nodes whose pods count
	mins        []int64          // per constraint, nil when counts changed
}

// eligibleForSpread: a node counts towards the domains when it has every
// constraint's key and, per the policies, matches the pod's node affinity
// and tolerates its taints.
func eligibleForSpread(pod *corev1.Pod, n *nodeInfo, cs []constraint) bool {
	for _, c := range cs {
		if _, ok := n.node.Labels[c.key]; !ok {
			return false
		}
	}
	for _, c := range cs {
		if c.honorAffinity && !NodeMatchesPod(pod, n.node) {
			return false
		}
		if c.honorTaints {
			if _, bad := untoleratedTaint(n.taints, pod.Spec.Tolerations); bad {
				return false
			}
		}
	}
	return true
}

func newSpreadState(c *cache, pi *podInfo, pool []*nodeInfo) *spreadState {
	cs := constraintsOf(pi.pod, corev1.DoNotSchedule)
	if len(cs) == 0 {
		return nil
	}
	s := &spreadState{pod: pi.pod, constraints: cs, counts: map[topoPair]int64{}, eligible: map[nodeKey]bool{}}
	for _, n := range pool {
		if !eligibleForSpread(pi.pod, n, cs) {
			continue
		}
		s.eligible[n.key] = true
		for _, c := range cs {
			p := topoPair{c.key, n.node.Labels[c.key]}
			if _, ok := s.counts[p]; !ok {
				s.counts[p] = 0
			}
		}
	}
	for _, p := range c.byNS[nsKey(pi.cluster, pi.pod.Namespace)] {
		s.update(c, p, 1)
	}
	return s
}

// update adds (1) or removes (-1) what pod p counts.
func (s *spreadState) update(c *cache, p *podInfo, sign int64) {
	if !s.eligible[p.node] || p.terminating() || p.pod.Namespace != s.pod.Namespace || p.uid == s.pod.UID {
		return
	}
	n := c.nodes[p.node]
	for _, cn := range s.constraints {
		if cn.sel.Matches(labels.Set(p.pod.Labels)) {
			s.counts[topoPair{cn.key, n.node.Labels[cn.key]}] += sign
			s.mins = nil
		}
	}
}

// minMatch is the smallest count among a constraint's domains, zero when
// there are fewer domains than minDomains.
func (s *spreadState) minMatch(cn *constraint) int64 {
	minv, domains := int64(math.MaxInt64), int64(0)
	for p, v := range s.counts {
		if p.key != cn.key {
			continue
		}
		domains++
		minv = min(minv, v)
	}
	if domains == 0 || domains < cn.minDomains {
		return 0
	}
	return minv
}

func (s *spreadState) check(node *corev1.Node) *status {
	if s.mins == nil {
		s.mins = make([]int64, len(s.constraints))
		for i := range s.constraints {
			s.mins[i] = s.minMatch(&s.constraints[i])
		}
	}
	for i := range s.constraints {
		cn := &s.constraints[i]
		v, ok := node.Labels[cn.key]
		if !ok {
			return unresolvable(reasonSpreadMissingLabel)
		}
		if s.counts[topoPair{cn.key, v}]+cn.selfMatch-s.mins[i] > cn.maxSkew {
			return unschedulable(reasonSpread)
		}
	}
	return nil
}

// spreadScores scores the feasible nodes for spreading, 0..100 each
// (more for fewer matching pods): by the pod's ScheduleAnyway constraints,
// or, for a pod with no constraints at all that has a controller, by how
// many pods of that controller are on the node and in its zone (zones
// weigh two thirds), as upstream's default spreading.
func spreadScores(c *cache, pi *podInfo, pool, feasible []*nodeInfo) []int64 {
	out := make([]int64, len(feasible))
	soft := constraintsOf(pi.pod, corev1.ScheduleAnyway)
	if len(soft) > 0 {
		return softSpreadScores(c, pi, soft, pool, feasible)
	}
	if len(pi.pod.Spec.TopologySpreadConstraints) > 0 || pi.owner == "" {
		return out
	}
	perNode := c.owners[pi.owner]
	var maxNode int64
	zones := map[string]int64{}
	for _, n := range pool {
		cnt := int64(perNode[n.key])
		if n.zone != "" {
			zones[n.zone] += cnt
		}
	}
	var maxZone int64
	for _, n := range feasible {
		maxNode = max(maxNode, int64(perNode[n.key]))
		if n.zone != "" {
			maxZone = max(maxZone, zones[n.zone])
		}
	}
	for i, n := range feasible {
		f := float64(100)
		if maxNode > 0 {
			f = 100 * float64(maxNode-int64(perNode[n.key])) / float64(maxNode)
		}
		if len(zones) > 0 && n.zone != "" {
			z := float64(100)
			if maxZone > 0 {
				z = 100 * float64(maxZone-zones[n.zone]) / float64(maxZone)
			}
			f = f/3 + 2*z/3
		}
		out[i] = int64(f)
	}
	return out
}

func softSpreadScores(c *cache, pi *podInfo, cs []constraint, pool, feasible []*nodeInfo) []int64 {
	counts := map[topoPair]int64{}
	domains := map[string]map[string]bool{}
	eligible := map[nodeKey]bool{}
	for _, n := range pool {
		if !eligibleForSpread(pi.pod, n, cs) {
			continue
		}
		eligible[n.key] = true
		for _, cn := range cs {
			d := domains[cn.key]
			if d == nil {
				d = map[string]bool{}
				domains[cn.key] = d
			}
			d[n.node.Labels[cn.key]] = true
		}
	}
	for _, p := range c.byNS[nsKey(pi.cluster, pi.pod.Namespace)] {
		if !eligible[p.node] || p.terminating() || p.uid == pi.uid {
			continue
		}
		n := c.nodes[p.node]
		for _, cn := range cs {
			if cn.sel.Matches(labels.Set(p.pod.Labels)) {
				counts[topoPair{cn.key, n.node.Labels[cn.key]}]++
			}
		}
	}
	raw := make([]float64, len(feasible))
	ignored := make([]bool, len(feasible))
	minS, maxS := math.MaxFloat64, 0.0
	for i, n := range feasible {
		for _, cn := range cs {
			v, ok := n.node.Labels[cn.key]
			if !ok {
				ignored[i] = true
				break
			}
			w := math.Log(float64(len(domains[cn.key]) + 2))
			raw[i] += float64(counts[topoPair{cn.key, v}]+cn.maxSkew-1) * w
		}
		if ignored[i] {
			continue
		}
		minS = min(minS, raw[i])
		maxS = max(maxS, raw[i])
	}
	out := make([]int64, len(feasible))
	for i := range feasible {
		switch {
		case ignored[i]:
			out[i] = 0
		case maxS == 0:
			out[i] = 100
		default:
			out[i] = int64(100 * (maxS + minS - raw[i]) / maxS)
		}
	}
	return out
}
