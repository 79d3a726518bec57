package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// TestNamespaceFinalize: a deleted namespace waits in Terminating with its
// "kubernetes" finalizer; once the namespace controller's job is done and
// it clears spec.finalizers through /finalize, the namespace is gone.
// Creating content in it meanwhile is refused.
func TestNamespaceFinalize(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "finalize-me"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ns.Status.Phase != corev1.NamespaceActive || len(ns.Spec.Finalizers) != 1 || ns.Spec.Finalizers[0] != corev1.FinalizerKubernetes {
		t.Fatalf("new namespace: %+v %+v", ns.Spec, ns.Status)
	}
	// Content held by a finalizer keeps the namespace controller from
	// finalizing it, so the test can.
	if _, err := cs.CoreV1().ConfigMaps("finalize-me").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held",
		Finalizers: []string{"e2e.pgkube.io/hold"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Namespaces().Delete(ctx, "finalize-me", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ns, err = cs.CoreV1().Namespaces().Get(ctx, "finalize-me", metav1.GetOptions{})
	if err != nil || ns.Status.Phase != corev1.NamespaceTerminating || ns.DeletionTimestamp == nil {
		t.Fatalf("deleted namespace should be Terminating: %v %+v", err, ns)
	}
	// Admission caches active namespaces for a moment; the refusal must
	// come at the latest when that moment has passed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err = cs.CoreV1().ConfigMaps("finalize-me").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "late"}}, metav1.CreateOptions{})
		if apierrors.IsForbidden(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create in a terminating namespace: want Forbidden, got %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// An update cannot drop spec.finalizers; only /finalize can. (The
	// namespace controller writes the status meanwhile: conflicts retry.)
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := cs.CoreV1().Namespaces().Get(ctx, "finalize-me", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Spec.Finalizers = nil
		ns, err = cs.CoreV1().Namespaces().Update(ctx, cur, metav1.UpdateOptions{})
		return err
	}); err != nil || len(ns.Spec.Finalizers) != 1 {
		t.Fatalf("a plain update changed spec.finalizers: %v %+v", err, ns)
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := cs.CoreV1().Namespaces().Get(ctx, "finalize-me", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Spec.Finalizers = nil
		_, err = cs.CoreV1().Namespaces().Finalize(ctx, cur, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, "finalize-me", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("finalized namespace should be gone, got %v", err)
	}
	// The held ConfigMap outlived its namespace (as upstream, when a
	// namespace is finalized by hand); let it go.
	cs.CoreV1().ConfigMaps("finalize-me").Patch(ctx, "held", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}) //nolint:errcheck
	// The system namespaces cannot be deleted.
	if err := cs.CoreV1().Namespaces().Delete(ctx, "kube-system", metav1.DeleteOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("deleting kube-system: want Forbidden, got %v", err)
	}
}

// TestReplicationControllerScale: the scale subresource of a kind whose
// selector is a plain map.
func TestReplicationControllerScale(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, true))
	namespace(t, cs, "rc-scale")
	_, err := cs.CoreV1().ReplicationControllers("rc-scale").Create(ctx, &corev1.ReplicationController{
		ObjectMeta: metav1.ObjectMeta{Name: "rc"},
		Spec: corev1.ReplicationControllerSpec{Replicas: ptr.To[int32](1), Selector: map[string]string{"app": "rc"},
			Template: &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "rc"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := cs.CoreV1().ReplicationControllers("rc-scale").GetScale(ctx, "rc", metav1.GetOptions{})
	if err != nil || sc.Spec.Replicas != 1 || sc.Status.Selector != "app=rc" {
		t.Fatalf("scale: %v %+v", err, sc)
	}
	// The replication manager writes the controller's status meanwhile:
	// each try starts from a fresh read.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc, err := cs.CoreV1().ReplicationControllers("rc-scale").GetScale(ctx, "rc", metav1.GetOptions{})
		if err != nil {
			return err
		}
		sc.Spec.Replicas = 4
		_, err = cs.CoreV1().ReplicationControllers("rc-scale").UpdateScale(ctx, "rc", sc, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := cs.CoreV1().ReplicationControllers("rc-scale").Get(ctx, "rc", metav1.GetOptions{})
	if *rc.Spec.Replicas != 4 || rc.Generation != 2 {
		t.Fatalf("after scale: replicas %d generation %d", *rc.Spec.Replicas, rc.Generation)
	}
	if _, err := cs.CoreV1().ReplicationControllers("rc-scale").UpdateScale(ctx, "rc", sc, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Fatalf("scale with a stale resourceVersion: want Conflict, got %v", err)
	}
	sc, _ = cs.CoreV1().ReplicationControllers("rc-scale").GetScale(ctx, "rc", metav1.GetOptions{})
	sc.Spec.Replicas = -1
	if _, err := cs.CoreV1().ReplicationControllers("rc-scale").UpdateScale(ctx, "rc", sc, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
		t.Fatalf("negative replicas: want Invalid, got %v", err)
	}
}

// TestStatusWritesAndMetadata: as upstream, a built-in kind's status write
// may change annotations (controllers record state there) but not what the
// kind's status strategy resets: a Deployment's labels, a Pod's owners;
// and never the spec.
func TestStatusWritesAndMetadata(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	namespace(t, cs, "status-meta")
	labels := map[string]string{"app": "s"}
	d, err := cs.AppsV1().Deployments("status-meta").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "d", Labels: map[string]string{"keep": "me"}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](0), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d, err = cs.AppsV1().Deployments("status-meta").Get(ctx, "d", metav1.GetOptions{})
		if err != nil {
			return err
		}
		d.Annotations = map[string]string{"noted": "by-status"}
		d.Labels = map[string]string{"changed": "by-status"}
		d.Spec.Replicas = ptr.To[int32](7)
		_, err = cs.AppsV1().Deployments("status-meta").UpdateStatus(ctx, d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := cs.AppsV1().Deployments("status-meta").Get(ctx, "d", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Annotations["noted"] != "by-status" || got.Labels["keep"] != "me" || got.Labels["changed"] != "" || *got.Spec.Replicas != 0 {
		t.Errorf("after a status write: annotations %v labels %v replicas %d; want the annotation, the old labels, the old spec",
			got.Annotations, got.Labels, *got.Spec.Replicas)
	}

	// A real owner, so that the garbage collector leaves the pod alone.
	o, err := cs.CoreV1().ConfigMaps("status-meta").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "o"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	owner := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "o", UID: o.UID}
	p, err := cs.CoreV1().Pods("status-meta").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", OwnerReferences: []metav1.OwnerReference{owner}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.OwnerReferences = nil
	p.Annotations = map[string]string{"kubelet": "was-here"}
	if p, err = cs.CoreV1().Pods("status-meta").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(p.OwnerReferences) != 1 || p.Annotations["kubelet"] != "was-here" {
		t.Errorf("after a pod status write: owners %v annotations %v; want the owner kept and the annotation", p.OwnerReferences, p.Annotations)
	}
}

// TestPodBindingAndGracefulDelete: pods/binding as upstream (one
// PodScheduled condition, the nomination cleared, gated pods refused,
// conflicts naming pods/binding), and a pod in its grace period survives
// status writes until its node ends it.
func TestPodBindingAndGracefulDelete(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	namespace(t, cs, "binding")
	pods := cs.CoreV1().Pods("binding")
	mk := func(name string, gated bool) *corev1.Pod {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
		if gated {
			p.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "example.com/wait"}}
		}
		p, err := pods.Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	bind := func(name string) error {
		return pods.Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: name}, Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}},
			metav1.CreateOptions{})
	}
	p := mk("p", false)
	p.Status.NominatedNodeName = "n1"
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable"}}
	if _, err := pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := bind("p"); err != nil {
		t.Fatal(err)
	}
	got, err := pods.Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range got.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			n++
			if c.Status != corev1.ConditionTrue {
				t.Errorf("PodScheduled %s after binding", c.Status)
			}
		}
	}
	if n != 1 || got.Spec.NodeName != "n1" || got.Status.NominatedNodeName != "" {
		t.Errorf("after binding: %d PodScheduled conditions, node %q, nominated %q", n, got.Spec.NodeName, got.Status.NominatedNodeName)
	}
	if err := bind("p"); !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "pods/binding") {
		t.Errorf("binding a bound pod: %v, want a pods/binding conflict", err)
	}
	mk("gated", true)
	if err := bind("gated"); !apierrors.IsConflict(err) || !strings.Contains(err.Error(), "schedulingGates") {
		t.Errorf("binding a gated pod: %v, want a conflict", err)
	}

	// In its grace period, a status write does not end the pod.
	if err := pods.Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](30)}); err != nil {
		t.Fatal(err)
	}
	got, err = pods.Get(ctx, "p", metav1.GetOptions{})
	if err != nil || got.DeletionTimestamp == nil {
		t.Fatalf("a pod deleted with a grace period: %v %v", err, got)
	}
	got.Status.Phase = corev1.PodRunning
	if _, err := pods.UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("status write in the grace period: %v", err)
	}
	if _, err := pods.Get(ctx, "p", metav1.GetOptions{}); err != nil {
		t.Errorf("after a status write in its grace period the pod is gone: %v", err)
	}
	if err := pods.Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "p", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after the node's final delete: %v, want NotFound", err)
	}
}
