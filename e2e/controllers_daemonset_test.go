package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/pgtest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// dsPods are "node=hash" of the DaemonSet's live pods, sorted, and
// whether every one of them is Ready.
func dsPods(t *testing.T, cs kubernetes.Interface, ns string) ([]string, bool) {
	t.Helper()
	l, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=agentd"})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ready := true
	for _, p := range l.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		out = append(out, p.Spec.NodeName+"="+p.Labels[appsv1.DefaultDaemonSetUniqueLabelKey])
		r := false
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				r = true
			}
		}
		ready = ready && r
	}
	sort.Strings(out)
	return out, ready
}

// TestControllersDaemonSet: pgkube up's DaemonSet controller over
// simulated nodes: a pod on each of three nodes (placed by the scheduler
// through node affinity for the node), one on a fourth node that joins
// later, status, ControllerRevisions, and a rolling update.
func TestControllersDaemonSet(t *testing.T) {
	certs, _ := testCerts(t)
	srv := startUp(t, tempDir(t), freePort(t), pgtest.NewDatabase(t), "--cert-dir", certs, "--agent=none")
	defer srv.stop() //nolint:errcheck
	startAgent(t, srv.kubeconfig, "--runtime", "simulated", "--nodes", "3", "--node-name", "dsnode", "--events=false")
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	const ns = "ctl-ds"
	namespace(t, cs, ns)
	const wait = 60 * time.Second

	one := intstr.FromInt32(1)
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agentd"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "agentd"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "agentd"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "agentd:1"}}},
			},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{MaxUnavailable: &one}},
		},
	}
	if _, err := cs.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var hash1 string
	agWait(t, wait, "a ready pod on each of the 3 nodes", func() error {
		pods, ready := dsPods(t, cs, ns)
		if len(pods) != 3 || !ready || !strings.HasPrefix(pods[0], "dsnode-0=") || !strings.HasPrefix(pods[1], "dsnode-1=") || !strings.HasPrefix(pods[2], "dsnode-2=") {
			return fmt.Errorf("pods %v ready %v", pods, ready)
		}
		hash1 = strings.SplitN(pods[0], "=", 2)[1]
		got, err := cs.AppsV1().DaemonSets(ns).Get(ctx, "agentd", metav1.GetOptions{})
		if err != nil {
			return err
		}
		s := got.Status
		if s.DesiredNumberScheduled != 3 || s.CurrentNumberScheduled != 3 || s.NumberReady != 3 || s.NumberAvailable != 3 ||
			s.UpdatedNumberScheduled != 3 || s.NumberMisscheduled != 0 || s.ObservedGeneration != got.Generation {
			return fmt.Errorf("status %+v", s)
		}
		return nil
	})
	if hash1 == "" {
		t.Fatal("pods carry no controller-revision-hash")
	}
	// Each pod has the node affinity and the daemon tolerations.
	l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Items {
		terms := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
		if len(terms) != 1 || len(terms[0].MatchFields) != 1 || terms[0].MatchFields[0].Values[0] != p.Spec.NodeName {
			t.Errorf("pod %s on %s: affinity %+v", p.Name, p.Spec.NodeName, terms)
		}
		keys := map[string]bool{}
		for _, tol := range p.Spec.Tolerations {
			keys[tol.Key+":"+string(tol.Effect)] = true
		}
		for _, k := range []string{"node.kubernetes.io/unreachable:NoExecute", "node.kubernetes.io/not-ready:NoExecute",
			"node.kubernetes.io/unschedulable:NoSchedule", "node.kubernetes.io/disk-pressure:NoSchedule"} {
			if !keys[k] {
				t.Errorf("pod %s lacks toleration %s: %v", p.Name, k, p.Spec.Tolerations)
			}
		}
		if ref := metav1.GetControllerOf(&p); ref == nil || ref.Kind != "DaemonSet" || ref.Name != "agentd" {
			t.Errorf("pod %s controller %+v", p.Name, ref)
		}
	}
	revs, err := cs.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(revs.Items) != 1 || revs.Items[0].Labels[appsv1.DefaultDaemonSetUniqueLabelKey] != hash1 || revs.Items[0].Revision != 1 {
		t.Fatalf("revisions %v: %+v", err, revs)
	}
	if evs := agEvents(cs, ns, "agentd"); !strings.Contains(strings.Join(evs, "\n"), "SuccessfulCreate Created pod: agentd-") {
		t.Errorf("events %v", evs)
	}

	// A fourth node joins: it gets a pod too.
	startAgent(t, srv.kubeconfig, "--runtime", "simulated", "--node-name", "dsextra", "--events=false")
	agWait(t, wait, "a pod on the new node", func() error {
		pods, ready := dsPods(t, cs, ns)
		if len(pods) != 4 || !ready || pods[0] != "dsextra="+hash1 {
			return fmt.Errorf("pods %v ready %v", pods, ready)
		}
		got, err := cs.AppsV1().DaemonSets(ns).Get(ctx, "agentd", metav1.GetOptions{})
		if err != nil || got.Status.DesiredNumberScheduled != 4 || got.Status.NumberAvailable != 4 {
			return fmt.Errorf("%v status %+v", err, got.Status)
		}
		return nil
	})

	// A node the pod may not run on: its pod goes, and it no longer counts.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := cs.CoreV1().Nodes().Get(ctx, "dsextra", metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoExecute})
		_, err = cs.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	agWait(t, wait, "the pod leaves the tainted node", func() error {
		pods, _ := dsPods(t, cs, ns)
		got, err := cs.AppsV1().DaemonSets(ns).Get(ctx, "agentd", metav1.GetOptions{})
		if len(pods) != 3 || err != nil || got.Status.DesiredNumberScheduled != 3 || got.Status.NumberMisscheduled != 0 {
			return fmt.Errorf("pods %v, %v status %+v", pods, err, got.Status)
		}
		return nil
	})

	// A new template: rolled out one node at a time, with a new revision.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := cs.AppsV1().DaemonSets(ns).Get(ctx, "agentd", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Spec.Template.Spec.Containers[0].Image = "agentd:2"
		_, err = cs.AppsV1().DaemonSets(ns).Update(ctx, cur, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	maxDown := 0
	agWait(t, wait, "every pod updated", func() error {
		pods, ready := dsPods(t, cs, ns)
		if d := 3 - len(pods); d > maxDown {
			maxDown = d
		}
		got, err := cs.AppsV1().DaemonSets(ns).Get(ctx, "agentd", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(pods) != 3 || !ready || got.Status.UpdatedNumberScheduled != 3 || got.Status.NumberAvailable != 3 {
			return fmt.Errorf("pods %v ready %v status %+v", pods, ready, got.Status)
		}
		for _, p := range pods {
			if strings.HasSuffix(p, "="+hash1) {
				return fmt.Errorf("old pod left: %v", pods)
			}
		}
		return nil
	})
	if maxDown > 1 {
		t.Errorf("%d nodes without a pod at once, maxUnavailable is 1", maxDown)
	}
	revs, err = cs.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(revs.Items) != 2 {
		t.Fatalf("revisions after the update %v: %d", err, len(revs.Items))
	}
}
