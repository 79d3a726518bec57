package scheduler

import (
	"fmt"
	"math"
	"sort"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// candidate is a node where the pod would fit once victims are gone.
type candidate struct {
	node          *nodeInfo
	victims       []*podInfo // most important first
	pdbViolations int
}

// pdbLister gives the PodDisruptionBudgets of a namespace.
type pdbLister func(cluster, ns string) []*policyv1.PodDisruptionBudget

// terminatingByPreemption: a pod being deleted because the scheduler
// preempted it.
func terminatingByPreemption(p *corev1.Pod) bool {
	if p.DeletionTimestamp == nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.DisruptionTarget {
			return c.Status == corev1.ConditionTrue && c.Reason == corev1.PodReasonPreemptionByScheduler
		}
	}
	return false
}

// preempt looks for a node where removing pods of lower priority lets the
// pod fit, as upstream's DefaultPreemption: it returns the chosen node and
// victims, or nil, and the message preemption adds to the pod's
// FailedScheduling message. Victims are only ever pods of the pod's own
// logical cluster: a tenant's priorities mean nothing to another's pods.
func (cy *cycle) preempt(fe *fitError, pdbs pdbLister) (*candidate, string) {
	pod := cy.pod
	if pod.Spec.PreemptionPolicy != nil && *pod.Spec.PreemptionPolicy == corev1.PreemptNever {
		return nil, "preemption: not eligible due to preemptionPolicy=Never."
	}
	if nn := pod.Status.NominatedNodeName; nn != "" {
		if st := fe.statuses[nn]; st == nil || st.code != codeUnresolvable {
			if n := cy.c.nodes[cy.c.nodeFor(cy.pi.cluster, nn)]; n != nil {
				for _, p := range n.pods {
					if p.priority < cy.pi.priority && terminatingByPreemption(p.pod) {
						return nil, "preemption: not eligible due to a terminating pod on the nominated node."
					}
				}
			}
		}
	}
	pe := &fitError{numAllNodes: len(cy.pool), statuses: map[string]*status{}, absentReason: reasonPreemptionNotHelpful}
	var cands []*candidate
	if fe.preFilterMsg == "" {
		for _, n := range cy.pool {
			st := fe.statuses[n.key.name]
			if st == nil || st.code != codeUnschedulable {
				continue
			}
			c, s := cy.dryRun(n, pdbs)
			if s != nil {
				pe.statuses[n.key.name] = s
				continue
			}
			cands = append(cands, c)
		}
	}
	if len(cands) == 0 {
		return nil, "preemption: " + pe.Error()
	}
	best := pickCandidate(cands)
	return best, fmt.Sprintf("preemption: found a potential placement for pod on node %v, preempting %d victims", best.node.key.name, len(best.victims))
}

// moreImportant orders victims: higher priority, then running longer.
func moreImportant(a, b *podInfo) bool {
	if a.priority != b.priority {
		return a.priority > b.priority
	}
	return a.startTime().Before(b.startTime())
}

// dryRun finds the fewest, least important victims on node n that make
// room for the pod: it takes every lower-priority pod off a copy of the
// node and then puts back as many as still leave room, most important
// first (PDB-protected ones before the rest).
func (cy *cycle) dryRun(n *nodeInfo, pdbs pdbLister) (*candidate, *status) {
	var potential []*podInfo
	for _, p := range n.pods {
		if p.priority < cy.pi.priority && p.cluster == cy.pi.cluster {
			potential = append(potential, p)
		}
	}
	if len(potential) == 0 {
		return nil, unresolvable(reasonNoVictims)
	}
	sim := n.simulated()
	removed := map[*podInfo]bool{}
	remove := func(p *podInfo) {
		sim.removePod(p)
		cy.stateUpdate(p, n, -1)
		removed[p] = true
	}
	add := func(p *podInfo) {
		sim.addPod(p)
		cy.stateUpdate(p, n, 1)
		delete(removed, p)
	}
	defer func() {
		for p := range removed {
			cy.stateUpdate(p, n, 1)
		}
	}()
	for _, p := range potential {
		remove(p)
	}
	if s := cy.filter(sim); s != nil {
		return nil, s
	}
	sort.Slice(potential, func(i, j int) bool { return moreImportant(potential[i], potential[j]) })
	var budgets []*policyv1.PodDisruptionBudget
	if pdbs != nil {
		budgets = pdbs(cy.pi.cluster, "")
	}
	violating, nonViolating := splitByPDB(potential, budgets)
	c := &candidate{node: n}
	reprieve := func(p *podInfo) bool {
		add(p)
		if cy.filter(sim) != nil {
			remove(p)
			c.victims = append(c.victims, p)
			return false
		}
		return true
	}
	for _, p := range violating {
		if !reprieve(p) {
			c.pdbViolations++
		}
	}
	for _, p := range nonViolating {
		reprieve(p)
	}
	sort.SliceStable(c.victims, func(i, j int) bool { return moreImportant(c.victims[i], c.victims[j]) })
	return c, nil
}

// stateUpdate keeps the pre-filters' counts right as pods come off and
// go back on a node during preemption.
func (cy *cycle) stateUpdate(p *podInfo, n *nodeInfo, sign int) {
	if cy.aff != nil && n.node != nil {
		cy.aff.update(p, n, sign)
	}
	if cy.spread != nil {
		cy.spread.update(cy.c, p, int64(sign))
	}
}

// splitByPDB: pods whose eviction would break a PodDisruptionBudget, and
// the rest.
func splitByPDB(pods []*podInfo, pdbs []*policyv1.PodDisruptionBudget) (violating, ok []*podInfo) {
	allowed := make([]int32, len(pdbs))
	sels := make([]labels.Selector, len(pdbs))
	for i, b := range pdbs {
		allowed[i] = b.Status.DisruptionsAllowed
		if s, err := metav1.LabelSelectorAsSelector(b.Spec.Selector); err == nil && !s.Empty() {
			sels[i] = s
		}
	}
	for _, p := range pods {
		bad := false
		for i, b := range pdbs {
			if sels[i] == nil || b.Namespace != p.pod.Namespace || !sels[i].Matches(labels.Set(p.pod.Labels)) {
				continue
			}
			if _, gone := b.Status.DisruptedPods[p.pod.Name]; gone {
				continue
			}
			allowed[i]--
			if allowed[i] < 0 {
				bad = true
			}
		}
		if bad {
			violating = append(violating, p)
		} else {
			ok = append(ok, p)
		}
	}
	return violating, ok
}

// pickCandidate chooses as upstream: fewest PDB violations, then the
// lowest highest-priority victim, the smallest sum of priorities, the
// fewest victims, the latest start among the most important victims.
func pickCandidate(cs []*candidate) *candidate {
	sum := func(c *candidate) int64 {
		var s int64
		for _, v := range c.victims {
			s += int64(v.priority) + math.MaxInt32 + 1
		}
		return s
	}
	highest := func(c *candidate) int64 {
		if len(c.victims) == 0 {
			return math.MinInt64
		}
		return int64(c.victims[0].priority)
	}
	earliest := func(c *candidate) int64 {
		if len(c.victims) == 0 {
			return math.MaxInt64
		}
		top := c.victims[0].priority
		e := int64(math.MaxInt64)
		for _, v := range c.victims {
			if v.priority == top {
				e = min(e, v.startTime().UnixNano())
			}
		}
		return e
	}
	best := cs[0]
	for _, c := range cs[1:] {
		switch {
		case c.pdbViolations != best.pdbViolations:
			if c.pdbViolations < best.pdbViolations {
				best = c
			}
		case highest(c) != highest(best):
			if highest(c) < highest(best) {
				best = c
			}
		case sum(c) != sum(best):
			if sum(c) < sum(best) {
				best = c
			}
		case len(c.victims) != len(best.victims):
			if len(c.victims) < len(best.victims) {
				best = c
			}
		case earliest(c) > earliest(best):
			best = c
		}
	}
	return best
}
