package scheduler

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Taints the node lifecycle controller puts on nodes that are not ready or
// not heard from; the scheduler acts as if a node had them whenever its
// Ready condition says so and they are not there yet.
const (
	taintNotReady      = "node.kubernetes.io/not-ready"
	taintUnreachable   = "node.kubernetes.io/unreachable"
	taintUnschedulable = "node.kubernetes.io/unschedulable"
)

// matchNodeSelectorTerms: terms are ORed, the requirements of a term ANDed;
// an empty term matches nothing, as upstream.
func matchNodeSelectorTerms(node *corev1.Node, terms []corev1.NodeSelectorTerm) bool {
	for i := range terms {
		if matchNodeSelectorTerm(node, &terms[i]) {
			return true
		}
	}
	return false
}

func matchNodeSelectorTerm(node *corev1.Node, t *corev1.NodeSelectorTerm) bool {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		return false
	}
	for i := range t.MatchExpressions {
		r := &t.MatchExpressions[i]
		v, has := node.Labels[r.Key]
		if !matchRequirement(r, v, has) {
			return false
		}
	}
	for i := range t.MatchFields {
		r := &t.MatchFields[i]
		if r.Key != metav1.ObjectNameField {
			return false
		}
		if !matchRequirement(r, node.Name, true) {
			return false
		}
	}
	return true
}

func matchRequirement(r *corev1.NodeSelectorRequirement, v string, has bool) bool {
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		if !has {
			return false
		}
		for _, x := range r.Values {
			if x == v {
				return true
			}
		}
		return false
	case corev1.NodeSelectorOpNotIn:
		if !has {
			return true
		}
		for _, x := range r.Values {
			if x == v {
				return false
			}
		}
		return true
	case corev1.NodeSelectorOpExists:
		return has
	case corev1.NodeSelectorOpDoesNotExist:
		return !has
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !has || len(r.Values) != 1 {
			return false
		}
		a, err1 := strconv.ParseInt(v, 10, 64)
		b, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if r.Operator == corev1.NodeSelectorOpGt {
			return a > b
		}
		return a < b
	}
	return false
}

// NodeMatchesPod tells whether the pod's nodeSelector and required node
// affinity select node (the DaemonSet controller asks it too).
func NodeMatchesPod(pod *corev1.Pod, node *corev1.Node) bool {
	for k, v := range pod.Spec.NodeSelector {
		if nv, ok := node.Labels[k]; !ok || nv != v {
			return false
		}
	}
	if a := pod.Spec.Affinity; a != nil && a.NodeAffinity != nil {
		if req := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution; req != nil {
			return matchNodeSelectorTerms(node, req.NodeSelectorTerms)
		}
	}
	return true
}

// preferredNodeAffinity is the sum of the weights of the pod's preferred
// node affinity terms the node matches.
func preferredNodeAffinity(pod *corev1.Pod, node *corev1.Node) int64 {
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil {
		return 0
	}
	var s int64
	for i := range a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
		t := &a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution[i]
		if t.Weight != 0 && matchNodeSelectorTerm(node, &t.Preference) {
			s += int64(t.Weight)
		}
	}
	return s
}

// tolerates is upstream's Toleration.ToleratesTaint: an empty effect
// matches every effect, an empty key with Exists matches every key.
func tolerates(t *corev1.Toleration, taint *corev1.Taint) bool {
	if t.Effect != "" && t.Effect != taint.Effect {
		return false
	}
	if t.Key != "" && t.Key != taint.Key {
		return false
	}
	switch t.Operator {
	case "", corev1.TolerationOpEqual:
		return t.Value == taint.Value
	case corev1.TolerationOpExists:
		return true
	case corev1.TolerationOpGt, corev1.TolerationOpLt:
		a, err1 := strconv.ParseInt(taint.Value, 10, 64)
		b, err2 := strconv.ParseInt(t.Value, 10, 64)
		if err1 != nil || err2 != nil {
			return false
		}
		if t.Operator == corev1.TolerationOpGt {
			return a > b
		}
		return a < b
	}
	return false
}

func toleratedBy(tols []corev1.Toleration, taint *corev1.Taint) bool {
	for i := range tols {
		if tolerates(&tols[i], taint) {
			return true
		}
	}
	return false
}

// untoleratedTaint is the first of taints with effect NoSchedule or
// NoExecute the pod does not tolerate.
func untoleratedTaint(taints []corev1.Taint, tols []corev1.Toleration) (*corev1.Taint, bool) {
	for i := range taints {
		t := &taints[i]
		if t.Effect != corev1.TaintEffectNoSchedule && t.Effect != corev1.TaintEffectNoExecute {
			continue
		}
		if !toleratedBy(tols, t) {
			return t, true
		}
	}
	return nil, false
}

// intolerablePreferNoSchedule counts the PreferNoSchedule taints the pod
// does not tolerate.
func intolerablePreferNoSchedule(taints []corev1.Taint, tols []corev1.Toleration) int64 {
	var n int64
	for i := range taints {
		t := &taints[i]
		if t.Effect != corev1.TaintEffectPreferNoSchedule {
			continue
		}
		// Only tolerations that name this effect or none count.
		ok := false
		for j := range tols {
			if (tols[j].Effect == "" || tols[j].Effect == corev1.TaintEffectPreferNoSchedule) && tolerates(&tols[j], t) {
				ok = true
				break
			}
		}
		if !ok {
			n++
		}
	}
	return n
}

func taintReason(t *corev1.Taint) string {
	return fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)
}

// effectiveTaints are a node's taints plus those the node lifecycle
// controller would add for its Ready condition, when missing.
func effectiveTaints(node *corev1.Node) []corev1.Taint {
	var extra *corev1.Taint
	status := corev1.ConditionUnknown
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			status = c.Status
		}
	}
	switch status {
	case corev1.ConditionTrue:
	case corev1.ConditionFalse:
		extra = &corev1.Taint{Key: taintNotReady, Effect: corev1.TaintEffectNoSchedule}
	default:
		extra = &corev1.Taint{Key: taintUnreachable, Effect: corev1.TaintEffectNoSchedule}
	}
	if extra == nil {
		return node.Spec.Taints
	}
	for _, t := range node.Spec.Taints {
		if t.Key == taintNotReady || t.Key == taintUnreachable {
			return node.Spec.Taints
		}
	}
	out := make([]corev1.Taint, 0, len(node.Spec.Taints)+1)
	out = append(out, node.Spec.Taints...)
	return append(out, *extra)
}

// unschedulableNode: cordoned, and the pod does not tolerate it.
func unschedulableNode(pod *corev1.Pod, node *corev1.Node) bool {
	if !node.Spec.Unschedulable {
		return false
	}
	return !toleratedBy(pod.Spec.Tolerations, &corev1.Taint{Key: taintUnschedulable, Effect: corev1.TaintEffectNoSchedule})
}

// labelSelector converts an API selector; a nil selector matches nothing,
// as in pod affinity terms and topology spread constraints.
func labelSelector(s *metav1.LabelSelector) labels.Selector {
	if s == nil {
		return labels.Nothing()
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return labels.Nothing()
	}
	return sel
}

// hostPort is one port a pod takes on its node's addresses.
type hostPort struct {
	ip       string // "0.0.0.0" for all
	protocol corev1.Protocol
	port     int32
}

func podHostPorts(pod *corev1.Pod) []hostPort {
	var out []hostPort
	add := func(cs []corev1.Container) {
		for i := range cs {
			for _, p := range cs[i].Ports {
				if p.HostPort <= 0 {
					continue
				}
				hp := hostPort{ip: p.HostIP, protocol: p.Protocol, port: p.HostPort}
				if hp.ip == "" {
					hp.ip = "0.0.0.0"
				}
				if hp.protocol == "" {
					hp.protocol = corev1.ProtocolTCP
				}
				out = append(out, hp)
			}
		}
	}
	add(pod.Spec.Containers)
	add(pod.Spec.InitContainers)
	return out
}

// portsConflict: a wanted port clashes with one in use on the same
// protocol and number when either is on every address or both on the same.
func portsConflict(want []hostPort, used map[hostPort]int) bool {
	for _, w := range want {
		if w.ip == "0.0.0.0" {
			for u, n := range used {
				if n > 0 && u.protocol == w.protocol && u.port == w.port {
					return true
				}
			}
			continue
		}
		if used[w] > 0 || used[hostPort{ip: "0.0.0.0", protocol: w.protocol, port: w.port}] > 0 {
			return true
		}
	}
	return false
}
