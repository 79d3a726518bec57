package daemonset

import (
	"sort"
	"strconv"
	"time"

	"github.com/pgkube/pgkube/scheduler"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2"
)

const (
	// HashLabel carries the template's revision hash on pods and revisions.
	HashLabel = appsv1.DefaultDaemonSetUniqueLabelKey // controller-revision-hash
	// GenerationLabel carries the DaemonSet's generation on its pods (deprecated upstream, still set).
	GenerationLabel = "pod-template-generation"
)

// daemonTolerations are the tolerations every daemon pod gets, as
// upstream adds them: not-ready and unreachable (NoExecute, forever), the
// pressure conditions and unschedulable (NoSchedule), and
// network-unavailable for host-network pods.
func daemonTolerations(spec *corev1.PodSpec) []corev1.Toleration {
	tols := []corev1.Toleration{
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	}
	if spec.HostNetwork {
		tols = append(tols, corev1.Toleration{Key: corev1.TaintNodeNetworkUnavailable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
	}
	return tols
}

// addTolerations adds those of extra not already in tols (same key,
// operator, value and effect).
func addTolerations(tols []corev1.Toleration, extra []corev1.Toleration) []corev1.Toleration {
	for _, e := range extra {
		found := false
		for i := range tols {
			if tols[i].MatchToleration(&e) {
				found = true
				break
			}
		}
		if !found {
			tols = append(tols, e)
		}
	}
	return tols
}

// podTemplate is the pod the DaemonSet would run on node (before it has
// a name): its template with the daemon tolerations and node affinity for
// the node.
func podTemplate(ds *appsv1.DaemonSet, node, hash string) *corev1.Pod {
	t := ds.Spec.Template.DeepCopy()
	pod := &corev1.Pod{ObjectMeta: t.ObjectMeta, Spec: t.Spec}
	pod.Namespace = ds.Namespace
	pod.Name = ""
	pod.GenerateName = ds.Name + "-"
	pod.Spec.Tolerations = addTolerations(pod.Spec.Tolerations, daemonTolerations(&pod.Spec))
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	if hash != "" {
		pod.Labels[HashLabel] = hash
	}
	pod.Labels[GenerationLabel] = strconv.FormatInt(ds.Generation, 10)
	if node != "" {
		setNodeAffinity(&pod.Spec, node)
	}
	return pod
}

// setNodeAffinity makes the pod's required node affinity the node's name
// alone, as upstream does: the scheduler then binds it there.
func setNodeAffinity(spec *corev1.PodSpec, node string) {
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{
			Key: metav1.ObjectNameField, Operator: corev1.NodeSelectorOpIn, Values: []string{node},
		}}}},
	}
}

// targetNode is the node a daemon pod is for: its nodeName, else the one
// its node affinity names.
func targetNode(pod *corev1.Pod) string {
	if pod.Spec.NodeName != "" {
		return pod.Spec.NodeName
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, r := range t.MatchFields {
			if r.Key == metav1.ObjectNameField && r.Operator == corev1.NodeSelectorOpIn && len(r.Values) == 1 {
				return r.Values[0]
			}
		}
	}
	return ""
}

// shouldRun says whether a new daemon pod belongs on node, and whether an
// existing one may stay (it may when only NoSchedule taints are not
// tolerated).
func shouldRun(ds *appsv1.DaemonSet, node *corev1.Node) (run, stay bool) {
	pod := podTemplate(ds, "", "")
	if pod.Spec.NodeName != "" && pod.Spec.NodeName != node.Name {
		return false, false
	}
	if !scheduler.NodeMatchesPod(pod, node) {
		return false, false
	}
	run, stay = true, true
	for i := range node.Spec.Taints {
		taint := &node.Spec.Taints[i]
		if taint.Effect == corev1.TaintEffectPreferNoSchedule || tolerated(pod.Spec.Tolerations, taint) {
			continue
		}
		run = false
		if taint.Effect == corev1.TaintEffectNoExecute {
			stay = false
		}
	}
	return run, stay
}

func tolerated(tols []corev1.Toleration, taint *corev1.Taint) bool {
	for i := range tols {
		if tols[i].ToleratesTaint(klog.Background(), taint, false) {
			return true
		}
	}
	return false
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// isAvailable: ready for minReadySeconds.
func isAvailable(p *corev1.Pod, minReady int32, now time.Time) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status != corev1.ConditionTrue {
				return false
			}
			return minReady == 0 || !c.LastTransitionTime.Add(time.Duration(minReady)*time.Second).After(now)
		}
	}
	return false
}

// availableIn is how long until a ready pod becomes available.
func availableIn(p *corev1.Pod, minReady int32, now time.Time) (time.Duration, bool) {
	if minReady == 0 || !isReady(p) || isAvailable(p, minReady, now) {
		return 0, false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.LastTransitionTime.Add(time.Duration(minReady) * time.Second).Sub(now), true
		}
	}
	return 0, false
}

// NodeState is what the controller knows about one node.
type NodeState struct {
	Name      string
	Run, Stay bool
	Pods      []*corev1.Pod // the DaemonSet's pods for the node, oldest first
}

// Plan is what one sync does: pods to create (by node) and to delete.
type Plan struct {
	Create []string
	Delete []*corev1.Pod
	Failed []*corev1.Pod // deleted because they failed (also in Delete)
}

func (p *Plan) empty() bool { return len(p.Create) == 0 && len(p.Delete) == 0 }

func sortPods(pods []*corev1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool {
		a, b := pods[i], pods[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Name < b.Name
	})
}

// manage: a pod on every node it should run on, none where it must not,
// failed pods replaced, duplicates removed (with surge, one old and one
// new pod may share a node).
func manage(nodes []NodeState, hash string, surge bool) Plan {
	var p Plan
	for _, n := range nodes {
		switch {
		case n.Run && len(n.Pods) == 0:
			p.Create = append(p.Create, n.Name)
		case n.Stay:
			var running []*corev1.Pod
			for _, pod := range n.Pods {
				if pod.DeletionTimestamp != nil {
					continue
				}
				if pod.Status.Phase == corev1.PodFailed {
					p.Delete = append(p.Delete, pod)
					p.Failed = append(p.Failed, pod)
					continue
				}
				running = append(running, pod)
			}
			if len(running) > 1 {
				p.Delete = append(p.Delete, extras(running, hash, surge)...)
			}
		default:
			for _, pod := range n.Pods {
				if pod.DeletionTimestamp == nil {
					p.Delete = append(p.Delete, pod)
				}
			}
		}
	}
	return p
}

// extras are the running pods of a node beyond the one to keep (the
// oldest); with surge, the oldest old and the oldest new pod both stay.
func extras(running []*corev1.Pod, hash string, surge bool) []*corev1.Pod {
	var out []*corev1.Pod
	keptOld, keptNew := false, false
	for i, pod := range running {
		if !surge {
			if i > 0 {
				out = append(out, pod)
			}
			continue
		}
		if pod.Labels[HashLabel] == hash {
			if keptNew {
				out = append(out, pod)
			}
			keptNew = true
		} else {
			if keptOld {
				out = append(out, pod)
			}
			keptOld = true
		}
	}
	return out
}

// updatedPods splits a node's live pods into the newest of the current
// revision and the oldest of older ones.
func updatedPods(pods []*corev1.Pod, hash string) (newPod, oldPod *corev1.Pod) {
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		if p.Labels[HashLabel] == hash {
			if newPod == nil {
				newPod = p
			}
		} else if oldPod == nil {
			oldPod = p
		}
	}
	return newPod, oldPod
}

// budgets resolves maxSurge and maxUnavailable against the desired count
// (surge rounds up, unavailable rounds up, as upstream); both 0 is 1
// unavailable.
func budgets(ds *appsv1.DaemonSet, desired int) (surge, unavailable int) {
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	one := intstr.FromInt32(1)
	zero := intstr.FromInt32(0)
	mu, ms := &one, &zero
	if ru != nil {
		if ru.MaxUnavailable != nil {
			mu = ru.MaxUnavailable
		}
		if ru.MaxSurge != nil {
			ms = ru.MaxSurge
		}
	}
	surge, _ = intstr.GetScaledValueFromIntOrPercent(ms, desired, true)
	unavailable, _ = intstr.GetScaledValueFromIntOrPercent(mu, desired, true)
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable
}

// rollingUpdate replaces pods of older revisions: without surge, deleting
// old pods while no more than maxUnavailable nodes lack an available pod
// (unavailable old pods go at once); with surge, starting new pods beside
// old ones on up to maxSurge nodes and deleting each old pod once its
// replacement is available.
func rollingUpdate(ds *appsv1.DaemonSet, nodes []NodeState, hash string, now time.Time) Plan {
	desired := 0
	for _, n := range nodes {
		if n.Run {
			desired++
		}
	}
	maxSurge, maxUnavailable := budgets(ds, desired)
	minReady := ds.Spec.MinReadySeconds
	var p Plan
	if maxSurge == 0 {
		unavailable := 0
		var candidates []*corev1.Pod
		for _, n := range nodes {
			if !n.Run && !n.Stay {
				continue
			}
			newPod, oldPod := updatedPods(n.Pods, hash)
			switch {
			case newPod == nil && oldPod == nil:
				if n.Run {
					unavailable++
				}
			case newPod != nil:
				if !isAvailable(newPod, minReady, now) {
					unavailable++
				}
			default:
				if !isAvailable(oldPod, minReady, now) {
					unavailable++
					p.Delete = append(p.Delete, oldPod)
				} else {
					candidates = append(candidates, oldPod)
				}
			}
		}
		room := maxUnavailable - unavailable
		for i := 0; i < len(candidates) && i < room; i++ {
			p.Delete = append(p.Delete, candidates[i])
		}
		return p
	}
	surging := 0
	var candidates []string
	for _, n := range nodes {
		if !n.Run && !n.Stay {
			continue
		}
		newPod, oldPod := updatedPods(n.Pods, hash)
		switch {
		case oldPod == nil:
		case newPod == nil:
			if !n.Run {
				continue
			}
			if !isAvailable(oldPod, minReady, now) {
				p.Create = append(p.Create, n.Name) // replace an unavailable pod at once
			} else {
				candidates = append(candidates, n.Name)
			}
		default:
			if isAvailable(newPod, minReady, now) {
				p.Delete = append(p.Delete, oldPod)
			} else {
				surging++
			}
		}
	}
	room := maxSurge - surging
	for i := 0; i < len(candidates) && i < room; i++ {
		p.Create = append(p.Create, candidates[i])
	}
	return p
}

// computeStatus is the DaemonSet's status for the nodes.
func computeStatus(ds *appsv1.DaemonSet, nodes []NodeState, hash string, now time.Time) appsv1.DaemonSetStatus {
	st := appsv1.DaemonSetStatus{
		ObservedGeneration: ds.Generation,
		CollisionCount:     ds.Status.CollisionCount,
		Conditions:         ds.Status.Conditions,
	}
	for _, n := range nodes {
		var live []*corev1.Pod
		for _, p := range n.Pods {
			if p.DeletionTimestamp == nil {
				live = append(live, p)
			}
		}
		if n.Run {
			st.DesiredNumberScheduled++
			if len(live) > 0 {
				st.CurrentNumberScheduled++
				newPod, _ := updatedPods(live, hash)
				if newPod != nil {
					st.UpdatedNumberScheduled++
				}
				// The oldest pod (the one kept) stands for the node; with
				// surge, an available new pod does.
				rep := live[0]
				if newPod != nil && isReady(newPod) {
					rep = newPod
				}
				if isReady(rep) {
					st.NumberReady++
					if isAvailable(rep, ds.Spec.MinReadySeconds, now) {
						st.NumberAvailable++
					}
				}
			}
		} else if len(live) > 0 {
			st.NumberMisscheduled++
		}
	}
	st.NumberUnavailable = st.DesiredNumberScheduled - st.NumberAvailable
	if st.NumberUnavailable < 0 {
		st.NumberUnavailable = 0
	}
	return st
}
