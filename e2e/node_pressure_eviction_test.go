package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/pgtest"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestNodePressureEviction: a simulated node of 1Gi whose agent's --eviction-hard is
// above its capacity is under memory pressure for good: it reports
// MemoryPressure, is tainted, and its pods are evicted one per check,
// the best-effort one first, then the burstable one using more than it
// requests, the guaranteed one last; each Failed with reason Evicted, a
// DisruptionTarget condition and an Evicted Event.
func TestNodePressureEviction(t *testing.T) {
	certs, _ := testCerts(t)
	srv := startUp(t, tempDir(t), freePort(t), pgtest.NewDatabase(t), "--cert-dir", certs, "--agent=none")
	defer srv.stop() //nolint:errcheck
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	const ns, node = "evict", "ev-node"
	namespace(t, cs, ns)
	const wait = 60 * time.Second

	// The pods first run under an agent that evicts nothing, so that all
	// are measured when the pressure starts (a pod not measured yet would
	// go first, as with the kubelet).
	plain := startAgent(t, srv.kubeconfig, "--runtime", "simulated", "--node-name", node, "--capacity", "memory=1Gi",
		"--eviction-hard=", "--events=false")
	mem := func(s string) corev1.ResourceList {
		return corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(s), corev1.ResourceCPU: resource.MustParse("100m")}
	}
	pod := func(name, usage string, res corev1.ResourceRequirements) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "app:1", Resources: res}}}}
		if usage != "" {
			p.Annotations = map[string]string{"pgkube.io/simulate-memory-usage": usage}
		}
		return p
	}
	order := []string{"besteffort", "burstable", "guaranteed"}
	for _, p := range []*corev1.Pod{
		pod("guaranteed", "", corev1.ResourceRequirements{Requests: mem("100Mi"), Limits: mem("100Mi")}),
		pod("burstable", "app=200Mi", corev1.ResourceRequirements{Requests: mem("100Mi")}),
		pod("besteffort", "300Mi", corev1.ResourceRequirements{}),
	} {
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	phases := func() map[string]corev1.PodPhase {
		l, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]corev1.PodPhase{}
		for _, p := range l.Items {
			m[p.Name] = p.Status.Phase
		}
		return m
	}
	agWait(t, wait, "3 running pods", func() error {
		m := phases()
		for _, n := range order {
			if m[n] != corev1.PodRunning {
				return fmt.Errorf("phases %v", m)
			}
		}
		return nil
	})
	plain.kill()

	startAgent(t, srv.kubeconfig, "--runtime", "simulated", "--node-name", node, "--capacity", "memory=1Gi",
		"--eviction-hard=memory.available<999Gi", "--eviction-monitoring-interval=1s", "--events=false")
	var evicted []string
	agWait(t, wait, "3 pods evicted", func() error {
		m := phases()
		for _, n := range order {
			if m[n] == corev1.PodFailed && !slices.Contains(evicted, n) {
				evicted = append(evicted, n)
			}
		}
		if len(evicted) < len(order) {
			return fmt.Errorf("evicted %v; phases %v", evicted, m)
		}
		return nil
	})
	if strings.Join(evicted, ",") != strings.Join(order, ",") {
		t.Errorf("evicted in order %v, want %v", evicted, order)
	}

	p, err := cs.CoreV1().Pods(ns).Get(ctx, "burstable", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const wantMsg = "The node was low on resource: memory. Threshold quantity: 999Gi, available: 724Mi. Container app was using 200Mi, request is 100Mi, has larger consumption of memory."
	if p.Status.Reason != "Evicted" || p.Status.Message != wantMsg {
		t.Errorf("status reason %q message %q, want Evicted %q", p.Status.Reason, p.Status.Message, wantMsg)
	}
	var dt *corev1.PodCondition
	for i, c := range p.Status.Conditions {
		if c.Type == corev1.DisruptionTarget {
			dt = &p.Status.Conditions[i]
		}
	}
	if dt == nil || dt.Status != corev1.ConditionTrue || dt.Reason != "TerminationByKubelet" {
		t.Errorf("DisruptionTarget condition %+v", dt)
	}
	for _, name := range order {
		agWait(t, wait, "Evicted event of "+name, func() error {
			evs := agEvents(cs, ns, name)
			for _, e := range evs {
				if strings.HasPrefix(e, "Evicted The node was low on resource: memory.") {
					return nil
				}
			}
			return fmt.Errorf("events %v", evs)
		})
	}

	n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var pressure *corev1.NodeCondition
	for i, c := range n.Status.Conditions {
		if c.Type == corev1.NodeMemoryPressure {
			pressure = &n.Status.Conditions[i]
		}
	}
	if pressure == nil || pressure.Status != corev1.ConditionTrue || pressure.Reason != "KubeletHasInsufficientMemory" {
		t.Errorf("MemoryPressure condition %+v", pressure)
	}
	if taints := nodeTaints(n); !slices.Contains(taints, corev1.TaintNodeMemoryPressure+":NoSchedule") {
		t.Errorf("taints %v", taints)
	}
	if alloc := n.Status.Allocatable[corev1.ResourceMemory]; !alloc.IsZero() {
		t.Errorf("allocatable memory %s, want 0 (the threshold exceeds the capacity)", alloc.String())
	}
}
