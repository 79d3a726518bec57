package statefulset

import (
	"strconv"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	controllerKind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")
	podKind        = corev1.SchemeGroupVersion.WithKind("Pod")
)

// parentAndOrdinal splits a pod name NAME-ORDINAL at its last dash; the
// ordinal is -1 when the name does not end in one.
func parentAndOrdinal(name string) (string, int) {
	i := len(name) - 1
	for i >= 0 && name[i] >= '0' && name[i] <= '9' {
		i--
	}
	if i < 0 || i == len(name)-1 || name[i] != '-' {
		return "", -1
	}
	n, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil {
		return name[:i], -1
	}
	return name[:i], int(n)
}

func ordinalOf(pod *corev1.Pod) int {
	_, o := parentAndOrdinal(pod.Name)
	return o
}

func startOrdinal(set *appsv1.StatefulSet) int {
	if set.Spec.Ordinals != nil {
		return int(set.Spec.Ordinals.Start)
	}
	return 0
}

func replicasOf(set *appsv1.StatefulSet) int {
	if set.Spec.Replicas == nil {
		return 1
	}
	return int(*set.Spec.Replicas)
}

// endOrdinal is the highest ordinal the set keeps (start-1 when it has no
// replicas).
func endOrdinal(set *appsv1.StatefulSet) int { return startOrdinal(set) + replicasOf(set) - 1 }

func inOrdinalRange(pod *corev1.Pod, set *appsv1.StatefulSet) bool {
	o := ordinalOf(pod)
	return o >= startOrdinal(set) && o <= endOrdinal(set)
}

func podName(set *appsv1.StatefulSet, ordinal int) string {
	return set.Name + "-" + strconv.Itoa(ordinal)
}

// claimName is TEMPLATE-SET-ORDINAL.
func claimName(set *appsv1.StatefulSet, template *corev1.PersistentVolumeClaim, ordinal int) string {
	return template.Name + "-" + set.Name + "-" + strconv.Itoa(ordinal)
}

// isMemberOf: the pod's name says it belongs to set.
func isMemberOf(set *appsv1.StatefulSet, pod *corev1.Pod) bool {
	parent, _ := parentAndOrdinal(pod.Name)
	return parent == set.Name
}

// identityMatches: the pod has the name, namespace and pod-name label its
// ordinal gives it in set.
func identityMatches(set *appsv1.StatefulSet, pod *corev1.Pod) bool {
	parent, o := parentAndOrdinal(pod.Name)
	return o >= 0 && parent == set.Name && pod.Name == podName(set, o) &&
		pod.Namespace == set.Namespace && pod.Labels[appsv1.StatefulSetPodNameLabel] == pod.Name
}

// storageMatches: every claim template is mounted from the pod's own claim.
func storageMatches(set *appsv1.StatefulSet, pod *corev1.Pod) bool {
	o := ordinalOf(pod)
	if o < 0 {
		return false
	}
	vols := make(map[string]corev1.Volume, len(pod.Spec.Volumes))
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v
	}
	for i := range set.Spec.VolumeClaimTemplates {
		t := &set.Spec.VolumeClaimTemplates[i]
		v, ok := vols[t.Name]
		if !ok || v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != claimName(set, t, o) {
			return false
		}
	}
	return true
}

// claimsFor are the claims pod should have, by template name.
func claimsFor(set *appsv1.StatefulSet, pod *corev1.Pod) map[string]*corev1.PersistentVolumeClaim {
	o := ordinalOf(pod)
	out := make(map[string]*corev1.PersistentVolumeClaim, len(set.Spec.VolumeClaimTemplates))
	for i := range set.Spec.VolumeClaimTemplates {
		t := &set.Spec.VolumeClaimTemplates[i]
		c := t.DeepCopy()
		c.Name = claimName(set, t, o)
		c.Namespace = set.Namespace
		c.TypeMeta = metav1.TypeMeta{}
		c.ResourceVersion, c.UID = "", ""
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		if set.Spec.Selector != nil {
			for k, v := range set.Spec.Selector.MatchLabels {
				c.Labels[k] = v
			}
		}
		if len(c.Labels) == 0 {
			c.Labels = nil
		}
		framework.StripCluster(c)
		out[t.Name] = c
	}
	return out
}

// setStorage mounts the pod's claims, replacing volumes of the same name.
func setStorage(set *appsv1.StatefulSet, pod *corev1.Pod) {
	claims := claimsFor(set, pod)
	vols := make([]corev1.Volume, 0, len(pod.Spec.Volumes)+len(claims))
	// Templates in their order, for stable pod specs.
	for i := range set.Spec.VolumeClaimTemplates {
		name := set.Spec.VolumeClaimTemplates[i].Name
		vols = append(vols, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claims[name].Name},
		}})
	}
	for _, v := range pod.Spec.Volumes {
		if _, ok := claims[v.Name]; !ok {
			vols = append(vols, v)
		}
	}
	pod.Spec.Volumes = vols
}

// setIdentity gives the pod its name and identity labels.
func setIdentity(set *appsv1.StatefulSet, pod *corev1.Pod) {
	o := ordinalOf(pod)
	pod.Name = podName(set, o)
	pod.Namespace = set.Namespace
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[appsv1.StatefulSetPodNameLabel] = pod.Name
	pod.Labels[appsv1.PodIndexLabel] = strconv.Itoa(o)
}

// newPod is the pod of ordinal from set's template.
func newPod(set *appsv1.StatefulSet, ordinal int) *corev1.Pod {
	t := set.Spec.Template.DeepCopy()
	yes := true
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        podName(set, ordinal),
			Namespace:   set.Namespace,
			Labels:      t.Labels,
			Annotations: t.Annotations,
			Finalizers:  t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: controllerKind.GroupVersion().String(), Kind: controllerKind.Kind,
				Name: set.Name, UID: set.UID, Controller: &yes, BlockOwnerDeletion: &yes,
			}},
		},
		Spec: t.Spec,
	}
	framework.StripCluster(pod)
	setIdentity(set, pod)
	// Hostname and subdomain are set once, at creation.
	pod.Spec.Hostname = pod.Name
	pod.Spec.Subdomain = set.Spec.ServiceName
	setStorage(set, pod)
	return pod
}

// newVersionedPod is the pod of ordinal at the revision it should have:
// ordinals below the partition keep the current revision.
func newVersionedPod(currentSet, updateSet *appsv1.StatefulSet, currentRevision, updateRevision string, ordinal int) *corev1.Pod {
	st := currentSet.Spec.UpdateStrategy
	if st.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		atCurrent := false
		if st.RollingUpdate == nil {
			atCurrent = ordinal < startOrdinal(currentSet)+int(currentSet.Status.CurrentReplicas)
		} else if st.RollingUpdate.Partition != nil {
			atCurrent = ordinal < startOrdinal(currentSet)+int(*st.RollingUpdate.Partition)
		}
		if atCurrent {
			p := newPod(currentSet, ordinal)
			setRevision(p, currentRevision)
			return p
		}
	}
	p := newPod(updateSet, ordinal)
	setRevision(p, updateRevision)
	return p
}

func setRevision(pod *corev1.Pod, rev string) {
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	pod.Labels[appsv1.StatefulSetRevisionLabel] = rev
}

func revisionOf(pod *corev1.Pod) string { return pod.Labels[appsv1.StatefulSetRevisionLabel] }

// Pod states, as upstream's StatefulSet controller reads them.

func podReadyCondition(pod *corev1.Pod) *corev1.PodCondition {
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == corev1.PodReady {
			return &pod.Status.Conditions[i]
		}
	}
	return nil
}

func isReady(pod *corev1.Pod) bool {
	c := podReadyCondition(pod)
	return c != nil && c.Status == corev1.ConditionTrue
}

func isRunningAndReady(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodRunning && isReady(pod)
}

// isAvailable: ready for at least minReadySeconds.
func isAvailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	c := podReadyCondition(pod)
	if c == nil || c.Status != corev1.ConditionTrue {
		return false
	}
	if minReadySeconds == 0 {
		return true
	}
	return !c.LastTransitionTime.IsZero() && c.LastTransitionTime.Add(time.Duration(minReadySeconds)*time.Second).Before(now)
}

func isCreated(pod *corev1.Pod) bool     { return pod.Status.Phase != "" }
func isPending(pod *corev1.Pod) bool     { return pod.Status.Phase == corev1.PodPending }
func isTerminating(pod *corev1.Pod) bool { return pod.DeletionTimestamp != nil }
func isTerminalPhase(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded
}

func isUnavailable(pod *corev1.Pod, minReadySeconds int32, now time.Time) bool {
	return !isAvailable(pod, minReadySeconds, now) || isTerminating(pod)
}

func allowsBurst(set *appsv1.StatefulSet) bool {
	return set.Spec.PodManagementPolicy == appsv1.ParallelPodManagement
}

// nextAvailableIn is how long until the first ready pod that is not yet
// available becomes so.
func nextAvailableIn(pods []*corev1.Pod, minReadySeconds int32, now time.Time) (time.Duration, bool) {
	var best time.Duration
	found := false
	for _, p := range pods {
		c := podReadyCondition(p)
		if c == nil || c.Status != corev1.ConditionTrue || isAvailable(p, minReadySeconds, now) {
			continue
		}
		d := c.LastTransitionTime.Add(time.Duration(minReadySeconds) * time.Second).Sub(now)
		if d < 0 {
			d = 0
		}
		if !found || d < best {
			best, found = d, true
		}
	}
	return best, found
}

// PVC retention.

func retentionPolicy(set *appsv1.StatefulSet) appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy {
	p := appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
		WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
		WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
	}
	if r := set.Spec.PersistentVolumeClaimRetentionPolicy; r != nil {
		if r.WhenDeleted != "" {
			p.WhenDeleted = r.WhenDeleted
		}
		if r.WhenScaled != "" {
			p.WhenScaled = r.WhenScaled
		}
	}
	return p
}

func retainsAll(set *appsv1.StatefulSet) bool {
	p := retentionPolicy(set)
	return p.WhenDeleted != appsv1.DeletePersistentVolumeClaimRetentionPolicyType &&
		p.WhenScaled != appsv1.DeletePersistentVolumeClaimRetentionPolicyType
}

// refersTo: ref names obj of kind gvk (by name, whatever its uid).
func refersTo(ref *metav1.OwnerReference, obj metav1.Object, gvk schema.GroupVersionKind) bool {
	return ref.APIVersion == gvk.GroupVersion().String() && ref.Kind == gvk.Kind && ref.Name == obj.GetName()
}

func ownedBy(target, owner metav1.Object) bool {
	for _, r := range target.GetOwnerReferences() {
		if r.UID == owner.GetUID() {
			return true
		}
	}
	return false
}

// staleRef: target refers to an earlier incarnation of obj.
func staleRef(target metav1.Object, obj metav1.Object, gvk schema.GroupVersionKind) bool {
	for _, r := range target.GetOwnerReferences() {
		if refersTo(&r, obj, gvk) {
			return r.UID != obj.GetUID()
		}
	}
	return false
}

// foreignController: the claim is controlled by something other than set
// and pod (or by an earlier incarnation of them), which the retention
// policy then leaves alone.
func foreignController(claim *corev1.PersistentVolumeClaim, set *appsv1.StatefulSet, pod *corev1.Pod) bool {
	if retainsAll(set) {
		return false
	}
	for _, r := range claim.OwnerReferences {
		switch {
		case refersTo(&r, set, controllerKind):
			if r.UID != set.UID {
				return true
			}
		case refersTo(&r, pod, podKind):
			if r.UID != pod.UID {
				return true
			}
		case r.Controller != nil && *r.Controller:
			return true
		}
	}
	return false
}

// nonControllerRefToUs: set or pod own the claim without being its
// controller, which must be fixed.
func nonControllerRefToUs(claim *corev1.PersistentVolumeClaim, set *appsv1.StatefulSet, pod *corev1.Pod) bool {
	for _, r := range claim.OwnerReferences {
		if (r.UID == set.UID || r.UID == pod.UID) && (r.Controller == nil || !*r.Controller) {
			return true
		}
	}
	return false
}

// claimOwnersUpToDate: the claim's ownerReferences are what the retention
// policy asks for (WhenDeleted=Delete: owned by the set; WhenScaled=Delete:
// owned by its pod once the pod is scaled away).
func claimOwnersUpToDate(claim *corev1.PersistentVolumeClaim, set *appsv1.StatefulSet, pod *corev1.Pod) bool {
	if staleRef(claim, set, controllerKind) || staleRef(claim, pod, podKind) {
		return true // an earlier incarnation's; the garbage collector decides
	}
	if foreignController(claim, set, pod) {
		return !ownedBy(claim, set) && !ownedBy(claim, pod)
	}
	if nonControllerRefToUs(claim, set, pod) {
		return false
	}
	wantSet, wantPod := wantedClaimOwners(set, pod)
	return ownedBy(claim, set) == wantSet && ownedBy(claim, pod) == wantPod
}

func wantedClaimOwners(set *appsv1.StatefulSet, pod *corev1.Pod) (bySet, byPod bool) {
	p := retentionPolicy(set)
	del := appsv1.DeletePersistentVolumeClaimRetentionPolicyType
	scaledDown := !inOrdinalRange(pod, set)
	if p.WhenScaled == del && scaledDown {
		byPod = true
	}
	if p.WhenDeleted == del && !(p.WhenScaled == del && scaledDown) {
		bySet = true
	}
	return bySet, byPod
}

// fixClaimOwners rewrites the claim's references to set and pod as the
// retention policy asks.
func fixClaimOwners(claim *corev1.PersistentVolumeClaim, set *appsv1.StatefulSet, pod *corev1.Pod) {
	foreign := foreignController(claim, set, pod)
	refs := make([]metav1.OwnerReference, 0, len(claim.OwnerReferences)+1)
	for _, r := range claim.OwnerReferences {
		if refersTo(&r, set, controllerKind) || refersTo(&r, pod, podKind) {
			continue
		}
		refs = append(refs, r)
	}
	if !foreign {
		bySet, byPod := wantedClaimOwners(set, pod)
		if bySet {
			refs = append(refs, *metav1.NewControllerRef(set, controllerKind))
		}
		if byPod {
			refs = append(refs, *metav1.NewControllerRef(pod, podKind))
		}
	}
	if len(refs) == 0 {
		refs = nil
	}
	claim.OwnerReferences = refs
}
