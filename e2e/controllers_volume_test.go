package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/pgkube/pgkube/internal/pgtest"
)

func vbVolume(name, size, class string, policy corev1.PersistentVolumeReclaimPolicy) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName:              class,
			PersistentVolumeReclaimPolicy: policy,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/" + name}},
		}}
}

func vbClaim(name, size, class string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To(class),
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}}}}
}

func vbCreate(t *testing.T, cs kubernetes.Interface, ns string, objs ...any) {
	t.Helper()
	ctx := context.Background()
	for _, o := range objs {
		var err error
		switch o := o.(type) {
		case *corev1.PersistentVolume:
			cs.CoreV1().PersistentVolumes().Delete(ctx, o.Name, metav1.DeleteOptions{}) //nolint:errcheck
			_, err = cs.CoreV1().PersistentVolumes().Create(ctx, o, metav1.CreateOptions{})
			name := o.Name
			t.Cleanup(func() { cs.CoreV1().PersistentVolumes().Delete(ctx, name, metav1.DeleteOptions{}) }) //nolint:errcheck
		case *corev1.PersistentVolumeClaim:
			_, err = cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, o, metav1.CreateOptions{})
		case *storagev1.StorageClass:
			cs.StorageV1().StorageClasses().Delete(ctx, o.Name, metav1.DeleteOptions{}) //nolint:errcheck
			_, err = cs.StorageV1().StorageClasses().Create(ctx, o, metav1.CreateOptions{})
			name := o.Name
			t.Cleanup(func() { cs.StorageV1().StorageClasses().Delete(ctx, name, metav1.DeleteOptions{}) }) //nolint:errcheck
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func waitClaimBound(t *testing.T, cs kubernetes.Interface, ns, name, volume string) *corev1.PersistentVolumeClaim {
	t.Helper()
	var c *corev1.PersistentVolumeClaim
	within(t, 30*time.Second, "claim "+name+" bound to "+volume, func() (err error) {
		c, err = cs.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if c.Spec.VolumeName != volume || c.Status.Phase != corev1.ClaimBound {
			return fmt.Errorf("volumeName %q phase %s", c.Spec.VolumeName, c.Status.Phase)
		}
		return nil
	})
	return c
}

func waitVolumePhase(t *testing.T, cs kubernetes.Interface, name string, phase corev1.PersistentVolumePhase) *corev1.PersistentVolume {
	t.Helper()
	var v *corev1.PersistentVolume
	within(t, 30*time.Second, "volume "+name+" "+string(phase), func() (err error) {
		v, err = cs.CoreV1().PersistentVolumes().Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if v.Status.Phase != phase {
			return fmt.Errorf("phase %s", v.Status.Phase)
		}
		return nil
	})
	return v
}

// TestVolumeBinderSmallestAndRetain: a claim binds to the smallest volume
// that fits; both sides carry the binding; deleting the claim releases a
// Retain volume.
func TestVolumeBinderSmallestAndRetain(t *testing.T) {
	srv := sharedServer(t)
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	const ns = "vb-retain-e2e"
	namespace(t, cs, ns)
	vbCreate(t, cs, ns,
		vbVolume("vb-r-10g", "10Gi", "vb-std", corev1.PersistentVolumeReclaimRetain),
		vbVolume("vb-r-1g", "1Gi", "vb-std", corev1.PersistentVolumeReclaimRetain),
		vbVolume("vb-r-2g", "2Gi", "vb-std", corev1.PersistentVolumeReclaimRetain),
		vbVolume("vb-r-2g-other", "2Gi", "vb-other", corev1.PersistentVolumeReclaimRetain))
	waitVolumePhase(t, cs, "vb-r-1g", corev1.VolumeAvailable)
	vbCreate(t, cs, ns, vbClaim("data", "1500Mi", "vb-std"))
	c := waitClaimBound(t, cs, ns, "data", "vb-r-2g")
	if c.Annotations["pv.kubernetes.io/bind-completed"] != "yes" || c.Annotations["pv.kubernetes.io/bound-by-controller"] != "yes" {
		t.Errorf("claim annotations %v", c.Annotations)
	}
	if q := c.Status.Capacity[corev1.ResourceStorage]; q.String() != "2Gi" {
		t.Errorf("claim capacity %s", q.String())
	}
	v := waitVolumePhase(t, cs, "vb-r-2g", corev1.VolumeBound)
	if v.Spec.ClaimRef == nil || v.Spec.ClaimRef.Name != "data" || v.Spec.ClaimRef.UID != c.UID ||
		v.Annotations["pv.kubernetes.io/bound-by-controller"] != "yes" {
		t.Errorf("volume claimRef %+v annotations %v", v.Spec.ClaimRef, v.Annotations)
	}
	for _, other := range []string{"vb-r-1g", "vb-r-10g", "vb-r-2g-other"} {
		if o, _ := cs.CoreV1().PersistentVolumes().Get(ctx, other, metav1.GetOptions{}); o == nil || o.Spec.ClaimRef != nil {
			t.Errorf("%s was bound", other)
		}
	}
	// A claim naming its volume gets it, however big.
	named := vbClaim("named", "1Gi", "vb-std")
	named.Spec.VolumeName = "vb-r-10g"
	vbCreate(t, cs, ns, named)
	waitClaimBound(t, cs, ns, "named", "vb-r-10g")

	if err := cs.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	v = waitVolumePhase(t, cs, "vb-r-2g", corev1.VolumeReleased)
	if v.Spec.ClaimRef == nil {
		t.Error("released volume lost its claimRef")
	}
	// A new claim of the same name does not get the released volume
	// (nor any: the rest are too small or taken).
	vbCreate(t, cs, ns, vbClaim("data", "1500Mi", "vb-std"))
	vbStaysPending(t, cs, ns, "data", 3*time.Second)
}

func vbStaysPending(t *testing.T, cs kubernetes.Interface, ns, name string, d time.Duration) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		c, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c.Spec.VolumeName != "" || c.Status.Phase != corev1.ClaimPending {
			t.Fatalf("claim %s: volumeName %q phase %s, want Pending", name, c.Spec.VolumeName, c.Status.Phase)
		}
	}
}

// TestVolumeBinderDeleteAndRecycle: a released Delete volume is deleted;
// Recycle is not supported: the volume fails.
func TestVolumeBinderDeleteAndRecycle(t *testing.T) {
	srv := sharedServer(t)
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	const ns = "vb-delete-e2e"
	namespace(t, cs, ns)
	vbCreate(t, cs, ns,
		vbVolume("vb-d-del", "1Gi", "vb-del", corev1.PersistentVolumeReclaimDelete),
		vbVolume("vb-d-rec", "1Gi", "vb-rec", corev1.PersistentVolumeReclaimRecycle))
	vbCreate(t, cs, ns, vbClaim("del", "1Gi", "vb-del"), vbClaim("rec", "1Gi", "vb-rec"))
	waitClaimBound(t, cs, ns, "del", "vb-d-del")
	waitClaimBound(t, cs, ns, "rec", "vb-d-rec")
	for _, n := range []string{"del", "rec"} {
		if err := cs.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	within(t, 30*time.Second, "Delete volume removed", func() error {
		_, err := cs.CoreV1().PersistentVolumes().Get(ctx, "vb-d-del", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
	v := waitVolumePhase(t, cs, "vb-d-rec", corev1.VolumeFailed)
	if v.Status.Message != "No recycler plugin found for the volume!" {
		t.Errorf("recycle message %q", v.Status.Message)
	}
}

// TestVolumeBinderWaitForFirstConsumer: a claim of a WaitForFirstConsumer
// class stays Pending until the scheduler picks a node (selected-node),
// then binds to a volume whose node affinity admits that node; a volume
// the scheduler reserved (claimRef) is bound as it is.
func TestVolumeBinderWaitForFirstConsumer(t *testing.T) {
	srv := sharedServer(t)
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	const ns = "vb-wffc-e2e"
	namespace(t, cs, ns)
	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	for _, n := range []string{"vb-node-a", "vb-node-b"} {
		cs.CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{}) //nolint:errcheck
		_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n,
			Labels: map[string]string{"kubernetes.io/hostname": n}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		name := n
		t.Cleanup(func() { cs.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}) }) //nolint:errcheck
	}
	local := func(name, node string) *corev1.PersistentVolume {
		v := vbVolume(name, "1Gi", "vb-wffc", corev1.PersistentVolumeReclaimRetain)
		v.Spec.HostPath, v.Spec.Local = nil, &corev1.LocalVolumeSource{Path: "/mnt/" + name}
		v.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}}}}}}
		return v
	}
	vbCreate(t, cs, ns,
		&storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "vb-wffc"}, Provisioner: "kubernetes.io/no-provisioner", VolumeBindingMode: &wffc},
		local("vb-w-a", "vb-node-a"), local("vb-w-b", "vb-node-b"), local("vb-w-b2", "vb-node-b"))
	vbCreate(t, cs, ns, vbClaim("w", "1Gi", "vb-wffc"), vbClaim("reserved", "1Gi", "vb-wffc"))
	vbStaysPending(t, cs, ns, "w", 3*time.Second)
	patch := []byte(`{"metadata":{"annotations":{"volume.kubernetes.io/selected-node":"vb-node-b"}}}`)
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Patch(ctx, "w", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	c := waitClaimBound(t, cs, ns, "w", "vb-w-b")
	if v := waitVolumePhase(t, cs, "vb-w-b", corev1.VolumeBound); v.Spec.ClaimRef == nil || v.Spec.ClaimRef.UID != c.UID {
		t.Errorf("claimRef %+v", v.Spec.ClaimRef)
	}
	// As the scheduler reserves a volume: claimRef on the volume.
	r, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "reserved", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref := fmt.Sprintf(`{"metadata":{"annotations":{"pv.kubernetes.io/bound-by-controller":"yes"}},"spec":{"claimRef":{"kind":"PersistentVolumeClaim","apiVersion":"v1","namespace":%q,"name":"reserved","uid":%q}}}`, ns, r.UID)
	if _, err := cs.CoreV1().PersistentVolumes().Patch(ctx, "vb-w-a", types.MergePatchType, []byte(ref), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitClaimBound(t, cs, ns, "reserved", "vb-w-a")
	waitVolumePhase(t, cs, "vb-w-b2", corev1.VolumeAvailable)
}

// TestHostPathProvisioning: with the real scheduler and node agent, a
// pod's claim of a WaitForFirstConsumer pgkube.io/hostpath class gets a
// volume provisioned on the chosen node under --hostpath-dir, bound, and
// the pod runs there; with the claim deleted the Delete volume and its
// directory go.
func TestHostPathProvisioning(t *testing.T) {
	certs, _ := testCerts(t)
	volDir := t.TempDir()
	srv := startUp(t, tempDir(t), freePort(t), pgtest.NewDatabase(t), "--cert-dir", certs,
		"--agent=simulated", "--controller-manager-flags", "--hostpath-dir="+volDir)
	defer srv.stop() //nolint:errcheck
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	const ns = "hostpath"
	namespace(t, cs, ns)
	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	vbCreate(t, cs, ns, &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local"},
		Provisioner: "pgkube.io/hostpath", VolumeBindingMode: &wffc})
	vbCreate(t, cs, ns, vbClaim("data", "1Gi", "local"))
	vbStaysPending(t, cs, ns, "data", 2*time.Second)
	_, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}},
			Volumes: []corev1.Volume{{Name: "d", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var c *corev1.PersistentVolumeClaim
	within(t, 60*time.Second, "claim bound", func() (err error) {
		c, err = cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
		if err == nil && c.Status.Phase != corev1.ClaimBound {
			err = fmt.Errorf("phase %s", c.Status.Phase)
		}
		return err
	})
	node := c.Annotations["volume.kubernetes.io/selected-node"]
	if c.Spec.VolumeName != "pvc-"+string(c.UID) || node == "" || c.Annotations["volume.kubernetes.io/storage-provisioner"] != "pgkube.io/hostpath" {
		t.Fatalf("claim %s annotations %v", c.Spec.VolumeName, c.Annotations)
	}
	v := waitVolumePhase(t, cs, c.Spec.VolumeName, corev1.VolumeBound)
	if v.Spec.HostPath == nil || !strings.HasPrefix(v.Spec.HostPath.Path, volDir+"/") ||
		v.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || v.Spec.NodeAffinity == nil {
		t.Fatalf("volume %+v", v.Spec)
	}
	if _, err := os.Stat(v.Spec.HostPath.Path); err != nil {
		t.Errorf("volume directory: %v", err)
	}
	p := waitPod(t, cs, ns, "app", func(p *corev1.Pod) error {
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("phase %s", p.Status.Phase)
		}
		return nil
	})
	if p.Spec.NodeName != node {
		t.Errorf("pod on %q, volume on %q", p.Spec.NodeName, node)
	}
	zero := int64(0)
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "app", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	within(t, 60*time.Second, "provisioned volume deleted", func() error {
		_, err := cs.CoreV1().PersistentVolumes().Get(ctx, v.Name, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("volume: %v", err)
		}
		if _, err := os.Stat(v.Spec.HostPath.Path); !os.IsNotExist(err) {
			return fmt.Errorf("directory: %v", err)
		}
		return nil
	})
}
