package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/pgtest"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// schPod is a pod asking for cpu (empty: nothing).
func schPod(name, cpu string, change ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}
	if cpu != "" {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}
	}
	for _, c := range change {
		c(p)
	}
	return p
}

func schTolerateControlPlane(p *corev1.Pod) {
	p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
}

// schRunningOn waits for a pod to run, and returns its node.
func schRunningOn(t *testing.T, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	var node string
	agWait(t, 30*time.Second, "pod "+name+" running", func() error {
		p, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("phase %s, node %q, conditions %+v", p.Status.Phase, p.Spec.NodeName, p.Status.Conditions)
		}
		node = p.Spec.NodeName
		return nil
	})
	return node
}

// schPending waits until the pod has PodScheduled=False with message
// want, and checks that it stays unscheduled for a while.
func schPending(t *testing.T, cs kubernetes.Interface, ns, name, want string) {
	t.Helper()
	ctx := context.Background()
	agWait(t, 30*time.Second, "pod "+name+" unschedulable", func() error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		c := agCondition(p, corev1.PodScheduled)
		if c == nil || c.Status != corev1.ConditionFalse || c.Reason != "Unschedulable" || c.Message != want {
			return fmt.Errorf("PodScheduled %+v, want False/Unschedulable/%q", c, want)
		}
		return nil
	})
	agWait(t, 10*time.Second, "FailedScheduling event of "+name, func() error {
		return agHasEvent(cs, ns, name, "FailedScheduling "+want)
	})
	time.Sleep(2 * time.Second)
	p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil || p.Spec.NodeName != "" || p.Status.Phase != corev1.PodPending {
		t.Fatalf("pod %s should stay pending: %v node %q phase %s", name, err, p.Spec.NodeName, p.Status.Phase)
	}
}

// TestScheduler: pgkube up's scheduler over three simulated nodes, two of
// them control-plane tainted: upstream's FailedScheduling message for a
// pod too big for any node, taints and tolerations, nodeSelector, retry
// when a node or the pod changes, and a higher-priority pod preempting a
// lower one.
func TestScheduler(t *testing.T) {
	certs, _ := testCerts(t)
	srv := startUp(t, tempDir(t), freePort(t), pgtest.NewDatabase(t), "--cert-dir", certs, "--agent=none")
	defer srv.stop() //nolint:errcheck
	startAgent(t, srv.kubeconfig, "--node-name", "sim", "--nodes", "3", "--capacity", "cpu=4,memory=8Gi", "--events=false")
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	k := wlKubectl(t, srv)
	ctx := context.Background()
	agWait(t, 30*time.Second, "3 nodes", func() error {
		l, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(l.Items) != 3 {
			return fmt.Errorf("%v, %d nodes", err, len(l.Items))
		}
		return nil
	})
	k.ok("taint", "node", "sim-1", "sim-2", "node-role.kubernetes.io/control-plane=:NoSchedule")
	k.ok("label", "node", "sim-1", "disk=ssd")
	namespace(t, cs, "sched")
	create := func(p *corev1.Pod) {
		t.Helper()
		if _, err := cs.CoreV1().Pods("sched").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	gone := func(name string) {
		t.Helper()
		if err := cs.CoreV1().Pods("sched").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		agWait(t, 30*time.Second, name+" deleted", func() error {
			if _, err := cs.CoreV1().Pods("sched").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("still there: %v", err)
			}
			return nil
		})
	}

	// Too big for any node: pending with upstream's message, as the
	// condition, the Event and kubectl describe say.
	create(schPod("big", "100"))
	bigMsg := "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. " +
		"preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
	schPending(t, cs, "sched", "big", bigMsg)
	contains(t, k.ok("describe", "pod", "-n", "sched", "big"), "FailedScheduling", "default-scheduler", "1 Insufficient cpu")
	gone("big")

	// Without a toleration pods go to the one untainted node; with one,
	// also to the tainted ones; nodeSelector picks the node.
	create(schPod("plain", ""))
	if n := schRunningOn(t, cs, "sched", "plain"); n != "sim-0" {
		t.Errorf("untolerating pod on %s, want sim-0", n)
	}
	create(schPod("ssd", "", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} }))
	schPending(t, cs, "sched", "ssd", "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "+
		"2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
	// Adding the toleration (a pod update) gets it scheduled, on the ssd node.
	p, err := cs.CoreV1().Pods("sched").Get(ctx, "ssd", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	schTolerateControlPlane(p)
	if _, err := cs.CoreV1().Pods("sched").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := schRunningOn(t, cs, "sched", "ssd"); n != "sim-1" {
		t.Errorf("ssd pod on %s, want sim-1", n)
	}
	p, _ = cs.CoreV1().Pods("sched").Get(ctx, "ssd", metav1.GetOptions{})
	var scheduled []string
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			scheduled = append(scheduled, string(c.Status))
		}
	}
	if strings.Join(scheduled, ",") != "True" {
		t.Errorf("PodScheduled conditions of a pod scheduled after failing: %v, want one True", scheduled)
	}
	create(schPod("tolerant", "", schTolerateControlPlane, func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{corev1.LabelHostname: "sim-2"}
	}))
	if n := schRunningOn(t, cs, "sched", "tolerant"); n != "sim-2" {
		t.Errorf("tolerant pod on %s, want sim-2", n)
	}
	// A node that gets the label a pending pod wants: the pod is placed
	// at once, not after the periodic retry.
	create(schPod("gpu", "", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"gpu": "true"} }))
	schPending(t, cs, "sched", "gpu", "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "+
		"2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
	labeled := time.Now()
	k.ok("label", "node", "sim-0", "gpu=true")
	if n := schRunningOn(t, cs, "sched", "gpu"); n != "sim-0" {
		t.Errorf("gpu pod on %s", n)
	}
	if d := time.Since(labeled); d > 20*time.Second {
		t.Errorf("gpu pod placed %v after its node was labeled", d)
	}
	for _, n := range []string{"plain", "ssd", "tolerant", "gpu"} {
		gone(n)
	}

	// Preemption: a low-priority pod fills sim-0; a high-priority pod that
	// needs the room evicts it and takes its place.
	for name, v := range map[string]int32{"low": 10, "high": 1000} {
		if _, err := cs.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: v},
			metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create(schPod("victim", "3", func(p *corev1.Pod) { p.Spec.PriorityClassName = "low" }))
	if n := schRunningOn(t, cs, "sched", "victim"); n != "sim-0" {
		t.Fatalf("victim on %s", n)
	}
	// Same priority: no preemption, and the message says why.
	create(schPod("peer", "3", func(p *corev1.Pod) { p.Spec.PriorityClassName = "low" }))
	schPending(t, cs, "sched", "peer", "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. "+
		"preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.")
	gone("peer")
	create(schPod("vip", "3", func(p *corev1.Pod) { p.Spec.PriorityClassName = "high" }))
	if n := schRunningOn(t, cs, "sched", "vip"); n != "sim-0" {
		t.Errorf("vip on %s, want sim-0", n)
	}
	vip, _ := cs.CoreV1().Pods("sched").Get(ctx, "vip", metav1.GetOptions{})
	if _, err := cs.CoreV1().Pods("sched").Get(ctx, "victim", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("victim still there: %v", err)
	}
	agWait(t, 10*time.Second, "Preempted event", func() error {
		return agHasEvent(cs, "sched", "victim", fmt.Sprintf("Preempted Preempted by pod %s on node sim-0", vip.UID))
	})
	agWait(t, 10*time.Second, "vip's FailedScheduling event", func() error {
		return agHasEvent(cs, "sched", "vip", "FailedScheduling 0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. "+
			"preemption: found a potential placement for pod on node sim-0, preempting 1 victims")
	})
}

// TestSchedulerLeaderElection: two schedulers, one holds the Lease
// kube-system/pgkube-scheduler and places pods; killed, the other takes
// over and places the next pods.
func TestSchedulerLeaderElection(t *testing.T) {
	certs, _ := testCerts(t)
	srv := startUp(t, tempDir(t), freePort(t), pgtest.NewDatabase(t), "--cert-dir", certs, "--agent=none", "--scheduler=false")
	defer srv.stop() //nolint:errcheck
	startAgent(t, srv.kubeconfig, "--node-name", "le", "--events=false")
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	namespace(t, cs, "le")
	// Nothing places pods without a scheduler.
	if _, err := cs.CoreV1().Pods("le").Create(ctx, schPod("p0", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if p, err := cs.CoreV1().Pods("le").Get(ctx, "p0", metav1.GetOptions{}); err != nil || p.Spec.NodeName != "" {
		t.Fatalf("placed without a scheduler: %v %q", err, p.Spec.NodeName)
	}
	scheds := map[string]*companionProc{}
	for _, id := range []string{"sched-a", "sched-b"} {
		scheds[id] = startCompanion(t, "scheduler", "--kubeconfig", srv.kubeconfig, "--leader-elect-identity", id)
	}
	holder := func() string {
		l, err := cs.CoordinationV1().Leases("kube-system").Get(ctx, "pgkube-scheduler", metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	var leader string
	agWait(t, 20*time.Second, "a leader", func() error {
		if leader = holder(); scheds[leader] == nil {
			return fmt.Errorf("holder %q", leader)
		}
		return nil
	})
	if n := schRunningOn(t, cs, "le", "p0"); n != "le" {
		t.Fatalf("p0 on %q", n)
	}
	scheds[leader].kill()
	killed := time.Now()
	if _, err := cs.CoreV1().Pods("le").Create(ctx, schPod("p1", ""), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	schRunningOn(t, cs, "le", "p1")
	if d := time.Since(killed); d > 25*time.Second {
		t.Errorf("the other scheduler took %v to place a pod", d)
	}
	if h := holder(); h == leader || scheds[h] == nil {
		t.Errorf("lease holder %q after %q was killed", h, leader)
	}
}
