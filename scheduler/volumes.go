package scheduler

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Annotations of volume binding, as upstream.
const (
	annSelectedNode      = "volume.kubernetes.io/selected-node"
	annBoundByController = "pv.kubernetes.io/bound-by-controller"
	annDefaultClass      = "storageclass.kubernetes.io/is-default-class"
	noProvisioner        = "kubernetes.io/no-provisioner"
)

// volumeLister reads the volume objects of one logical cluster.
type volumeLister interface {
	PVC(cluster, ns, name string) *corev1.PersistentVolumeClaim
	PV(cluster, name string) *corev1.PersistentVolume
	PVs(cluster string) []*corev1.PersistentVolume
	StorageClass(cluster, name string) *storagev1.StorageClass
	StorageClasses(cluster string) []*storagev1.StorageClass
}

// volumeState is what a pod's claims ask of nodes: the node affinity of
// the volumes its bound claims use, and for claims that wait for their
// first consumer, a volume to bind on the node or a provisioner.
type volumeState struct {
	bound     []*corev1.PersistentVolume
	missingPV bool
	delayed   []*delayedClaim
}

type delayedClaim struct {
	pvc        *corev1.PersistentVolumeClaim
	class      *storagev1.StorageClass
	candidates []*corev1.PersistentVolume // available volumes that fit, smallest first
}

// claimNames are the claims a pod's volumes use (generic ephemeral
// volumes use POD-VOLUME).
func claimNames(pod *corev1.Pod) []string {
	var out []string
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			out = append(out, v.PersistentVolumeClaim.ClaimName)
		case v.Ephemeral != nil:
			out = append(out, pod.Name+"-"+v.Name)
		}
	}
	return out
}

// newVolumeState is the VolumeBinding pre-filter: nil state and an empty
// message when the pod has no claims; a message when no node can do.
func newVolumeState(vl volumeLister, cluster string, pod *corev1.Pod) (*volumeState, string) {
	names := claimNames(pod)
	if len(names) == 0 || vl == nil {
		return nil, ""
	}
	s := &volumeState{}
	unboundImmediate := false
	for _, name := range names {
		pvc := vl.PVC(cluster, pod.Namespace, name)
		if pvc == nil {
			return nil, fmt.Sprintf("persistentvolumeclaim %q not found", name)
		}
		if pvc.DeletionTimestamp != nil {
			return nil, fmt.Sprintf("persistentvolumeclaim %q is being deleted", name)
		}
		if pvc.Spec.VolumeName != "" {
			pv := vl.PV(cluster, pvc.Spec.VolumeName)
			if pv == nil {
				s.missingPV = true
				continue
			}
			s.bound = append(s.bound, pv)
			continue
		}
		class := claimClass(vl, cluster, pvc)
		if class == nil || class.VolumeBindingMode == nil || *class.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
			unboundImmediate = true
			continue
		}
		dc := &delayedClaim{pvc: pvc, class: class}
		for _, pv := range vl.PVs(cluster) {
			if volumeFits(pv, pvc, class.Name) {
				dc.candidates = append(dc.candidates, pv)
			}
		}
		sort.Slice(dc.candidates, func(i, j int) bool {
			a, b := dc.candidates[i].Spec.Capacity[corev1.ResourceStorage], dc.candidates[j].Spec.Capacity[corev1.ResourceStorage]
			return a.Cmp(b) < 0
		})
		s.delayed = append(s.delayed, dc)
	}
	if unboundImmediate {
		return nil, "pod has unbound immediate PersistentVolumeClaims"
	}
	return s, ""
}

func claimClass(vl volumeLister, cluster string, pvc *corev1.PersistentVolumeClaim) *storagev1.StorageClass {
	if pvc.Spec.StorageClassName != nil {
		if *pvc.Spec.StorageClassName == "" {
			return nil
		}
		return vl.StorageClass(cluster, *pvc.Spec.StorageClassName)
	}
	for _, sc := range vl.StorageClasses(cluster) {
		if sc.Annotations[annDefaultClass] == "true" {
			return sc
		}
	}
	return nil
}

// volumeFits: pv is free (or reserved for pvc) and matches the claim.
func volumeFits(pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim, class string) bool {
	if pv.DeletionTimestamp != nil || pv.Spec.StorageClassName != class {
		return false
	}
	if ref := pv.Spec.ClaimRef; ref != nil {
		if ref.Name != pvc.Name || ref.Namespace != pvc.Namespace || (ref.UID != "" && ref.UID != pvc.UID) {
			return false
		}
	} else if pv.Status.Phase != "" && pv.Status.Phase != corev1.VolumeAvailable && pv.Status.Phase != corev1.VolumePending {
		return false
	}
	want := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	have := pv.Spec.Capacity[corev1.ResourceStorage]
	if have.Cmp(want) < 0 {
		return false
	}
	for _, m := range pvc.Spec.AccessModes {
		found := false
		for _, h := range pv.Spec.AccessModes {
			if h == m {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	mode := func(m *corev1.PersistentVolumeMode) corev1.PersistentVolumeMode {
		if m == nil {
			return corev1.PersistentVolumeFilesystem
		}
		return *m
	}
	if mode(pv.Spec.VolumeMode) != mode(pvc.Spec.VolumeMode) {
		return false
	}
	if pvc.Spec.Selector != nil {
		sel, err := metav1.LabelSelectorAsSelector(pvc.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(pv.Labels)) {
			return false
		}
	}
	return true
}

func volumeOnNode(pv *corev1.PersistentVolume, node *corev1.Node) bool {
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return true
	}
	return matchNodeSelectorTerms(node, pv.Spec.NodeAffinity.Required.NodeSelectorTerms)
}

// check is the VolumeBinding filter for node.
func (s *volumeState) check(node *corev1.Node) *status {
	var reasons []string
	if s.missingPV {
		reasons = append(reasons, reasonPVNotExist)
	}
	for _, pv := range s.bound {
		if !volumeOnNode(pv, node) {
			reasons = append(reasons, reasonVolumeNodeConflict)
			break
		}
	}
	for _, dc := range s.delayed {
		if dc.volumeFor(node) == nil && !dc.provisionable() {
			reasons = append(reasons, reasonVolumeBindConflict)
			break
		}
	}
	if len(reasons) == 0 {
		return nil
	}
	return &status{code: codeUnresolvable, reasons: reasons}
}

func (dc *delayedClaim) volumeFor(node *corev1.Node) *corev1.PersistentVolume {
	for _, pv := range dc.candidates {
		if volumeOnNode(pv, node) {
			return pv
		}
	}
	return nil
}

func (dc *delayedClaim) provisionable() bool {
	return dc.class.Provisioner != "" && dc.class.Provisioner != noProvisioner
}
