package scheduler

import (
	"context"
	"encoding/json"

	"github.com/pgkube/pgkube/controllers/framework"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// patchStatus merges st into a pod's status (strategic merge: conditions
// by type).
func patchStatus(ctx context.Context, clients *framework.Clients, cluster string, pod *corev1.Pod, st map[string]any) error {
	data, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		return err
	}
	_, err = clients.For(cluster).CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{}, "status")
	return err
}

// bindVolumes is the volume binding pre-bind: each claim that waited for
// its first consumer gets the volume chosen on the node (its claimRef
// set, for the volume binder to finish), or, to be provisioned, the
// selected-node annotation.
func (s *Scheduler) bindVolumes(ctx context.Context, pi *podInfo, node *corev1.Node, vs *volumeState) error {
	if vs == nil || len(vs.delayed) == 0 || node == nil {
		return nil
	}
	cs := s.clients.For(pi.cluster)
	for _, dc := range vs.delayed {
		if pv := dc.volumeFor(node); pv != nil {
			patch, _ := json.Marshal(map[string]any{
				"metadata": map[string]any{"annotations": map[string]string{annBoundByController: "yes"}},
				"spec": map[string]any{"claimRef": map[string]any{
					"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": dc.pvc.Namespace,
					"name": dc.pvc.Name, "uid": string(dc.pvc.UID), "resourceVersion": dc.pvc.ResourceVersion}},
			})
			if _, err := cs.CoreV1().PersistentVolumes().Patch(ctx, pv.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
				return err
			}
			continue
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{annSelectedNode: node.Name}}})
		if _, err := cs.CoreV1().PersistentVolumeClaims(dc.pvc.Namespace).Patch(ctx, dc.pvc.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// volumes reads the scheduler's volume informers.
type volumes struct{ s *Scheduler }

func (v volumes) PVC(cluster, ns, name string) *corev1.PersistentVolumeClaim {
	o, err := v.s.pvcs.Get(cluster, ns, name)
	if err != nil {
		return nil
	}
	return o
}

func (v volumes) PV(cluster, name string) *corev1.PersistentVolume {
	o, err := v.s.pvs.Get(cluster, "", name)
	if err != nil {
		return nil
	}
	return o
}

func (v volumes) PVs(cluster string) []*corev1.PersistentVolume {
	return v.s.pvs.List(cluster, "", nil)
}

func (v volumes) StorageClass(cluster, name string) *storagev1.StorageClass {
	o, err := v.s.classes.Get(cluster, "", name)
	if err != nil {
		return nil
	}
	return o
}

func (v volumes) StorageClasses(cluster string) []*storagev1.StorageClass {
	return v.s.classes.List(cluster, "", nil)
}
