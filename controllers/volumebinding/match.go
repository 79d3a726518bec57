package volumebinding

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"strconv"
)

// Annotations of volume binding, as upstream.
const (
	AnnBindCompleted      = "pv.kubernetes.io/bind-completed"
	AnnBoundByController  = "pv.kubernetes.io/bound-by-controller"
	AnnSelectedNode       = "volume.kubernetes.io/selected-node"
	AnnStorageProvisioner = "volume.kubernetes.io/storage-provisioner"
	AnnBetaProvisioner    = "volume.beta.kubernetes.io/storage-provisioner"
	AnnProvisionedBy      = "pv.kubernetes.io/provisioned-by"
	annBetaClass          = "volume.beta.kubernetes.io/storage-class"
)

// claimClass is the class a claim asks for ("" for none).
func claimClass(c *corev1.PersistentVolumeClaim) string {
	if c.Spec.StorageClassName != nil {
		return *c.Spec.StorageClassName
	}
	return c.Annotations[annBetaClass]
}

// volumeClass is a volume's class ("" for none).
func volumeClass(v *corev1.PersistentVolume) string {
	if v.Spec.StorageClassName != "" {
		return v.Spec.StorageClassName
	}
	return v.Annotations[annBetaClass]
}

// boundToClaim: the volume's claimRef names the claim (and its uid, if
// the reference has one).
func boundToClaim(v *corev1.PersistentVolume, c *corev1.PersistentVolumeClaim) bool {
	ref := v.Spec.ClaimRef
	if ref == nil || ref.Name != c.Name || ref.Namespace != c.Namespace {
		return false
	}
	return ref.UID == "" || ref.UID == c.UID
}

func volumeMode(m *corev1.PersistentVolumeMode) corev1.PersistentVolumeMode {
	if m == nil {
		return corev1.PersistentVolumeFilesystem
	}
	return *m
}

func hasModes(v *corev1.PersistentVolume, want []corev1.PersistentVolumeAccessMode) bool {
	for _, m := range want {
		found := false
		for _, h := range v.Spec.AccessModes {
			found = found || h == m
		}
		if !found {
			return false
		}
	}
	return true
}

func onNode(v *corev1.PersistentVolume, node *corev1.Node) bool {
	if node == nil || v.Spec.NodeAffinity == nil || v.Spec.NodeAffinity.Required == nil {
		return true
	}
	for _, t := range v.Spec.NodeAffinity.Required.NodeSelectorTerms {
		if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
			continue // an empty term matches nothing
		}
		ok := true
		for _, r := range t.MatchExpressions {
			val, has := node.Labels[r.Key]
			ok = ok && requirementMet(r, val, has)
		}
		for _, r := range t.MatchFields {
			ok = ok && r.Key == "metadata.name" && requirementMet(r, node.Name, true)
		}
		if ok {
			return true
		}
	}
	return false
}

func requirementMet(r corev1.NodeSelectorRequirement, val string, has bool) bool {
	in := func() bool {
		for _, x := range r.Values {
			if x == val {
				return true
			}
		}
		return false
	}
	num := func() (int64, int64, bool) {
		if !has || len(r.Values) != 1 {
			return 0, 0, false
		}
		a, err1 := strconv.ParseInt(val, 10, 64)
		b, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		return a, b, err1 == nil && err2 == nil
	}
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		return has && in()
	case corev1.NodeSelectorOpNotIn:
		return !has || !in()
	case corev1.NodeSelectorOpExists:
		return has
	case corev1.NodeSelectorOpDoesNotExist:
		return !has
	case corev1.NodeSelectorOpGt:
		a, b, ok := num()
		return ok && a > b
	case corev1.NodeSelectorOpLt:
		a, b, ok := num()
		return ok && a < b
	}
	return false
}

// bestMatch is upstream's FindMatchingVolume: a volume already reserved
// for the claim (claimRef naming it) wins if it fits the node; otherwise,
// unless binding waits for a node, the smallest free volume of the claim's
// class with enough capacity, the access modes, the volume mode, labels
// matching the claim's selector and (when a node is chosen) node affinity
// that admits the node.
func bestMatch(claim *corev1.PersistentVolumeClaim, volumes []*corev1.PersistentVolume, node *corev1.Node, delay bool) *corev1.PersistentVolume {
	want := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	var sel labels.Selector
	if claim.Spec.Selector != nil {
		s, err := metav1.LabelSelectorAsSelector(claim.Spec.Selector)
		if err != nil {
			return nil
		}
		sel = s
	}
	sorted := append([]*corev1.PersistentVolume(nil), volumes...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i].Spec.Capacity[corev1.ResourceStorage], sorted[j].Spec.Capacity[corev1.ResourceStorage]
		if c := a.Cmp(b); c != 0 {
			return c < 0
		}
		return sorted[i].Name < sorted[j].Name
	})
	class := claimClass(claim)
	for _, v := range sorted {
		have := v.Spec.Capacity[corev1.ResourceStorage]
		if have.Cmp(want) < 0 || volumeMode(v.Spec.VolumeMode) != volumeMode(claim.Spec.VolumeMode) || v.DeletionTimestamp != nil {
			continue
		}
		fits := onNode(v, node)
		if boundToClaim(v, claim) {
			if !fits {
				return nil
			}
			return v
		}
		if node == nil && delay {
			continue // the scheduler chooses
		}
		if v.Spec.ClaimRef != nil || (sel != nil && !sel.Matches(labels.Set(v.Labels))) {
			continue
		}
		if v.Status.Phase != "" && v.Status.Phase != corev1.VolumeAvailable && v.Status.Phase != corev1.VolumePending {
			continue
		}
		if volumeClass(v) != class || !fits || !hasModes(v, claim.Spec.AccessModes) {
			continue
		}
		return v
	}
	return nil
}
