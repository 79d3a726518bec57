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
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// nodeTaints are "key:Effect" of a node's taints, sorted.
func nodeTaints(n *corev1.Node) []string {
	var out []string
	for _, t := range n.Spec.Taints {
		out = append(out, t.Key+":"+string(t.Effect))
	}
	sort.Strings(out)
	return out
}

// TestControllersNodeLifecycle: three simulated nodes, each its own agent
// process; a Deployment tolerates unreachable nodes for 5s. The agent of a
// node with pods is killed: its Lease stops, the node becomes Unknown and
// tainted, its pods are evicted (DisruptionTarget, TaintManagerEviction)
// and the ReplicaSet replaces them on the other nodes. The agent comes
// back: the taints go.
func TestControllersNodeLifecycle(t *testing.T) {
	certs, _ := testCerts(t)
	srv := startUp(t, tempDir(t), freePort(t), pgtest.NewDatabase(t), "--cert-dir", certs, "--agent=none",
		"--controller-manager-flags=--node-monitor-grace-period=4s")
	defer srv.stop() //nolint:errcheck
	agentArgs := func(name string) []string {
		return []string{"--runtime", "simulated", "--node-name", name, "--node-lease-duration", "4s", "--node-lease-renew-interval", "1s", "--events=false"}
	}
	agents := map[string]*companionProc{}
	for _, n := range []string{"nl-a", "nl-b", "nl-c"} {
		agents[n] = startAgent(t, srv.kubeconfig, agentArgs(n)...)
	}
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	const ns = "ctl-nl"
	namespace(t, cs, ns)
	const wait = 60 * time.Second
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		nodes, _ := cs.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		for _, n := range nodes.Items {
			t.Logf("node %s taints %v conditions %+v", n.Name, nodeTaints(&n), n.Status.Conditions)
		}
		pods, _ := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		for _, p := range pods.Items {
			t.Logf("pod %s node %s phase %s deleting %v conditions %+v", p.Name, p.Spec.NodeName, p.Status.Phase, p.DeletionTimestamp != nil, p.Status.Conditions)
		}
		for _, line := range strings.Split(srv.output(), "\n") {
			if strings.Contains(line, "Unknown") || strings.Contains(line, "nodelifecycle") || strings.Contains(line, "panic") {
				t.Log(line)
			}
		}
	})

	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](4),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "c", Image: "web:1"}},
					Tolerations: []corev1.Toleration{
						{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](5)},
						{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: ptr.To[int64](5)},
					},
				},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// podsByNode: live (not terminating) ready pods per node.
	podsByNode := func() (map[string][]string, int) {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string][]string{}
		ready := 0
		for _, p := range l.Items {
			if p.DeletionTimestamp != nil || p.Spec.NodeName == "" {
				continue
			}
			m[p.Spec.NodeName] = append(m[p.Spec.NodeName], p.Name)
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return m, ready
	}
	agWait(t, wait, "4 ready pods", func() error {
		if m, ready := podsByNode(); ready != 4 {
			return fmt.Errorf("%d ready: %v", ready, m)
		}
		return nil
	})
	m, _ := podsByNode()
	var victim string
	for _, n := range []string{"nl-a", "nl-b", "nl-c"} {
		if len(m[n]) > 0 {
			victim = n
			break
		}
	}
	evicted := m[victim]
	t.Logf("stopping the agent of %s, which runs %v", victim, evicted)
	stopped := time.Now()
	agents[victim].kill()

	agWait(t, wait, "the node Unknown and tainted", func() error {
		n, err := cs.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
		if err != nil {
			return err
		}
		var ready *corev1.NodeCondition
		for i := range n.Status.Conditions {
			if n.Status.Conditions[i].Type == corev1.NodeReady {
				ready = &n.Status.Conditions[i]
			}
		}
		if ready == nil || ready.Status != corev1.ConditionUnknown || ready.Reason != "NodeStatusUnknown" || ready.Message != "Kubelet stopped posting node status." {
			return fmt.Errorf("Ready %+v", ready)
		}
		got := strings.Join(nodeTaints(n), ",")
		if got != "node.kubernetes.io/unreachable:NoExecute,node.kubernetes.io/unreachable:NoSchedule" {
			return fmt.Errorf("taints %s", got)
		}
		return nil
	})
	// The last renewal was up to 1s before the kill.
	if d := time.Since(stopped); d < 3*time.Second {
		t.Errorf("node marked Unknown %v after its agent stopped, before the 4s grace period", d)
	}
	// The other nodes stay Ready and untainted.
	for _, n := range []string{"nl-a", "nl-b", "nl-c"} {
		if n == victim {
			continue
		}
		node, err := cs.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err != nil || len(node.Spec.Taints) != 0 {
			t.Errorf("node %s: %v taints %v", n, err, nodeTaints(node))
		}
	}
	agWait(t, wait, "the pods evicted and replaced elsewhere", func() error {
		for _, name := range evicted {
			p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				continue // gone
			}
			if p.DeletionTimestamp == nil {
				return fmt.Errorf("pod %s not deleted", name)
			}
			dt := false
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue && c.Reason == "DeletionByTaintManager" {
					dt = true
				}
				// No agent is left to say so: the controller marks it.
				if c.Type == corev1.PodReady && c.Status != corev1.ConditionFalse {
					return fmt.Errorf("pod %s on the lost node still Ready", name)
				}
			}
			if !dt {
				return fmt.Errorf("pod %s has no DisruptionTarget condition: %+v", name, p.Status.Conditions)
			}
		}
		m, ready := podsByNode()
		if ready != 4 || len(m[victim]) != 0 {
			return fmt.Errorf("%d ready: %v", ready, m)
		}
		return nil
	})
	if d := time.Since(stopped); d < 8*time.Second {
		t.Errorf("pods evicted %v after the agent stopped, before grace period + tolerationSeconds", d)
	}
	evs := strings.Join(agEvents(cs, ns, evicted[0]), "\n")
	if !strings.Contains(evs, "TaintManagerEviction Marking for deletion Pod "+ns+"/"+evicted[0]) {
		t.Errorf("events of %s: %s", evicted[0], evs)
	}

	// The agent comes back: the node is Ready and untainted again.
	startAgent(t, srv.kubeconfig, agentArgs(victim)...)
	agWait(t, wait, "the node recovered", func() error {
		n, err := cs.CoreV1().Nodes().Get(ctx, victim, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if len(n.Spec.Taints) != 0 {
			return fmt.Errorf("taints %v", nodeTaints(n))
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status != corev1.ConditionTrue {
				return fmt.Errorf("Ready %+v", c)
			}
		}
		return nil
	})
}
