package volumebinding

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func pv(name, size, class string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"name": name}},
		Spec: corev1.PersistentVolumeSpec{StorageClassName: class, AccessModes: modes,
			Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeAvailable}}
}

func pvc(size, class string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "u1"},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To(class), AccessModes: modes,
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}}}
}

func TestBestMatch(t *testing.T) {
	rwo, rwx := corev1.ReadWriteOnce, corev1.ReadWriteMany
	vols := []*corev1.PersistentVolume{
		pv("big", "10Gi", "std", rwo), pv("small", "1Gi", "std", rwo), pv("mid", "2Gi", "std", rwo),
		pv("midrwx", "2Gi", "std", rwo, rwx), pv("other", "2Gi", "fast", rwo),
	}
	name := func(v *corev1.PersistentVolume) string {
		if v == nil {
			return "<none>"
		}
		return v.Name
	}
	if got := bestMatch(pvc("1500Mi", "std", rwo), vols, nil, false); name(got) != "mid" {
		t.Errorf("smallest fitting: %s", name(got))
	}
	if got := bestMatch(pvc("1Gi", "std", rwx), vols, nil, false); name(got) != "midrwx" {
		t.Errorf("access modes: %s", name(got))
	}
	if got := bestMatch(pvc("1Gi", "fast", rwo), vols, nil, false); name(got) != "other" {
		t.Errorf("class: %s", name(got))
	}
	if got := bestMatch(pvc("20Gi", "std", rwo), vols, nil, false); got != nil {
		t.Errorf("too big: %s", name(got))
	}
	c := pvc("1Gi", "std", rwo)
	c.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"name": "big"}}
	if got := bestMatch(c, vols, nil, false); name(got) != "big" {
		t.Errorf("selector: %s", name(got))
	}
	block := corev1.PersistentVolumeBlock
	c = pvc("1Gi", "std", rwo)
	c.Spec.VolumeMode = &block
	if got := bestMatch(c, vols, nil, false); got != nil {
		t.Errorf("volume mode: %s", name(got))
	}
	// Waiting for a node: only a volume reserved for the claim.
	if got := bestMatch(pvc("1Gi", "std", rwo), vols, nil, true); got != nil {
		t.Errorf("delayed: %s", name(got))
	}
	reserved := pv("reserved", "5Gi", "std", rwo)
	reserved.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "ns", Name: "c"}
	if got := bestMatch(pvc("1Gi", "std", rwo), append(vols, reserved), nil, true); name(got) != "reserved" {
		t.Errorf("pre-bound: %s", name(got))
	}
	// Node affinity with a chosen node.
	local := pv("local", "1Gi", "std", rwo)
	local.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
		MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}}}}}}
	n2 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2", Labels: map[string]string{"kubernetes.io/hostname": "n2"}}}
	n1 := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{"kubernetes.io/hostname": "n1"}}}
	only := []*corev1.PersistentVolume{local, pv("x", "3Gi", "std", rwo)}
	if got := bestMatch(pvc("1Gi", "std", rwo), only, n2, false); name(got) != "x" {
		t.Errorf("affinity n2: %s", name(got))
	}
	if got := bestMatch(pvc("1Gi", "std", rwo), only, n1, false); name(got) != "local" {
		t.Errorf("affinity n1: %s", name(got))
	}
}
