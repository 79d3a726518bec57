package scheduler

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// hardPodAffinityWeight is what an existing pod's required affinity to
// the incoming pod adds to a node's score (upstream's default).
const hardPodAffinityWeight = 1

// topoPair is a topology domain: a node label and its value.
type topoPair struct{ key, value string }

// nsLabels gives a namespace's labels (for namespace selectors).
type nsLabels func(cluster, ns string) map[string]string

// affTerm is a pod affinity term made ready to match pods of the cluster
// of the pod that has it.
type affTerm struct {
	sel        labels.Selector
	namespaces map[string]bool
	nsSel      labels.Selector // nil: only namespaces
	key        string
	weight     int64
}

func newAffTerm(owner *corev1.Pod, t *corev1.PodAffinityTerm, weight int32) affTerm {
	at := affTerm{sel: labelSelector(t.LabelSelector), key: t.TopologyKey, weight: int64(weight)}
	if t.LabelSelector != nil && (len(t.MatchLabelKeys) > 0 || len(t.MismatchLabelKeys) > 0) {
		sel := at.sel
		for _, k := range t.MatchLabelKeys {
			if v, ok := owner.Labels[k]; ok {
				if r, err := labels.NewRequirement(k, selection.In, []string{v}); err == nil {
					sel = sel.Add(*r)
				}
			}
		}
		for _, k := range t.MismatchLabelKeys {
			if v, ok := owner.Labels[k]; ok {
				if r, err := labels.NewRequirement(k, selection.NotIn, []string{v}); err == nil {
					sel = sel.Add(*r)
				}
			}
		}
		at.sel = sel
	}
	at.namespaces = map[string]bool{}
	for _, ns := range t.Namespaces {
		at.namespaces[ns] = true
	}
	if t.NamespaceSelector != nil {
		if s, err := metav1.LabelSelectorAsSelector(t.NamespaceSelector); err == nil {
			at.nsSel = s
		}
	} else if len(t.Namespaces) == 0 {
		at.namespaces[owner.Namespace] = true
	}
	return at
}

// matches: the term selects pod (of the same cluster).
func (t *affTerm) matches(pod *corev1.Pod, cluster string, nsl nsLabels) bool {
	if !t.namespaces[pod.Namespace] {
		if t.nsSel == nil {
			return false
		}
		if !t.nsSel.Empty() && (nsl == nil || !t.nsSel.Matches(labels.Set(nsl(cluster, pod.Namespace)))) {
			return false
		}
	}
	return t.sel.Matches(labels.Set(pod.Labels))
}

// podTerms are a pod's affinity terms, parsed.
type podTerms struct {
	affinity, antiAffinity         []affTerm // required
	prefAffinity, prefAntiAffinity []affTerm
}

func termsOf(pod *corev1.Pod) *podTerms {
	pt := &podTerms{}
	a := pod.Spec.Affinity
	if a == nil {
		return pt
	}
	if pa := a.PodAffinity; pa != nil {
		for i := range pa.RequiredDuringSchedulingIgnoredDuringExecution {
			pt.affinity = append(pt.affinity, newAffTerm(pod, &pa.RequiredDuringSchedulingIgnoredDuringExecution[i], 1))
		}
		for i := range pa.PreferredDuringSchedulingIgnoredDuringExecution {
			w := &pa.PreferredDuringSchedulingIgnoredDuringExecution[i]
			pt.prefAffinity = append(pt.prefAffinity, newAffTerm(pod, &w.PodAffinityTerm, w.Weight))
		}
	}
	if aa := a.PodAntiAffinity; aa != nil {
		for i := range aa.RequiredDuringSchedulingIgnoredDuringExecution {
			pt.antiAffinity = append(pt.antiAffinity, newAffTerm(pod, &aa.RequiredDuringSchedulingIgnoredDuringExecution[i], 1))
		}
		for i := range aa.PreferredDuringSchedulingIgnoredDuringExecution {
			w := &aa.PreferredDuringSchedulingIgnoredDuringExecution[i]
			pt.prefAntiAffinity = append(pt.prefAntiAffinity, newAffTerm(pod, &w.PodAffinityTerm, w.Weight))
		}
	}
	return pt
}

// affinityState is the required inter-pod affinity of one scheduling
// attempt: counts of matching pods per topology domain, as upstream's
// InterPodAffinity pre-filter keeps them.
type affinityState struct {
	pod     *corev1.Pod
	cluster string
	nsl     nsLabels
	terms   *podTerms

	existingAnti map[topoPair]int // existing pods' required anti-affinity that selects the pod
	affCounts    map[topoPair]int // pods matching all of the pod's required affinity terms
	antiCounts   map[topoPair]int // pods matching the pod's required anti-affinity terms
	selfMatchAll bool
}

// newAffinityState is nil when nothing is to be checked.
func newAffinityState(c *cache, pi *podInfo, nsl nsLabels) *affinityState {
	terms := pi.podTerms()
	anyExisting := false
	for _, p := range c.affinity[pi.cluster] {
		if p.hasAntiAffinity {
			anyExisting = true
			break
		}
	}
	if len(terms.affinity) == 0 && len(terms.antiAffinity) == 0 && !anyExisting {
		return nil
	}
	s := &affinityState{pod: pi.pod, cluster: pi.cluster, nsl: nsl, terms: terms,
		existingAnti: map[topoPair]int{}, affCounts: map[topoPair]int{}, antiCounts: map[topoPair]int{}}
	if len(terms.affinity) > 0 {
		s.selfMatchAll = true
		for i := range terms.affinity {
			if !terms.affinity[i].matches(pi.pod, pi.cluster, nsl) {
				s.selfMatchAll = false
			}
		}
	}
	if len(terms.affinity) > 0 || len(terms.antiAffinity) > 0 {
		for _, p := range c.byCluster[pi.cluster] {
			if n := c.nodes[p.node]; n != nil && n.node != nil && p.uid != pi.uid {
				s.update(p, n, 1)
			}
		}
	} else {
		for _, p := range c.affinity[pi.cluster] {
			if n := c.nodes[p.node]; n != nil && n.node != nil && p.hasAntiAffinity && p.uid != pi.uid {
				s.update(p, n, 1)
			}
		}
	}
	return s
}

// update adds (sign 1) or removes (-1) the counts an existing pod p on
// node n contributes.
func (s *affinityState) update(p *podInfo, n *nodeInfo, sign int) {
	nl := n.node.Labels
	if p.hasAntiAffinity {
		for _, t := range p.terms.antiAffinity {
			if v, ok := nl[t.key]; ok && t.matches(s.pod, s.cluster, s.nsl) {
				s.existingAnti[topoPair{t.key, v}] += sign
			}
		}
	}
	if len(s.terms.affinity) > 0 {
		all := true
		for i := range s.terms.affinity {
			if !s.terms.affinity[i].matches(p.pod, s.cluster, s.nsl) {
				all = false
				break
			}
		}
		if all {
			for _, t := range s.terms.affinity {
				if v, ok := nl[t.key]; ok {
					s.affCounts[topoPair{t.key, v}] += sign
				}
			}
		}
	}
	for i := range s.terms.antiAffinity {
		t := &s.terms.antiAffinity[i]
		if v, ok := nl[t.key]; ok && t.matches(p.pod, s.cluster, s.nsl) {
			s.antiCounts[topoPair{t.key, v}] += sign
		}
	}
	for k, v := range s.affCounts {
		if v <= 0 {
			delete(s.affCounts, k)
		}
	}
}

// check is the InterPodAffinity filter for node.
func (s *affinityState) check(node *corev1.Node) *status {
	if len(s.terms.affinity) > 0 {
		exist := true
		for _, t := range s.terms.affinity {
			v, ok := node.Labels[t.key]
			if !ok {
				return unresolvable(reasonAffinity)
			}
			if s.affCounts[topoPair{t.key, v}] <= 0 {
				exist = false
			}
		}
		if !exist && !(len(s.affCounts) == 0 && s.selfMatchAll) {
			return unresolvable(reasonAffinity)
		}
	}
	for _, t := range s.terms.antiAffinity {
		if v, ok := node.Labels[t.key]; ok && s.antiCounts[topoPair{t.key, v}] > 0 {
			return unschedulable(reasonAntiAffinity)
		}
	}
	if len(s.existingAnti) > 0 {
		for k, v := range node.Labels {
			if s.existingAnti[topoPair{k, v}] > 0 {
				return unschedulable(reasonExistingAntiAffinity)
			}
		}
	}
	return nil
}

// affinityScores are the raw InterPodAffinity scores by topology domain:
// the pod's preferred terms over existing pods, and existing pods'
// preferred (and required) terms over the pod. nil when nothing counts.
func affinityScores(c *cache, pi *podInfo, nsl nsLabels) map[string]map[string]int64 {
	terms := pi.podTerms()
	own := len(terms.prefAffinity) > 0 || len(terms.prefAntiAffinity) > 0
	if !own && len(c.affinity[pi.cluster]) == 0 {
		return nil
	}
	scores := map[string]map[string]int64{}
	add := func(key, value string, w int64) {
		m := scores[key]
		if m == nil {
			m = map[string]int64{}
			scores[key] = m
		}
		m[value] += w
	}
	visit := func(p *podInfo) {
		n := c.nodes[p.node]
		if n == nil || n.node == nil || p.uid == pi.uid {
			return
		}
		nl := n.node.Labels
		if own {
			for i := range terms.prefAffinity {
				t := &terms.prefAffinity[i]
				if v, ok := nl[t.key]; ok && t.matches(p.pod, pi.cluster, nsl) {
					add(t.key, v, t.weight)
				}
			}
			for i := range terms.prefAntiAffinity {
				t := &terms.prefAntiAffinity[i]
				if v, ok := nl[t.key]; ok && t.matches(p.pod, pi.cluster, nsl) {
					add(t.key, v, -t.weight)
				}
			}
		}
		if p.hasAffinity {
			et := p.terms
			for _, t := range et.affinity {
				if v, ok := nl[t.key]; ok && t.matches(pi.pod, pi.cluster, nsl) {
					add(t.key, v, hardPodAffinityWeight)
				}
			}
			for _, t := range et.prefAffinity {
				if v, ok := nl[t.key]; ok && t.matches(pi.pod, pi.cluster, nsl) {
					add(t.key, v, t.weight)
				}
			}
			for _, t := range et.prefAntiAffinity {
				if v, ok := nl[t.key]; ok && t.matches(pi.pod, pi.cluster, nsl) {
					add(t.key, v, -t.weight)
				}
			}
		}
	}
	if own {
		for _, p := range c.byCluster[pi.cluster] {
			visit(p)
		}
	} else {
		for _, p := range c.affinity[pi.cluster] {
			visit(p)
		}
	}
	if len(scores) == 0 {
		return nil
	}
	return scores
}

// podTerms are the pod's parsed affinity terms (none when it has none).
func (pi *podInfo) podTerms() *podTerms {
	if pi.terms == nil {
		return &podTerms{}
	}
	return pi.terms
}
