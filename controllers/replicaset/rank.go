package replicaset

import (
	"math"
	"sort"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PodDeletionCostAnnotation lowers (or raises) a pod's value when a
// controller picks pods to delete, as upstream's.
const PodDeletionCostAnnotation = "controller.kubernetes.io/pod-deletion-cost"

// phaseOrder: pending pods go before unknown ones, before running ones.
func phaseOrder(p corev1.PodPhase) int {
	switch p {
	case corev1.PodPending:
		return 0
	case corev1.PodUnknown:
		return 1
	case corev1.PodRunning:
		return 2
	}
	return 0 // no phase yet: as pending
}

func deletionCost(p *corev1.Pod) int64 {
	v, ok := p.Annotations[PodDeletionCostAnnotation]
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0
	}
	return n
}

// restarts returns the highest restart count of the regular containers
// and of the sidecars (restartable init containers).
func restarts(p *corev1.Pod) (regular, sidecar int32) {
	for _, c := range p.Status.ContainerStatuses {
		regular = max(regular, c.RestartCount)
	}
	sidecars := map[string]bool{}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars[c.Name] = true
		}
	}
	for _, c := range p.Status.InitContainerStatuses {
		if sidecars[c.Name] {
			sidecar = max(sidecar, c.RestartCount)
		}
	}
	return
}

// logBucket puts an age on a base-2 logarithmic scale so that pods of
// similar age compare equal (and are then ordered by uid) rather than by
// the nanosecond.
func logBucket(t, now time.Time) int64 {
	d := now.Sub(t)
	if d <= 0 {
		return -1
	}
	return int64(math.Log2(float64(d)))
}

// ranked is one pod and the number of the controller's active pods on its
// node (pods that double up on a node go first).
type ranked struct {
	pod        *corev1.Pod
	colocated  int
	ready      bool
	readySince metav1.Time
}

// lessValuable reports whether a should be deleted before b.
func lessValuable(a, b *ranked, now time.Time) bool {
	pa, pb := a.pod, b.pod
	// Unscheduled before scheduled.
	if (pa.Spec.NodeName == "") != (pb.Spec.NodeName == "") {
		return pa.Spec.NodeName == ""
	}
	// Pending < Unknown < Running.
	if oa, ob := phaseOrder(pa.Status.Phase), phaseOrder(pb.Status.Phase); oa != ob {
		return oa < ob
	}
	// Not ready before ready.
	if a.ready != b.ready {
		return !a.ready
	}
	// Lower deletion cost first.
	if ca, cb := deletionCost(pa), deletionCost(pb); ca != cb {
		return ca < cb
	}
	// More of our pods on the same node first.
	if a.colocated != b.colocated {
		return a.colocated > b.colocated
	}
	// Ready for less time first.
	if a.ready && b.ready && !a.readySince.Equal(&b.readySince) {
		if r, decided := newerFirst(a.readySince.Time, b.readySince.Time, pa, pb, now); decided {
			return r
		}
	}
	// More restarts first.
	ra, sa := restarts(pa)
	rb, sb := restarts(pb)
	if ra != rb {
		return ra > rb
	}
	if sa != sb {
		return sa > sb
	}
	// Newer first.
	if !pa.CreationTimestamp.Equal(&pb.CreationTimestamp) {
		if r, decided := newerFirst(pa.CreationTimestamp.Time, pb.CreationTimestamp.Time, pa, pb, now); decided {
			return r
		}
	}
	return false
}

// newerFirst orders by time, later (or unknown) first, comparing ages in
// logarithmic buckets and breaking ties by uid.
func newerFirst(ta, tb time.Time, pa, pb *corev1.Pod, now time.Time) (bool, bool) {
	if ta.IsZero() || tb.IsZero() || now.IsZero() {
		if ta.IsZero() || tb.IsZero() {
			return ta.IsZero(), true
		}
		return ta.After(tb), true
	}
	if d := logBucket(ta, now) - logBucket(tb, now); d != 0 {
		return d < 0, true
	}
	return pa.UID < pb.UID, true
}

// PodsToDelete picks n of pods, the least valuable first. related are the
// active pods of the controller and its siblings (the ReplicaSets of the
// same Deployment), used to prefer pods doubled up on a node.
func PodsToDelete(pods, related []*corev1.Pod, n int, now time.Time) []*corev1.Pod {
	if n >= len(pods) {
		return append([]*corev1.Pod(nil), pods...)
	}
	onNode := map[string]int{}
	for _, p := range related {
		if IsPodActive(p) {
			onNode[p.Spec.NodeName]++
		}
	}
	rs := make([]*ranked, len(pods))
	for i, p := range pods {
		rs[i] = &ranked{pod: p, colocated: onNode[p.Spec.NodeName], ready: IsPodReady(p), readySince: podReadyTime(p)}
	}
	sort.SliceStable(rs, func(i, j int) bool { return lessValuable(rs[i], rs[j], now) })
	out := make([]*corev1.Pod, n)
	for i := range out {
		out[i] = rs[i].pod
	}
	return out
}
