// Package volumebinding is the PersistentVolume binder
// ("persistentvolume-binder"): it binds claims to matching volumes (the
// smallest that fits, or the one the claim or volume names), keeps the
// phases of both, and reclaims volumes whose claim is gone (Retain: the
// volume is Released; Delete: the volume object is deleted, there is no
// storage behind it; Recycle is not supported), as upstream's controller.
// Claims of WaitForFirstConsumer classes are left to the scheduler until
// it chose a node (selected-node) or reserved a volume (claimRef).
package volumebinding

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/pgkube/pgkube/controllers/framework"
)

// Controller is the PersistentVolume binder. Its queue holds claims
// (namespaced keys) and volumes (keys without a namespace).
type Controller struct {
	pvs      *framework.Informer[*corev1.PersistentVolume]
	pvcs     *framework.Informer[*corev1.PersistentVolumeClaim]
	classes  *framework.Informer[*storagev1.StorageClass]
	nodes    *framework.Informer[*corev1.Node]
	client   func(cluster string) kubernetes.Interface
	recorder framework.Recorder
	workers  int
	queue    *framework.Queue
	// HostPathDir, when set, is where volumes for claims of
	// pgkube.io/hostpath classes are provisioned (--hostpath-dir).
	HostPathDir string
}

// New makes the binder.
func New(c *framework.Context) (framework.Runnable, error) {
	vc := &Controller{
		pvs: c.Factory.PersistentVolumes(), pvcs: c.Factory.PersistentVolumeClaims(),
		classes: c.Factory.StorageClasses(), nodes: c.Factory.Nodes(),
		client: c.Clients.For, recorder: c.Recorder, workers: c.Workers,
		HostPathDir: c.Options.HostPathDir,
	}
	if vc.workers <= 0 {
		vc.workers = 5
	}
	vc.queue = framework.NewQueue("persistentvolume-binder", vc.sync)
	vc.pvs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    vc.volumeEvent,
		UpdateFunc: func(_, cur any) { vc.volumeEvent(cur) },
		DeleteFunc: vc.volumeEvent,
	})
	vc.pvcs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    vc.claimEvent,
		UpdateFunc: func(_, cur any) { vc.claimEvent(cur) },
		DeleteFunc: vc.claimEvent,
	})
	return vc, nil
}

func (vc *Controller) volumeEvent(obj any) {
	v, ok := framework.ObjectFromEvent(obj).(*corev1.PersistentVolume)
	if !ok {
		return
	}
	vc.queue.Enqueue(framework.KeyOf(v))
	if ref := v.Spec.ClaimRef; ref != nil {
		vc.queue.Enqueue(framework.Key{Cluster: framework.ClusterOf(v), Namespace: ref.Namespace, Name: ref.Name})
	}
	// A volume that became free may fit a pending claim.
	if v.Spec.ClaimRef == nil {
		for _, c := range vc.pvcs.List(framework.ClusterOf(v), "", nil) {
			if c.Spec.VolumeName == "" {
				vc.queue.Enqueue(framework.KeyOf(c))
			}
		}
	}
}

func (vc *Controller) claimEvent(obj any) {
	c, ok := framework.ObjectFromEvent(obj).(*corev1.PersistentVolumeClaim)
	if !ok {
		return
	}
	vc.queue.Enqueue(framework.KeyOf(c))
	cluster := framework.ClusterOf(c)
	if c.Spec.VolumeName != "" {
		vc.queue.Enqueue(framework.Key{Cluster: cluster, Name: c.Spec.VolumeName})
	}
	// Volumes that referred to a deleted claim are released.
	for _, v := range vc.pvs.List(cluster, "", nil) {
		if ref := v.Spec.ClaimRef; ref != nil && ref.Namespace == c.Namespace && ref.Name == c.Name {
			vc.queue.Enqueue(framework.KeyOf(v))
		}
	}
}

// Run implements framework.Runnable.
func (vc *Controller) Run(ctx context.Context) {
	vc.queue.Run(ctx, vc.workers, vc.pvs.HasSynced, vc.pvcs.HasSynced, vc.classes.HasSynced, vc.nodes.HasSynced)
}

func (vc *Controller) sync(ctx context.Context, key framework.Key) error {
	if key.Namespace == "" {
		v, err := vc.pvs.Get(key.Cluster, "", key.Name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return vc.syncVolume(ctx, key.Cluster, v.DeepCopy())
	}
	c, err := vc.pvcs.Get(key.Cluster, key.Namespace, key.Name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return vc.syncClaim(ctx, key.Cluster, c.DeepCopy())
}

// ---- claims

func (vc *Controller) syncClaim(ctx context.Context, cluster string, claim *corev1.PersistentVolumeClaim) error {
	if claim.DeletionTimestamp != nil && claim.Spec.VolumeName == "" {
		return nil
	}
	if claim.Annotations[AnnBindCompleted] == "" {
		return vc.syncUnboundClaim(ctx, cluster, claim)
	}
	return vc.syncBoundClaim(ctx, cluster, claim)
}

// delayBinding: the claim's class waits for the first consumer and the
// scheduler has not chosen a node yet.
func (vc *Controller) delayBinding(cluster string, claim *corev1.PersistentVolumeClaim) (bool, *storagev1.StorageClass) {
	name := claimClass(claim)
	if name == "" {
		return false, nil
	}
	sc, err := vc.classes.Get(cluster, "", name)
	if err != nil {
		return false, nil
	}
	wffc := sc.VolumeBindingMode != nil && *sc.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer
	return wffc && claim.Annotations[AnnSelectedNode] == "", sc
}

func (vc *Controller) syncUnboundClaim(ctx context.Context, cluster string, claim *corev1.PersistentVolumeClaim) error {
	if claim.Spec.VolumeName == "" {
		delay, class := vc.delayBinding(cluster, claim)
		var node *corev1.Node
		if n := claim.Annotations[AnnSelectedNode]; n != "" {
			node, _ = vc.nodes.Get(cluster, "", n)
		}
		v := bestMatch(claim, vc.pvs.List(cluster, "", nil), node, delay)
		if v == nil {
			switch {
			case delay:
				vc.recorder.Eventf(claim, corev1.EventTypeNormal, "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
			case claimClass(claim) == "":
				vc.recorder.Eventf(claim, corev1.EventTypeNormal, "FailedBinding", "no persistent volumes available for this claim and no storage class is set")
			case class == nil:
				vc.recorder.Eventf(claim, corev1.EventTypeWarning, "ProvisioningFailed", "storageclass.storage.k8s.io %q not found", claimClass(claim))
			case class.Provisioner == HostPathProvisioner && vc.HostPathDir != "":
				if err := vc.setProvisioner(ctx, cluster, claim, class); err != nil {
					return err
				}
				if err := vc.provision(ctx, cluster, claim, class, node); err != nil {
					return err
				}
			default:
				if err := vc.setProvisioner(ctx, cluster, claim, class); err != nil {
					return err
				}
				vc.recorder.Eventf(claim, corev1.EventTypeNormal, "ExternalProvisioning",
					"Waiting for a volume to be created either by the external provisioner '%s' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.", class.Provisioner)
			}
			return vc.claimStatus(ctx, cluster, claim, corev1.ClaimPending, nil)
		}
		return vc.bind(ctx, cluster, v.DeepCopy(), claim)
	}
	// The claim names its volume.
	v, err := vc.pvs.Get(cluster, "", claim.Spec.VolumeName)
	if apierrors.IsNotFound(err) {
		return vc.claimStatus(ctx, cluster, claim, corev1.ClaimPending, nil)
	}
	if err != nil {
		return err
	}
	v = v.DeepCopy()
	if v.Spec.ClaimRef == nil {
		// Only if it fits, as upstream's checkVolumeSatisfyClaim.
		if msg := satisfies(v, claim); msg != "" {
			vc.recorder.Eventf(claim, corev1.EventTypeWarning, "VolumeMismatch", "%s", msg)
			return vc.claimStatus(ctx, cluster, claim, corev1.ClaimPending, nil)
		}
		return vc.bind(ctx, cluster, v, claim)
	}
	if boundToClaim(v, claim) {
		return vc.bind(ctx, cluster, v, claim)
	}
	vc.recorder.Eventf(claim, corev1.EventTypeWarning, "FailedBinding", "volume %q already bound to a different claim.", v.Name)
	return vc.claimStatus(ctx, cluster, claim, corev1.ClaimPending, nil)
}

// setProvisioner marks a claim to be provisioned with its class's
// provisioner, as upstream (external provisioners look for it).
func (vc *Controller) setProvisioner(ctx context.Context, cluster string, claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass) error {
	if claim.Annotations[AnnStorageProvisioner] == class.Provisioner && claim.Annotations[AnnBetaProvisioner] == class.Provisioner {
		return nil
	}
	metav1.SetMetaDataAnnotation(&claim.ObjectMeta, AnnStorageProvisioner, class.Provisioner)
	metav1.SetMetaDataAnnotation(&claim.ObjectMeta, AnnBetaProvisioner, class.Provisioner)
	framework.StripCluster(claim)
	nc, err := vc.client(cluster).CoreV1().PersistentVolumeClaims(claim.Namespace).Update(ctx, claim, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	*claim = *nc
	return nil
}

// satisfies is why a volume the claim names cannot serve it ("" if it can).
func satisfies(v *corev1.PersistentVolume, c *corev1.PersistentVolumeClaim) string {
	want, have := c.Spec.Resources.Requests[corev1.ResourceStorage], v.Spec.Capacity[corev1.ResourceStorage]
	if have.Cmp(want) < 0 {
		return "requested PV is too small"
	}
	if volumeClass(v) != claimClass(c) {
		return "storageClassName does not match"
	}
	if volumeMode(v.Spec.VolumeMode) != volumeMode(c.Spec.VolumeMode) {
		return "incompatible volumeMode"
	}
	if !hasModes(v, c.Spec.AccessModes) {
		return "incompatible accessMode"
	}
	return ""
}

func (vc *Controller) syncBoundClaim(ctx context.Context, cluster string, claim *corev1.PersistentVolumeClaim) error {
	if claim.Spec.VolumeName == "" {
		return vc.claimLost(ctx, cluster, claim, "ClaimLost", "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!")
	}
	v, err := vc.pvs.Get(cluster, "", claim.Spec.VolumeName)
	if apierrors.IsNotFound(err) {
		return vc.claimLost(ctx, cluster, claim, "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume is lost!")
	}
	if err != nil {
		return err
	}
	v = v.DeepCopy()
	if v.Spec.ClaimRef == nil || boundToClaim(v, claim) {
		return vc.bind(ctx, cluster, v, claim)
	}
	return vc.claimLost(ctx, cluster, claim, "ClaimMisbound", "Two claims are bound to the same volume, this one is bound incorrectly")
}

func (vc *Controller) claimLost(ctx context.Context, cluster string, claim *corev1.PersistentVolumeClaim, reason, msg string) error {
	if claim.Status.Phase == corev1.ClaimLost {
		return nil
	}
	vc.recorder.Eventf(claim, corev1.EventTypeWarning, reason, "%s", msg)
	return vc.claimStatus(ctx, cluster, claim, corev1.ClaimLost, nil)
}

// bind completes the binding in the order upstream does: the volume's
// claimRef, the volume's phase, the claim's volumeName and annotations,
// the claim's status.
func (vc *Controller) bind(ctx context.Context, cluster string, v *corev1.PersistentVolume, claim *corev1.PersistentVolumeClaim) error {
	cs := vc.client(cluster)
	if !boundToClaim(v, claim) || v.Spec.ClaimRef.UID == "" {
		if v.Spec.ClaimRef == nil {
			metav1.SetMetaDataAnnotation(&v.ObjectMeta, AnnBoundByController, "yes")
		}
		v.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
			Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID, ResourceVersion: claim.ResourceVersion}
		framework.StripCluster(v)
		nv, err := cs.CoreV1().PersistentVolumes().Update(ctx, v, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		v = nv
	}
	if v.Status.Phase != corev1.VolumeBound {
		v.Status.Phase, v.Status.Message, v.Status.Reason = corev1.VolumeBound, "", ""
		framework.StripCluster(v)
		nv, err := cs.CoreV1().PersistentVolumes().UpdateStatus(ctx, v, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		v = nv
	}
	if claim.Spec.VolumeName != v.Name || claim.Annotations[AnnBindCompleted] == "" {
		if claim.Spec.VolumeName != v.Name {
			metav1.SetMetaDataAnnotation(&claim.ObjectMeta, AnnBoundByController, "yes")
			claim.Spec.VolumeName = v.Name
		}
		metav1.SetMetaDataAnnotation(&claim.ObjectMeta, AnnBindCompleted, "yes")
		framework.StripCluster(claim)
		nc, err := cs.CoreV1().PersistentVolumeClaims(claim.Namespace).Update(ctx, claim, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		claim = nc
	}
	return vc.claimStatus(ctx, cluster, claim, corev1.ClaimBound, v)
}

// claimStatus sets the claim's phase; a bound claim shows its volume's
// capacity and access modes.
func (vc *Controller) claimStatus(ctx context.Context, cluster string, claim *corev1.PersistentVolumeClaim, phase corev1.PersistentVolumeClaimPhase, v *corev1.PersistentVolume) error {
	st := claim.Status.DeepCopy()
	st.Phase = phase
	if v != nil {
		st.AccessModes = v.Spec.AccessModes
		st.Capacity = v.Spec.Capacity
	}
	if phase == claim.Status.Phase && (v == nil ||
		(equalModes(claim.Status.AccessModes, v.Spec.AccessModes) && equalCapacity(claim.Status.Capacity, v.Spec.Capacity))) {
		return nil
	}
	claim = claim.DeepCopy()
	claim.Status = *st
	framework.StripCluster(claim)
	_, err := vc.client(cluster).CoreV1().PersistentVolumeClaims(claim.Namespace).UpdateStatus(ctx, claim, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func equalModes(a, b []corev1.PersistentVolumeAccessMode) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalCapacity(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, q := range a {
		if o, ok := b[k]; !ok || o.Cmp(q) != 0 {
			return false
		}
	}
	return true
}

// ---- volumes

func (vc *Controller) syncVolume(ctx context.Context, cluster string, v *corev1.PersistentVolume) error {
	if v.DeletionTimestamp != nil {
		return nil
	}
	ref := v.Spec.ClaimRef
	if ref == nil {
		return vc.volumePhase(ctx, cluster, v, corev1.VolumeAvailable, "", "")
	}
	if ref.UID == "" {
		// Reserved for a claim not bound yet: the claim's sync binds.
		vc.queue.Enqueue(framework.Key{Cluster: cluster, Namespace: ref.Namespace, Name: ref.Name})
		return vc.volumePhase(ctx, cluster, v, corev1.VolumeAvailable, "", "")
	}
	claim, err := vc.pvcs.Get(cluster, ref.Namespace, ref.Name)
	if apierrors.IsNotFound(err) {
		// The cache may lag: ask the server before releasing.
		claim, err = vc.client(cluster).CoreV1().PersistentVolumeClaims(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if err != nil || claim.UID != ref.UID {
		// The claim is gone: the volume is released and reclaimed.
		if v.Status.Phase != corev1.VolumeReleased && v.Status.Phase != corev1.VolumeFailed {
			if err := vc.volumePhase(ctx, cluster, v, corev1.VolumeReleased, "", ""); err != nil {
				return err
			}
		}
		return vc.reclaim(ctx, cluster, v)
	}
	switch claim.Spec.VolumeName {
	case "":
		vc.queue.Enqueue(framework.KeyOf(claim))
		return nil
	case v.Name:
		return vc.volumePhase(ctx, cluster, v, corev1.VolumeBound, "", "")
	}
	// The claim is bound to another volume.
	if v.Annotations[AnnProvisionedBy] != "" && v.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete {
		if v.Status.Phase != corev1.VolumeReleased && v.Status.Phase != corev1.VolumeFailed {
			if err := vc.volumePhase(ctx, cluster, v, corev1.VolumeReleased, "", ""); err != nil {
				return err
			}
		}
		return vc.reclaim(ctx, cluster, v)
	}
	if v.Annotations[AnnBoundByController] != "" {
		// Our reservation lost: free the volume.
		return vc.unbind(ctx, cluster, v)
	}
	return nil // pre-bound by the user: wait for the claim to let go
}

func (vc *Controller) unbind(ctx context.Context, cluster string, v *corev1.PersistentVolume) error {
	if v.Annotations[AnnBoundByController] != "" {
		v.Spec.ClaimRef = nil
		delete(v.Annotations, AnnBoundByController)
	} else {
		v.Spec.ClaimRef.UID = "" // keep the user's reservation
	}
	framework.StripCluster(v)
	nv, err := vc.client(cluster).CoreV1().PersistentVolumes().Update(ctx, v, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	return vc.volumePhase(ctx, cluster, nv, corev1.VolumeAvailable, "", "")
}

func (vc *Controller) volumePhase(ctx context.Context, cluster string, v *corev1.PersistentVolume, phase corev1.PersistentVolumePhase, reason, msg string) error {
	if v.Status.Phase == phase && v.Status.Reason == reason && v.Status.Message == msg {
		return nil
	}
	v = v.DeepCopy()
	now := metav1.Now()
	if v.Status.Phase != phase {
		v.Status.LastPhaseTransitionTime = &now
	}
	v.Status.Phase, v.Status.Reason, v.Status.Message = phase, reason, msg
	framework.StripCluster(v)
	_, err := vc.client(cluster).CoreV1().PersistentVolumes().UpdateStatus(ctx, v, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// reclaim applies a released volume's reclaim policy.
func (vc *Controller) reclaim(ctx context.Context, cluster string, v *corev1.PersistentVolume) error {
	switch v.Spec.PersistentVolumeReclaimPolicy {
	case corev1.PersistentVolumeReclaimRetain, "":
		return nil
	case corev1.PersistentVolumeReclaimRecycle:
		if v.Status.Phase == corev1.VolumeFailed {
			return nil
		}
		vc.recorder.Eventf(v, corev1.EventTypeWarning, "VolumeFailedRecycle", "No recycler plugin found for the volume!")
		return vc.volumePhase(ctx, cluster, v, corev1.VolumeFailed, "VolumeFailedRecycle", "No recycler plugin found for the volume!")
	case corev1.PersistentVolumeReclaimDelete:
		if v.Annotations[AnnProvisionedBy] == HostPathProvisioner {
			if err := vc.removeHostPath(v); err != nil {
				vc.recorder.Eventf(v, corev1.EventTypeWarning, "VolumeFailedDelete", "%v", err)
				return vc.volumePhase(ctx, cluster, v, corev1.VolumeFailed, "VolumeFailedDelete", err.Error())
			}
		}
		uid := v.UID
		err := vc.client(cluster).CoreV1().PersistentVolumes().Delete(ctx, v.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("deleting volume %s: %w", v.Name, err)
		}
		klog.FromContext(ctx).V(2).Info("Deleted released volume", "volume", v.Name, "cluster", cluster)
		return nil
	default:
		vc.recorder.Eventf(v, corev1.EventTypeWarning, "VolumeUnknownReclaimPolicy", "Volume has unrecognized PersistentVolumeReclaimPolicy")
		return vc.volumePhase(ctx, cluster, v, corev1.VolumeFailed, "VolumeUnknownReclaimPolicy", "Volume has unrecognized PersistentVolumeReclaimPolicy")
	}
}
