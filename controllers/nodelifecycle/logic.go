package nodelifecycle

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
)

// The conditions a node's agent reports, which become Unknown when it
// falls silent.
var agentConditions = []corev1.NodeConditionType{
	corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure,
}

func condition(node *corev1.Node, t corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == t {
			return &node.Status.Conditions[i]
		}
	}
	return nil
}

// needsUnknown: the node's Ready condition is not Unknown yet.
func needsUnknown(node *corev1.Node) bool {
	c := condition(node, corev1.NodeReady)
	return c == nil || c.Status != corev1.ConditionUnknown
}

// setUnknown sets the agent's conditions to Unknown, as upstream does when
// the kubelet stops posting status.
func setUnknown(node *corev1.Node, now metav1.Time) {
	for _, t := range agentConditions {
		c := condition(node, t)
		if c == nil {
			node.Status.Conditions = append(node.Status.Conditions, corev1.NodeCondition{
				Type: t, Status: corev1.ConditionUnknown,
				Reason: "NodeStatusNeverUpdated", Message: "Kubelet never posted node status.",
				LastHeartbeatTime: node.CreationTimestamp, LastTransitionTime: now,
			})
			continue
		}
		if c.Status != corev1.ConditionUnknown {
			c.Status = corev1.ConditionUnknown
			c.LastTransitionTime = now
		}
		c.Reason = "NodeStatusUnknown"
		c.Message = "Kubelet stopped posting node status."
	}
}

type taintID struct {
	key    string
	effect corev1.TaintEffect
}

// managed are the taints this controller adds and removes.
var managed = map[taintID]bool{
	{corev1.TaintNodeNotReady, corev1.TaintEffectNoSchedule}:           true,
	{corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute}:            true,
	{corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule}:        true,
	{corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute}:         true,
	{corev1.TaintNodeMemoryPressure, corev1.TaintEffectNoSchedule}:     true,
	{corev1.TaintNodeDiskPressure, corev1.TaintEffectNoSchedule}:       true,
	{corev1.TaintNodePIDPressure, corev1.TaintEffectNoSchedule}:        true,
	{corev1.TaintNodeNetworkUnavailable, corev1.TaintEffectNoSchedule}: true,
	{corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule}:      true,
}

// wantedTaints are the managed taints the node's conditions call for.
func wantedTaints(node *corev1.Node) map[taintID]bool {
	w := map[taintID]bool{}
	if c := condition(node, corev1.NodeReady); c != nil {
		switch c.Status {
		case corev1.ConditionFalse:
			w[taintID{corev1.TaintNodeNotReady, corev1.TaintEffectNoSchedule}] = true
			w[taintID{corev1.TaintNodeNotReady, corev1.TaintEffectNoExecute}] = true
		case corev1.ConditionUnknown:
			w[taintID{corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule}] = true
			w[taintID{corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute}] = true
		}
	}
	for t, key := range map[corev1.NodeConditionType]string{
		corev1.NodeMemoryPressure:     corev1.TaintNodeMemoryPressure,
		corev1.NodeDiskPressure:       corev1.TaintNodeDiskPressure,
		corev1.NodePIDPressure:        corev1.TaintNodePIDPressure,
		corev1.NodeNetworkUnavailable: corev1.TaintNodeNetworkUnavailable,
	} {
		if c := condition(node, t); c != nil && c.Status == corev1.ConditionTrue {
			w[taintID{key, corev1.TaintEffectNoSchedule}] = true
		}
	}
	if node.Spec.Unschedulable {
		w[taintID{corev1.TaintNodeUnschedulable, corev1.TaintEffectNoSchedule}] = true
	}
	return w
}

// reconcileTaints is taints with the managed ones as wanted: others kept
// in place, wanted ones kept (with their time) or added (NoExecute ones
// stamped with now), unwanted managed ones dropped.
func reconcileTaints(taints []corev1.Taint, wanted map[taintID]bool, now time.Time) ([]corev1.Taint, bool) {
	var out []corev1.Taint
	have := map[taintID]bool{}
	changed := false
	for _, t := range taints {
		id := taintID{t.Key, t.Effect}
		if managed[id] && !wanted[id] {
			changed = true
			continue
		}
		if have[id] {
			changed = true
			continue
		}
		have[id] = true
		out = append(out, t)
	}
	for _, id := range sortedIDs(wanted) {
		if have[id] {
			continue
		}
		t := corev1.Taint{Key: id.key, Effect: id.effect}
		if id.effect == corev1.TaintEffectNoExecute {
			at := metav1.NewTime(now)
			t.TimeAdded = &at
		}
		out = append(out, t)
		changed = true
	}
	return out, changed
}

func sortedIDs(m map[taintID]bool) []taintID {
	var ids []taintID
	for id := range m {
		ids = append(ids, id)
	}
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && less(ids[j], ids[j-1]); j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
	return ids
}

func less(a, b taintID) bool {
	if a.key != b.key {
		return a.key < b.key
	}
	return a.effect < b.effect
}

func noExecute(taints []corev1.Taint) []corev1.Taint {
	var out []corev1.Taint
	for _, t := range taints {
		if t.Effect == corev1.TaintEffectNoExecute {
			out = append(out, t)
		}
	}
	return out
}

func taintsEqual(a, b []corev1.Taint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].Value != b[i].Value || a[i].Effect != b[i].Effect {
			return false
		}
	}
	return true
}

func tolerationsEqual(a, b []corev1.Toleration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if !x.MatchToleration(&y) {
			return false
		}
		if (x.TolerationSeconds == nil) != (y.TolerationSeconds == nil) ||
			(x.TolerationSeconds != nil && *x.TolerationSeconds != *y.TolerationSeconds) {
			return false
		}
	}
	return true
}

// evictionTime is when a pod with tolerations must leave a node with the
// NoExecute taints: at once if one taint is not tolerated, else when the
// shortest tolerationSeconds among the tolerations used has passed since
// start (when the taints were seen); evict false when it may stay for
// good.
func evictionTime(tolerations []corev1.Toleration, taints []corev1.Taint, start, now time.Time) (time.Time, bool) {
	if len(taints) == 0 {
		return time.Time{}, false
	}
	minSecs := int64(-1)
	for i := range taints {
		taint := &taints[i]
		tolerated := false
		for j := range tolerations {
			tol := &tolerations[j]
			if !tol.ToleratesTaint(klog.Background(), taint, false) {
				continue
			}
			tolerated = true
			if tol.TolerationSeconds != nil {
				s := max(*tol.TolerationSeconds, 0)
				if minSecs < 0 || s < minSecs {
					minSecs = s
				}
			}
		}
		if !tolerated {
			return now, true
		}
	}
	if minSecs < 0 {
		return time.Time{}, false
	}
	if start.IsZero() || start.After(now) {
		start = now
	}
	return start.Add(time.Duration(minSecs) * time.Second), true
}

// setCondition adds or replaces a pod condition; false when it was
// already there with that status and reason.
func setCondition(st *corev1.PodStatus, c corev1.PodCondition) bool {
	for i := range st.Conditions {
		if st.Conditions[i].Type != c.Type {
			continue
		}
		if st.Conditions[i].Status == c.Status && st.Conditions[i].Reason == c.Reason {
			return false
		}
		st.Conditions[i] = c
		return true
	}
	st.Conditions = append(st.Conditions, c)
	return true
}
