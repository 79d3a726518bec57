package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

func evPod(name string, lbls map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: lbls},
		Spec: corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}
}

func waitPDB(t *testing.T, cs kubernetes.Interface, ns, name string, check func(*policyv1.PodDisruptionBudget) error) *policyv1.PodDisruptionBudget {
	t.Helper()
	var pdb *policyv1.PodDisruptionBudget
	within(t, 30*time.Second, "pdb "+name, func() (err error) {
		pdb, err = cs.PolicyV1().PodDisruptionBudgets(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		return check(pdb)
	})
	return pdb
}

func pdbIs(healthy, desired, expected, allowed int32) func(*policyv1.PodDisruptionBudget) error {
	return func(p *policyv1.PodDisruptionBudget) error {
		s := p.Status
		if s.ObservedGeneration != p.Generation || s.CurrentHealthy != healthy || s.DesiredHealthy != desired ||
			s.ExpectedPods != expected || s.DisruptionsAllowed != allowed {
			return fmt.Errorf("status %+v (generation %d)", s, p.Generation)
		}
		return nil
	}
}

func evict(cs kubernetes.Interface, ns, name string, opts *metav1.DeleteOptions) error {
	return cs.PolicyV1().Evictions(ns).Evict(context.Background(), &policyv1.Eviction{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, DeleteOptions: opts})
}

// TestEvictionWithBudget: the disruption controller's status and the
// eviction subresource that spends it.
func TestEvictionWithBudget(t *testing.T) {
	srv := sharedServer(t)
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	const ns = "evict-e2e"
	namespace(t, cs, ns)
	web := map[string]string{"app": "web"}
	for _, n := range []string{"a", "b", "c"} {
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, evPod(n, web), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		setPodReady(t, cs, ns, n, true)
	}
	_, err := cs.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: web}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pdb := waitPDB(t, cs, ns, "web", pdbIs(3, 2, 3, 1))
	if c := meta.FindStatusCondition(pdb.Status.Conditions, policyv1.DisruptionAllowedCondition); c == nil ||
		c.Status != metav1.ConditionTrue || c.Reason != policyv1.SufficientPodsReason {
		t.Errorf("condition %+v", c)
	}

	// 404 for a pod that does not exist.
	if err := evict(cs, ns, "nope", nil); !apierrors.IsNotFound(err) {
		t.Errorf("missing pod: %v", err)
	}
	// dry run spends nothing.
	if err := evict(cs, ns, "a", &metav1.DeleteOptions{DryRun: []string{"All"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods(ns).Get(ctx, "a", metav1.GetOptions{}); err != nil {
		t.Fatalf("dry-run eviction deleted the pod: %v", err)
	}
	// The one disruption allowed.
	if err := evict(cs, ns, "a", nil); err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, "pod a gone", func() error {
		if _, err := cs.CoreV1().Pods(ns).Get(ctx, "a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod a: %v", err)
		}
		return nil
	})
	waitPDB(t, cs, ns, "web", pdbIs(2, 2, 2, 0))
	// The next would violate the budget.
	err = evict(cs, ns, "b", nil)
	if !apierrors.IsTooManyRequests(err) {
		t.Fatalf("evicting b: %v, want 429", err)
	}
	st := err.(apierrors.APIStatus).Status()
	if st.Message != "Cannot evict pod as it would violate the pod's disruption budget." || st.Details == nil ||
		len(st.Details.Causes) != 1 || st.Details.Causes[0].Type != policyv1.DisruptionBudgetCause ||
		st.Details.Causes[0].Message != "The disruption budget web needs 2 healthy pods and has 2 currently" {
		t.Errorf("refusal %+v", st)
	}
	if _, err := cs.CoreV1().Pods(ns).Get(ctx, "b", metav1.GetOptions{}); err != nil {
		t.Fatalf("refused eviction deleted the pod: %v", err)
	}
	// An unready pod while the budget is short: refused too (IfHealthyBudget).
	setPodReady(t, cs, ns, "c", false)
	waitPDB(t, cs, ns, "web", pdbIs(1, 2, 2, 0))
	if err := evict(cs, ns, "c", nil); !apierrors.IsTooManyRequests(err) {
		t.Fatalf("evicting unready c: %v, want 429", err)
	}
	// AlwaysAllow lets unready pods go.
	patch := []byte(`{"spec":{"unhealthyPodEvictionPolicy":"AlwaysAllow"}}`)
	if _, err := cs.PolicyV1().PodDisruptionBudgets(ns).Patch(ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPDB(t, cs, ns, "web", pdbIs(1, 2, 2, 0))
	if err := evict(cs, ns, "c", nil); err != nil {
		t.Fatalf("evicting unready c with AlwaysAllow: %v", err)
	}
	// Pending pods are not protected.
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, evPod("pending", web), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := evict(cs, ns, "pending", nil); err != nil {
		t.Fatalf("evicting a pending pod: %v", err)
	}
	// The Eviction's deleteOptions are honoured: a wrong uid precondition
	// is a conflict, and the pod stays.
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, evPod("pending2", web), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = evict(cs, ns, "pending2", &metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: ptr.To(types.UID("wrong"))}})
	if !apierrors.IsConflict(err) {
		t.Errorf("eviction with a wrong uid precondition: %v, want 409", err)
	}
	if _, err := cs.CoreV1().Pods(ns).Get(ctx, "pending2", metav1.GetOptions{}); err != nil {
		t.Errorf("pod gone after a failed precondition: %v", err)
	}
	// Older clients' policy/v1beta1 Eviction is accepted too.
	body := []byte(`{"apiVersion":"policy/v1beta1","kind":"Eviction","metadata":{"name":"pending2","namespace":"` + ns + `"}}`)
	err = cs.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name("pending2").SubResource("eviction").
		SetHeader("Content-Type", "application/json").Body(body).Do(ctx).Error()
	if err != nil {
		t.Fatalf("v1beta1 eviction: %v", err)
	}
	if _, err := cs.CoreV1().Pods(ns).Get(ctx, "pending2", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("pod after v1beta1 eviction: %v", err)
	}
}

// TestPDBMaxUnavailablePercent: percentages are of the controllers' scale.
func TestPDBMaxUnavailablePercent(t *testing.T) {
	srv := sharedServer(t)
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	const ns = "pdb-pct-e2e"
	namespace(t, cs, ns)
	// The budget selects tier=pct: the ReplicaSet's pods and a bare pod
	// the ReplicaSet (app=pct) does not adopt.
	lbl := map[string]string{"tier": "pct"}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "pct"},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](4), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pct"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "pct", "tier": "pct"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx"}}}}}}
	if _, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pods []corev1.Pod
	within(t, 30*time.Second, "4 pods", func() error {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=pct"})
		if err != nil {
			return err
		}
		if len(l.Items) != 4 {
			return fmt.Errorf("%d pods", len(l.Items))
		}
		pods = l.Items
		return nil
	})
	for _, p := range pods[:3] {
		setPodReady(t, cs, ns, p.Name, true)
	}
	_, err := cs.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "pct"},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: ptr.To(intstr.FromString("50%")),
			Selector: &metav1.LabelSelector{MatchLabels: lbl}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitPDB(t, cs, ns, "pct", pdbIs(3, 2, 4, 1))
	// A bare pod under the budget: no controller, the sync fails safe.
	bare := evPod("bare", lbl)
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, bare, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPDB(t, cs, ns, "pct", func(p *policyv1.PodDisruptionBudget) error {
		c := meta.FindStatusCondition(p.Status.Conditions, policyv1.DisruptionAllowedCondition)
		if c == nil || c.Reason != policyv1.SyncFailedReason || p.Status.DisruptionsAllowed != 0 ||
			!strings.Contains(c.Message, `found no controller ref for pod "bare"`) {
			return fmt.Errorf("condition %+v allowed %d", c, p.Status.DisruptionsAllowed)
		}
		return nil
	})
}

// TestKubectlDrainWithBudget: kubectl drain evicts a node's pods through
// the eviction subresource, waiting while the budget refuses until the
// replacement elsewhere is ready.
func TestKubectlDrainWithBudget(t *testing.T) {
	srv := sharedServer(t)
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	k := wlKubectl(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ns = "drain-e2e"
	namespace(t, cs, ns)
	for _, n := range []string{"drain-node", "drain-spare"} {
		cs.CoreV1().Nodes().Delete(ctx, n, metav1.DeleteOptions{}) //nolint:errcheck
		if _, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		name := n
		t.Cleanup(func() { cs.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}) }) //nolint:errcheck
	}
	lbl := map[string]string{"app": "drain"}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "drain"},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: lbl},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: lbl},
				Spec: corev1.PodSpec{TerminationGracePeriodSeconds: ptr.To[int64](0),
					Containers: []corev1.Container{{Name: "c", Image: "nginx"}},
					Volumes:    []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}}}}}
	if _, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Plays scheduler and node agent: unbound pods go to target, bound
	// ones are reported Running and Ready.
	target := "drain-node"
	place := func() (placed int, err error) {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=drain"})
		if err != nil {
			return 0, err
		}
		for _, p := range l.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			if p.Spec.NodeName == "" {
				err := cs.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name},
					Target: corev1.ObjectReference{Kind: "Node", Name: target}}, metav1.CreateOptions{})
				if err != nil {
					return placed, err
				}
			}
			if p.Status.Phase != corev1.PodRunning {
				setPodReady(t, cs, ns, p.Name, true)
			}
			placed++
		}
		return placed, nil
	}
	within(t, 30*time.Second, "2 pods placed", func() error {
		n, err := place()
		if err == nil && n != 2 {
			err = fmt.Errorf("%d pods", n)
		}
		return err
	})
	_, err := cs.PolicyV1().PodDisruptionBudgets(ns).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "drain"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: lbl}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitPDB(t, cs, ns, "drain", pdbIs(2, 1, 2, 1))
	target = "drain-spare"
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			place() //nolint:errcheck
			time.Sleep(300 * time.Millisecond)
		}
	}()
	out, err := k.run("", "drain", "drain-node", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=90s")
	cancel()
	<-done
	if err != nil {
		t.Fatalf("kubectl drain: %v\n%s", err, out)
	}
	// Both pods at once would violate the budget: one eviction waited.
	if !strings.Contains(out, "node/drain-node drained") || !strings.Contains(out, "evicting pod "+ns+"/") ||
		!strings.Contains(out, "Cannot evict pod as it would violate the pod's disruption budget.") {
		t.Errorf("drain output:\n%s", out)
	}
	bg := context.Background()
	node, err := cs.CoreV1().Nodes().Get(bg, "drain-node", metav1.GetOptions{})
	if err != nil || !node.Spec.Unschedulable {
		t.Errorf("node not cordoned: %v", err)
	}
	l, err := cs.CoreV1().Pods(ns).List(bg, metav1.ListOptions{LabelSelector: "app=drain"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Items {
		if p.Spec.NodeName == "drain-node" {
			t.Errorf("pod %s still on the drained node", p.Name)
		}
	}
}
