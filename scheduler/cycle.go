package scheduler

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Reasons a node does not fit, in upstream's words.
const (
	reasonUnschedulable        = "node(s) were unschedulable"
	reasonNodeAffinity         = "node(s) didn't match Pod's node affinity/selector"
	reasonPorts                = "node(s) didn't have free ports for the requested pod ports"
	reasonAffinity             = "node(s) didn't match pod affinity rules"
	reasonAntiAffinity         = "node(s) didn't match pod anti-affinity rules"
	reasonExistingAntiAffinity = "node(s) didn't satisfy existing pods anti-affinity rules"
	reasonSpread               = "node(s) didn't match pod topology spread constraints"
	reasonSpreadMissingLabel   = reasonSpread + " (missing required label)"
	reasonPVNotExist           = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
	reasonVolumeNodeConflict   = "node(s) didn't match PersistentVolume's node affinity"
	reasonVolumeBindConflict   = "node(s) didn't find available persistent volumes to bind"

	reasonPreemptionNotHelpful = "Preemption is not helpful for scheduling"
	reasonNoVictims            = "No preemption victims found for incoming pod"

	msgNoNodes = "no nodes available to schedule pods"
)

// code says whether preemption could help a node that does not fit.
type code int

const (
	codeUnschedulable code = iota + 1 // removing pods may help
	codeUnresolvable                  // nothing on the node is in the way
)

// status is why a node does not fit a pod.
type status struct {
	code    code
	reasons []string
}

func unschedulable(r ...string) *status { return &status{code: codeUnschedulable, reasons: r} }
func unresolvable(r ...string) *status  { return &status{code: codeUnresolvable, reasons: r} }

// fitError is a pod that fits no node: upstream's FitError, whose message
// is what FailedScheduling events and the PodScheduled condition say.
type fitError struct {
	numAllNodes   int
	preFilterMsg  string
	statuses      map[string]*status // by node name
	absentReason  string             // for nodes without a status
	postFilterMsg string
}

// Error is "0/N nodes are available: " and either the pre-filter's
// message or counts of each reason, sorted, then what preemption said.
func (f *fitError) Error() string {
	msg := fmt.Sprintf("0/%d nodes are available:", f.numAllNodes)
	if f.preFilterMsg != "" {
		msg += " " + f.preFilterMsg + "."
	} else {
		counts := map[string]int{}
		for _, s := range f.statuses {
			for _, r := range s.reasons {
				counts[r]++
			}
		}
		if f.absentReason != "" && len(f.statuses) < f.numAllNodes {
			counts[f.absentReason] += f.numAllNodes - len(f.statuses)
		}
		if len(counts) > 0 {
			parts := make([]string, 0, len(counts))
			for r, n := range counts {
				parts = append(parts, fmt.Sprintf("%d %s", n, r))
			}
			sort.Strings(parts)
			msg += " " + strings.Join(parts, ", ") + "."
		}
	}
	if f.postFilterMsg != "" {
		msg += " " + f.postFilterMsg
	}
	return msg
}

// cycle is one attempt to place one pod: what the pre-filters computed.
type cycle struct {
	c       *cache
	pi      *podInfo
	pod     *corev1.Pod
	pool    []*nodeInfo
	nsl     nsLabels
	aff     *affinityState
	spread  *spreadState
	volumes *volumeState
}

// newCycle runs the pre-filters; a message means no node can do.
func newCycle(c *cache, pi *podInfo, nsl nsLabels, vl volumeLister) (*cycle, string) {
	cy := &cycle{c: c, pi: pi, pod: pi.pod, pool: c.pool(pi.cluster), nsl: nsl}
	var msg string
	cy.volumes, msg = newVolumeState(vl, pi.cluster, pi.pod)
	if msg != "" {
		return cy, msg
	}
	cy.aff = newAffinityState(c, pi, nsl)
	cy.spread = newSpreadState(c, pi, cy.pool)
	return cy, ""
}

// filter checks the pod against one node, in upstream's plugin order,
// stopping at the first that fails.
func (cy *cycle) filter(n *nodeInfo) *status {
	pod, node := cy.pod, n.node
	if unschedulableNode(pod, node) {
		return unresolvable(reasonUnschedulable)
	}
	if t, bad := untoleratedTaint(n.taints, pod.Spec.Tolerations); bad {
		return unresolvable(taintReason(t))
	}
	if !NodeMatchesPod(pod, node) {
		return unresolvable(reasonNodeAffinity)
	}
	if len(cy.pi.ports) > 0 && portsConflict(cy.pi.ports, n.ports) {
		return unschedulable(reasonPorts)
	}
	used, count := &n.requested, int64(len(n.pods))
	if len(cy.c.nominated) > 0 {
		if extra, k, ok := cy.c.nominatedOn(n.key, cy.pi.priority, cy.pi.uid); ok {
			sum := n.requested.clone()
			sum.add(&extra, 1)
			used, count = &sum, count+k
		}
	}
	if reasons, unres := insufficient(&cy.pi.req, &n.alloc, n.allowedPods, used, count); len(reasons) > 0 {
		if unres {
			return unresolvable(reasons...)
		}
		return unschedulable(reasons...)
	}
	if cy.volumes != nil {
		if s := cy.volumes.check(node); s != nil {
			return s
		}
	}
	if cy.spread != nil {
		if s := cy.spread.check(node); s != nil {
			return s
		}
	}
	if cy.aff != nil {
		if s := cy.aff.check(node); s != nil {
			return s
		}
	}
	return nil
}

// schedule finds the best node for the pod, or says why there is none.
// The nominated node, when the pod has one and it fits, is taken at once.
func (cy *cycle) schedule(preFilterMsg string) (*nodeInfo, *fitError) {
	if len(cy.pool) == 0 {
		return nil, nil
	}
	fe := &fitError{numAllNodes: len(cy.pool), statuses: map[string]*status{}}
	if preFilterMsg != "" {
		fe.preFilterMsg = preFilterMsg
		return nil, fe
	}
	if nn := cy.pod.Status.NominatedNodeName; nn != "" {
		if n := cy.c.nodes[cy.c.nodeFor(cy.pi.cluster, nn)]; n != nil && n.node != nil && cy.filter(n) == nil {
			return n, nil
		}
	}
	feasible := make([]*nodeInfo, 0, len(cy.pool))
	for _, n := range cy.pool {
		if s := cy.filter(n); s != nil {
			fe.statuses[n.key.name] = s
			continue
		}
		feasible = append(feasible, n)
	}
	if len(feasible) == 0 {
		return nil, fe
	}
	if len(feasible) == 1 {
		return feasible[0], nil
	}
	scores := cy.score(feasible)
	best, ties := -1, 0
	for i := range feasible {
		switch {
		case best < 0 || scores[i] > scores[best]:
			best, ties = i, 1
		case scores[i] == scores[best]:
			// Reservoir sampling: each of the tied nodes equally likely.
			ties++
			if rand.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return feasible[best], nil
}

// Weights of the scores, upstream's defaults.
const (
	weightTaints         = 3
	weightNodeAffinity   = 2
	weightPodAffinity    = 2
	weightSpread         = 2
	weightLeastAllocated = 1
	weightBalancedAlloc  = 1
	maxNodeScore         = 100
)

// score rates feasible nodes: least allocated and balanced allocation of
// cpu and memory, preferred node affinity, preferred inter-pod affinity,
// spreading, and PreferNoSchedule taints; each 0..100 times its weight.
func (cy *cycle) score(feasible []*nodeInfo) []int64 {
	pi := cy.pi
	total := make([]int64, len(feasible))
	raw := make([]int64, len(feasible))

	for i, n := range feasible {
		total[i] += weightLeastAllocated * leastAllocated(n, pi)
		total[i] += weightBalancedAlloc * balancedAllocation(n, pi)
	}

	// Preferred node affinity, normalised to the best node.
	var maxAff int64
	for i, n := range feasible {
		raw[i] = preferredNodeAffinity(pi.pod, n.node)
		maxAff = max(maxAff, raw[i])
	}
	if maxAff > 0 {
		for i := range feasible {
			total[i] += weightNodeAffinity * raw[i] * maxNodeScore / maxAff
		}
	}

	// PreferNoSchedule taints: fewer is better.
	var maxTaints int64
	for i, n := range feasible {
		raw[i] = intolerablePreferNoSchedule(n.taints, pi.pod.Spec.Tolerations)
		maxTaints = max(maxTaints, raw[i])
	}
	for i := range feasible {
		s := int64(maxNodeScore)
		if maxTaints > 0 {
			s = maxNodeScore - raw[i]*maxNodeScore/maxTaints
		}
		total[i] += weightTaints * s
	}

	// Inter-pod affinity.
	if scores := affinityScores(cy.c, pi, cy.nsl); scores != nil {
		minS, maxS := int64(1<<62), int64(-1<<62)
		for i, n := range feasible {
			var s int64
			for key, vals := range scores {
				if v, ok := n.node.Labels[key]; ok {
					s += vals[v]
				}
			}
			raw[i] = s
			minS, maxS = min(minS, s), max(maxS, s)
		}
		if maxS > minS {
			for i := range feasible {
				total[i] += weightPodAffinity * (raw[i] - minS) * maxNodeScore / (maxS - minS)
			}
		}
	}

	for i, s := range spreadScores(cy.c, pi, cy.pool, feasible) {
		total[i] += weightSpread * s
	}
	return total
}

// leastAllocated favours nodes with more cpu and memory left, counting
// the defaults for pods that request nothing.
func leastAllocated(n *nodeInfo, pi *podInfo) int64 {
	f := func(req, alloc int64) int64 {
		if alloc == 0 || req > alloc {
			return 0
		}
		return (alloc - req) * maxNodeScore / alloc
	}
	return (f(n.nzMilliCPU+pi.nzCPU, n.alloc.milliCPU) + f(n.nzMemory+pi.nzMemory, n.alloc.memory)) / 2
}

// balancedAllocation favours nodes whose cpu and memory would be used in
// the same proportion.
func balancedAllocation(n *nodeInfo, pi *podInfo) int64 {
	if pi.req.milliCPU == 0 && pi.req.memory == 0 {
		return 0
	}
	frac := func(req, alloc int64) float64 {
		if alloc == 0 {
			return 1
		}
		return min(float64(req)/float64(alloc), 1)
	}
	c := frac(n.requested.milliCPU+pi.req.milliCPU, n.alloc.milliCPU)
	m := frac(n.requested.memory+pi.req.memory, n.alloc.memory)
	d := c - m
	if d < 0 {
		d = -d
	}
	return int64((1 - d/2) * maxNodeScore)
}
