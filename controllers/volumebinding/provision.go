package volumebinding

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HostPathProvisioner is the provisioner name of classes whose claims get
// a hostPath volume made under Controller.HostPathDir.
const HostPathProvisioner = "pgkube.io/hostpath"

// provision makes a hostPath volume for claim, pre-bound to it (the next
// sync binds), named pvc-UID as upstream's provisioned volumes.
func (vc *Controller) provision(ctx context.Context, cluster string, claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass, node *corev1.Node) error {
	name := "pvc-" + string(claim.UID)
	if _, err := vc.pvs.Get(cluster, "", name); err == nil {
		return nil
	}
	dir := filepath.Join(vc.HostPathDir, cluster, claim.Namespace, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		vc.recorder.Eventf(claim, corev1.EventTypeWarning, "ProvisioningFailed", "%v", err)
		return err
	}
	policy := corev1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		policy = *class.ReclaimPolicy
	}
	hostPathType := corev1.HostPathDirectoryOrCreate
	v := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{AnnProvisionedBy: HostPathProvisioner}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: claim.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   claim.Spec.AccessModes,
			VolumeMode:                    claim.Spec.VolumeMode,
			StorageClassName:              class.Name,
			PersistentVolumeReclaimPolicy: policy,
			MountOptions:                  class.MountOptions,
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID, ResourceVersion: claim.ResourceVersion},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &hostPathType}},
		},
	}
	if node != nil {
		v.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node.Name}}}}}}}
	}
	_, err := vc.client(cluster).CoreV1().PersistentVolumes().Create(ctx, v, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		vc.recorder.Eventf(claim, corev1.EventTypeWarning, "ProvisioningFailed", "%v", err)
		return err
	}
	vc.recorder.Eventf(claim, corev1.EventTypeNormal, "ProvisioningSucceeded", "Successfully provisioned volume %s", name)
	return nil
}

// removeHostPath removes a provisioned volume's directory (only one under
// HostPathDir).
func (vc *Controller) removeHostPath(v *corev1.PersistentVolume) error {
	if v.Spec.HostPath == nil || vc.HostPathDir == "" {
		return nil
	}
	root := filepath.Clean(vc.HostPathDir) + string(filepath.Separator)
	p := filepath.Clean(v.Spec.HostPath.Path)
	if !strings.HasPrefix(p, root) {
		return fmt.Errorf("volume path %s is outside %s", p, root)
	}
	return os.RemoveAll(p)
}
