package scheduler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// Builders.

type nodeOpt func(*corev1.Node)

func mkNode(name string, cpu, mem string, opts ...nodeOpt) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem),
				corev1.ResourcePods: resource.MustParse("110")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, o := range opts {
		o(n)
	}
	return n
}

func withTaint(k, v string, e corev1.TaintEffect) nodeOpt {
	return func(n *corev1.Node) { n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: k, Value: v, Effect: e}) }
}

func withLabel(k, v string) nodeOpt { return func(n *corev1.Node) { n.Labels[k] = v } }

func withAlloc(name corev1.ResourceName, q string) nodeOpt {
	return func(n *corev1.Node) { n.Status.Allocatable[name] = resource.MustParse(q) }
}

type podOpt func(*corev1.Pod)

var uidSeq int

func mkPod(name string, opts ...podOpt) *corev1.Pod {
	uidSeq++
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(fmt.Sprintf("uid-%d", uidSeq)),
			Labels: map[string]string{}, CreationTimestamp: metav1.Now()},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func req(cpu, mem string) podOpt {
	return func(p *corev1.Pod) {
		r := corev1.ResourceList{}
		if cpu != "" {
			r[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			r[corev1.ResourceMemory] = resource.MustParse(mem)
		}
		p.Spec.Containers[0].Resources.Requests = r
	}
}

func on(node string) podOpt { return func(p *corev1.Pod) { p.Spec.NodeName = node } }

func prio(v int32) podOpt { return func(p *corev1.Pod) { p.Spec.Priority = ptr.To(v) } }

func label(k, v string) podOpt { return func(p *corev1.Pod) { p.Labels[k] = v } }

func owner(uid string) podOpt {
	return func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: types.UID(uid), Controller: ptr.To(true)}}
	}
}

func tolerate(k string, e corev1.TaintEffect) podOpt {
	return func(p *corev1.Pod) {
		p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: k, Operator: corev1.TolerationOpExists, Effect: e})
	}
}

func newTestCache(nodes []*corev1.Node, pods ...*corev1.Pod) *cache {
	c := newCache("root")
	for _, n := range nodes {
		c.setNode(n)
	}
	for _, p := range pods {
		c.placedPod(p)
	}
	return c
}

// try runs one scheduling attempt as scheduleOne does, without the API.
func try(c *cache, pod *corev1.Pod) (string, *fitError, *candidate) {
	pi := newPodInfo(pod)
	c.mu.RLock()
	defer c.mu.RUnlock()
	cy, msg := newCycle(c, pi, nil, nil)
	n, fe := cy.schedule(msg)
	if n != nil {
		return n.key.name, nil, nil
	}
	if fe == nil {
		return "", nil, nil
	}
	var cand *candidate
	cand, fe.postFilterMsg = cy.preempt(fe, nil)
	return "", fe, cand
}

func mustFail(t *testing.T, c *cache, pod *corev1.Pod, want string) {
	t.Helper()
	n, fe, _ := try(c, pod)
	if n != "" {
		t.Fatalf("pod %s placed on %s, want failure %q", pod.Name, n, want)
	}
	if fe == nil {
		t.Fatalf("pod %s: no fit error, want %q", pod.Name, want)
	}
	if got := fe.Error(); got != want {
		t.Fatalf("message\n got: %s\nwant: %s", got, want)
	}
}

func mustPlace(t *testing.T, c *cache, pod *corev1.Pod, want ...string) string {
	t.Helper()
	n, fe, _ := try(c, pod)
	if n == "" {
		msg := "no nodes"
		if fe != nil {
			msg = fe.Error()
		}
		t.Fatalf("pod %s not placed: %s", pod.Name, msg)
	}
	if len(want) > 0 {
		ok := false
		for _, w := range want {
			ok = ok || w == n
		}
		if !ok {
			t.Fatalf("pod %s placed on %s, want one of %v", pod.Name, n, want)
		}
	}
	return n
}

// place schedules and assumes, as the scheduler does between pods.
func place(t *testing.T, c *cache, pod *corev1.Pod) string {
	t.Helper()
	n := mustPlace(t, c, pod)
	c.assume(newPodInfo(pod), nodeKey{"root", n})
	return n
}

func TestFitErrorMessage(t *testing.T) {
	fe := &fitError{numAllNodes: 3, statuses: map[string]*status{
		"a": unresolvable("Insufficient cpu"),
		"b": unresolvable(taintReason(&corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule})),
		"c": unresolvable(taintReason(&corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule})),
	}}
	pe := &fitError{numAllNodes: 3, statuses: map[string]*status{}, absentReason: reasonPreemptionNotHelpful}
	fe.postFilterMsg = "preemption: " + pe.Error()
	want := "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. " +
		"preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
	if got := fe.Error(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// A node with two reasons counts in both.
	fe = &fitError{numAllNodes: 2, statuses: map[string]*status{
		"a": unschedulable("Insufficient cpu", "Insufficient memory"), "b": unschedulable("Insufficient memory")}}
	if got, want := fe.Error(), "0/2 nodes are available: 1 Insufficient cpu, 2 Insufficient memory."; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	fe = &fitError{numAllNodes: 2, preFilterMsg: "pod has unbound immediate PersistentVolumeClaims"}
	if got, want := fe.Error(), "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestUpstreamExampleMessage(t *testing.T) {
	cp := withTaint("node-role.kubernetes.io/control-plane", "", corev1.TaintEffectNoSchedule)
	c := newTestCache([]*corev1.Node{mkNode("n1", "4", "8Gi"), mkNode("n2", "4", "8Gi", cp), mkNode("n3", "4", "8Gi", cp)})
	mustFail(t, c, mkPod("big", req("100", "")),
		"0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. "+
			"preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
}

func TestResources(t *testing.T) {
	nodes := []*corev1.Node{mkNode("n1", "2", "4Gi", withAlloc("example.com/gpu", "1"), withAlloc(corev1.ResourceEphemeralStorage, "10Gi"))}
	c := newTestCache(nodes, mkPod("x", req("1500m", "1Gi"), on("n1")))
	mustPlace(t, c, mkPod("fits", req("500m", "3Gi")))
	mustFail(t, c, mkPod("cpu", req("600m", "")),
		"0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")
	mustFail(t, c, mkPod("both", req("1", "5Gi")),
		"0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")

	// Init containers: the largest counts, not the sum; sidecars add up.
	p := mkPod("init", req("100m", ""))
	p.Spec.InitContainers = []corev1.Container{
		{Name: "i1", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("400m")}}},
		{Name: "i2", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("300m")}}},
	}
	if r := podRequests(p); r.milliCPU != 400 {
		t.Errorf("init max: %d millicpu, want 400", r.milliCPU)
	}
	p.Spec.InitContainers[0].RestartPolicy = ptr.To(corev1.ContainerRestartPolicyAlways) // a sidecar
	if r := podRequests(p); r.milliCPU != 700 {
		t.Errorf("sidecar: max(100+400 running, 300+400 during init): %d millicpu, want 700", r.milliCPU)
	}
	p.Spec.InitContainers[0].RestartPolicy = nil
	p.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}
	if r := podRequests(p); r.milliCPU != 450 {
		t.Errorf("with overhead: %d millicpu, want 450", r.milliCPU)
	}

	// Extended resources and ephemeral storage.
	gpu := mkPod("gpu")
	gpu.Spec.Containers[0].Resources.Requests = corev1.ResourceList{"example.com/gpu": resource.MustParse("2"),
		corev1.ResourceEphemeralStorage: resource.MustParse("20Gi")}
	mustFail(t, c, gpu, "0/1 nodes are available: 1 Insufficient ephemeral-storage, 1 Insufficient example.com/gpu. "+
		"preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
	gpu.Spec.Containers[0].Resources.Requests = corev1.ResourceList{"example.com/gpu": resource.MustParse("1")}
	place(t, c, gpu)
	mustFail(t, c, mkPod("gpu2", func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{"example.com/gpu": resource.MustParse("1")}
	}), "0/1 nodes are available: 1 Insufficient example.com/gpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")

	// Pod count.
	small := newTestCache([]*corev1.Node{mkNode("n1", "2", "4Gi", withAlloc(corev1.ResourcePods, "1"))}, mkPod("x", on("n1")))
	mustFail(t, small, mkPod("y"), "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")
}

func TestTaintsReadinessAndCordon(t *testing.T) {
	notReady := func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }
	cordoned := func(n *corev1.Node) { n.Spec.Unschedulable = true }
	nodes := []*corev1.Node{
		mkNode("n1", "4", "8Gi", withTaint("dedicated", "infra", corev1.TaintEffectNoExecute)),
		mkNode("n2", "4", "8Gi", notReady),
		mkNode("n3", "4", "8Gi", cordoned),
		mkNode("n4", "4", "8Gi", withTaint("soft", "x", corev1.TaintEffectPreferNoSchedule)),
	}
	c := newTestCache(nodes)
	mustPlace(t, c, mkPod("p"), "n4")
	c4 := newTestCache(nodes[:3])
	mustFail(t, c4, mkPod("p"), "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}, "+
		"1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable. "+
		"preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
	mustPlace(t, c4, mkPod("tol", tolerate("dedicated", "")), "n1")
	mustPlace(t, c4, mkPod("tolcordon", tolerate(taintUnschedulable, corev1.TaintEffectNoSchedule)), "n3")
	// A toleration for another effect does not help.
	mustFail(t, newTestCache(nodes[:1]), mkPod("wrong", tolerate("dedicated", corev1.TaintEffectNoSchedule)),
		"0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: infra}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.")
	// PreferNoSchedule: avoided while another node will do.
	c2 := newTestCache([]*corev1.Node{nodes[3], mkNode("n5", "4", "8Gi")})
	for i := range 5 {
		mustPlace(t, c2, mkPod(fmt.Sprint("s", i)), "n5")
	}
}

func TestNodeSelectorAndAffinity(t *testing.T) {
	nodes := []*corev1.Node{mkNode("a", "4", "8Gi", withLabel("disk", "ssd"), withLabel("gen", "5")), mkNode("b", "4", "8Gi", withLabel("disk", "hdd"), withLabel("gen", "3"))}
	c := newTestCache(nodes)
	mustPlace(t, c, mkPod("sel", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} }), "a")
	mustFail(t, c, mkPod("none", func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "nvme"} }),
		"0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
	aff := func(terms ...corev1.NodeSelectorTerm) podOpt {
		return func(p *corev1.Pod) {
			p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
		}
	}
	mustPlace(t, c, mkPod("gt", aff(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "gen", Operator: corev1.NodeSelectorOpGt, Values: []string{"4"}}}})), "a")
	mustPlace(t, c, mkPod("notin", aff(corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"ssd"}}}})), "b")
	// DaemonSet pods name their node with matchFields.
	mustPlace(t, c, mkPod("ds", aff(corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"b"}}}})), "b")
	// Terms are ORed.
	mustPlace(t, c, mkPod("or", aff(
		corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"nvme"}}}},
		corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"hdd"}}}})), "b")
	// Preferred affinity wins over an otherwise equal node.
	pref := mkPod("pref", func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{
			{Weight: 50, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"hdd"}}}}}}}}
	})
	for range 5 {
		mustPlace(t, c, pref, "b")
	}
}

func TestHostPorts(t *testing.T) {
	withPort := func(port int32, ip string) podOpt {
		return func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 80, HostPort: port, HostIP: ip, Protocol: corev1.ProtocolTCP}}
		}
	}
	c := newTestCache([]*corev1.Node{mkNode("a", "4", "8Gi")}, mkPod("x", on("a"), withPort(8080, "")))
	mustFail(t, c, mkPod("same", withPort(8080, "10.0.0.1")),
		"0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")
	mustPlace(t, c, mkPod("other", withPort(8081, "")))
	udp := mkPod("udp", withPort(8080, ""))
	udp.Spec.Containers[0].Ports[0].Protocol = corev1.ProtocolUDP
	mustPlace(t, c, udp)
}

func podAffinityTerm(key string, sel map[string]string) corev1.PodAffinityTerm {
	return corev1.PodAffinityTerm{TopologyKey: key, LabelSelector: &metav1.LabelSelector{MatchLabels: sel}}
}

func TestInterPodAffinity(t *testing.T) {
	zone := corev1.LabelTopologyZone
	nodes := []*corev1.Node{mkNode("a", "4", "8Gi", withLabel(zone, "z1")), mkNode("b", "4", "8Gi", withLabel(zone, "z1")), mkNode("c", "4", "8Gi", withLabel(zone, "z2"))}
	anti := func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{podAffinityTerm(corev1.LabelHostname, map[string]string{"app": "db"})}}}
	}
	// One db pod per node: the fourth has nowhere to go.
	c := newTestCache(nodes)
	seen := map[string]bool{}
	for i := range 3 {
		n := place(t, c, mkPod(fmt.Sprint("db", i), label("app", "db"), anti))
		if seen[n] {
			t.Fatalf("two db pods on %s", n)
		}
		seen[n] = true
	}
	mustFail(t, c, mkPod("db3", label("app", "db"), anti),
		"0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.")
	// A pod without anti-affinity is kept off by the existing pods' rules.
	mustFail(t, c, mkPod("plain", label("app", "db")),
		"0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.")
	mustPlace(t, c, mkPod("web", label("app", "web")))

	// Affinity: the first pod of a group that selects itself may go
	// anywhere; the next ones follow it into its zone.
	c = newTestCache(nodes)
	aff := func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{podAffinityTerm(zone, map[string]string{"app": "cache"})}}}
	}
	first := place(t, c, mkPod("cache0", label("app", "cache"), aff))
	wantZone := "z1"
	if first == "c" {
		wantZone = "z2"
	}
	for i := 1; i < 5; i++ {
		n := place(t, c, mkPod(fmt.Sprint("cache", i), label("app", "cache"), aff))
		if z := map[string]string{"a": "z1", "b": "z1", "c": "z2"}[n]; z != wantZone {
			t.Fatalf("cache%d went to zone %s, want %s", i, z, wantZone)
		}
	}
	// A pod whose affinity selects pods that are nowhere does not fit.
	lonely := mkPod("lonely", func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{PodAffinity: &corev1.PodAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{podAffinityTerm(zone, map[string]string{"app": "ghost"})}}}
	})
	mustFail(t, c, lonely, "0/3 nodes are available: 3 node(s) didn't match pod affinity rules. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")

	// Preferred anti-affinity spreads.
	c = newTestCache(nodes[:2])
	soft := func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{Weight: 100, PodAffinityTerm: podAffinityTerm(corev1.LabelHostname, map[string]string{"app": "s"})}}}}
	}
	n1 := place(t, c, mkPod("s1", label("app", "s"), soft))
	n2 := place(t, c, mkPod("s2", label("app", "s"), soft))
	if n1 == n2 {
		t.Errorf("preferred anti-affinity: both on %s", n1)
	}
	// Pods of other clusters are invisible to affinity.
	other := mkPod("other", label("app", "db"), on("a"))
	other.Annotations = map[string]string{"pgkube.io/cluster": "t1"}
	c = newTestCache(nodes, other)
	mustPlace(t, c, mkPod("db", label("app", "db"), anti))
}

func TestTopologySpread(t *testing.T) {
	zone := corev1.LabelTopologyZone
	nodes := []*corev1.Node{mkNode("a", "8", "8Gi", withLabel(zone, "z1")), mkNode("b", "8", "8Gi", withLabel(zone, "z2")), mkNode("nozone", "8", "8Gi")}
	spread := func(p *corev1.Pod) {
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: zone,
			WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "w"}}}}
	}
	c := newTestCache(nodes, mkPod("w0", label("app", "w"), on("a")), mkPod("w1", label("app", "w"), on("a")), mkPod("w2", label("app", "w"), on("b")))
	mustPlace(t, c, mkPod("w3", label("app", "w"), spread), "b")
	c.assume(newPodInfo(mkPod("w3", label("app", "w"))), nodeKey{"root", "b"})
	// Now 2/2: either zone.
	mustPlace(t, c, mkPod("w4", label("app", "w"), spread), "a", "b")
	c = newTestCache(nodes, mkPod("w0", label("app", "w"), on("a")), mkPod("w1", label("app", "w"), on("a")))
	p := mkPod("w2", label("app", "w"), spread, func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{zone: "z1"} })
	// Only z1's node counts as a domain under nodeAffinityPolicy Honor,
	// so skew is 0 there.
	mustPlace(t, c, p, "a")
	// Without the selector: z1 has 2, z2 has 0, so a would give skew 3.
	q := mkPod("w3", label("app", "w"), spread, func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{zone: "z1"}; p.Spec.NodeSelector = nil })
	q.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"a", "nozone"}}}}}}}}
	policy := corev1.NodeInclusionPolicyIgnore
	q.Spec.TopologySpreadConstraints[0].NodeAffinityPolicy = &policy
	mustFail(t, c, q, "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) didn't match pod topology spread constraints, "+
		"1 node(s) didn't match pod topology spread constraints (missing required label). preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.")
}

func TestScoresSpreadReplicasAndLeastAllocated(t *testing.T) {
	nodes := []*corev1.Node{mkNode("a", "4", "8Gi"), mkNode("b", "4", "8Gi"), mkNode("c", "4", "8Gi")}
	// Least allocated: the empty node.
	c := newTestCache(nodes, mkPod("x", req("2", "4Gi"), on("a")), mkPod("y", req("1", "1Gi"), on("b")))
	mustPlace(t, c, mkPod("p", req("100m", "100Mi")), "c")
	// Replicas of one owner spread over the nodes.
	c = newTestCache(nodes)
	count := map[string]int{}
	for i := range 9 {
		count[place(t, c, mkPod(fmt.Sprint("r", i), owner("rs1")))]++
	}
	for _, n := range []string{"a", "b", "c"} {
		if count[n] != 3 {
			t.Fatalf("replicas per node %v, want 3 each", count)
		}
	}
}

func TestPreemption(t *testing.T) {
	nodes := []*corev1.Node{mkNode("a", "4", "8Gi"), mkNode("b", "4", "8Gi")}
	c := newTestCache(nodes,
		mkPod("a-low", req("3", ""), prio(1), on("a")),
		mkPod("a-mid", req("1", ""), prio(50), on("a")),
		mkPod("b-mid", req("2", ""), prio(50), on("b")),
		mkPod("b-mid2", req("2", ""), prio(50), on("b")),
	)
	n, fe, cand := try(c, mkPod("vip", req("3", ""), prio(100)))
	if n != "" || fe == nil || cand == nil {
		t.Fatalf("want preemption, got node %q err %v cand %v", n, fe, cand)
	}
	if cand.node.key.name != "a" || len(cand.victims) != 1 || cand.victims[0].pod.Name != "a-low" {
		var names []string
		for _, v := range cand.victims {
			names = append(names, v.pod.Name)
		}
		t.Fatalf("preempt on %s victims %v, want a [a-low]", cand.node.key.name, names)
	}
	if want := "0/2 nodes are available: 2 Insufficient cpu. preemption: found a potential placement for pod on node a, preempting 1 victims"; fe.Error() != want {
		t.Errorf("got  %s\nwant %s", fe.Error(), want)
	}
	// Equal priority: nothing to preempt.
	mustFail(t, c, mkPod("peer", req("3", ""), prio(1)),
		"0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.")
	// Evicting all lower-priority pods is not enough on a.
	mustFail(t, c, mkPod("greedy", req("4", ""), prio(10)),
		"0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 1 Insufficient cpu, 1 No preemption victims found for incoming pod.")
	// preemptionPolicy Never.
	mustFail(t, c, mkPod("polite", req("3", ""), prio(100), func(p *corev1.Pod) { p.Spec.PreemptionPolicy = ptr.To(corev1.PreemptNever) }),
		"0/2 nodes are available: 2 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.")
	// Pods of another cluster are never victims.
	t1 := mkPod("t1-low", req("4", ""), prio(0), on("a"))
	t1.Annotations = map[string]string{"pgkube.io/cluster": "t1"}
	c = newTestCache(nodes[:1], t1)
	mustFail(t, c, mkPod("vip", req("1", ""), prio(100)),
		"0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")
	// A nominated pod holds its room against lower priorities.
	c = newTestCache(nodes[:1])
	vip := mkPod("vip", req("3", ""), prio(100))
	c.setNominated(newPodInfo(vip), "a")
	mustFail(t, c, mkPod("low", req("2", ""), prio(1)),
		"0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")
	mustPlace(t, c, mkPod("higher", req("2", ""), prio(200)), "a")
}

func TestPreemptionPrefersNodesAndRespectsPDB(t *testing.T) {
	nodes := []*corev1.Node{mkNode("a", "4", "8Gi"), mkNode("b", "4", "8Gi")}
	old := metav1.NewTime(time.Now().Add(-time.Hour))
	c := newTestCache(nodes,
		mkPod("a1", req("4", ""), prio(10), on("a"), label("app", "guarded")),
		mkPod("b1", req("4", ""), prio(10), on("b"), func(p *corev1.Pod) { p.Status.StartTime = &old }),
	)
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "g"},
		Spec:   policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr.To(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "guarded"}}},
		Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 0}}
	pi := newPodInfo(mkPod("vip", req("4", ""), prio(100)))
	c.mu.RLock()
	cy, _ := newCycle(c, pi, nil, nil)
	_, fe := cy.schedule("")
	cand, _ := cy.preempt(fe, func(string, string) []*policyv1.PodDisruptionBudget { return []*policyv1.PodDisruptionBudget{pdb} })
	c.mu.RUnlock()
	if cand == nil || cand.node.key.name != "b" {
		t.Fatalf("want the node whose victim has no PDB (b), got %+v", cand)
	}
}

func TestQueueOrderAndRetry(t *testing.T) {
	now := time.Unix(1000, 0)
	q := newQueue(func() time.Time { return now })
	low, high, mid := mkPod("low", prio(1)), mkPod("high", prio(100)), mkPod("mid", prio(50))
	q.add(low, true)
	now = now.Add(time.Millisecond)
	q.add(high, true)
	q.add(mid, true)
	var order []string
	for range 3 {
		p := q.pop()
		order = append(order, p.pod.Name)
		q.done(p, false)
	}
	if strings.Join(order, ",") != "high,mid,low" {
		t.Fatalf("order %v", order)
	}
	if a, b, u := q.lengths(); a != 0 || b != 0 || u != 3 {
		t.Fatalf("lengths %d %d %d, want all unschedulable", a, b, u)
	}
	// A change in the cluster: they back off first, then come back.
	q.moveAll()
	if a, b, _ := q.lengths(); a != 0 || b != 3 {
		t.Fatalf("after moveAll: active %d backoff %d", a, b)
	}
	now = now.Add(initialBackoff)
	q.flushBackoff()
	if a, _, _ := q.lengths(); a != 3 {
		t.Fatalf("after back-off: active %d", a)
	}
	// A status-only update of an unschedulable pod leaves it there.
	p := q.pop()
	q.done(p, false)
	q.add(p.pod, false)
	if _, _, u := q.lengths(); u != 1 {
		t.Fatalf("status update moved the pod")
	}
	// A change during the attempt sends it back, not to unschedulable.
	p2 := q.pop()
	q.moveAll()
	q.done(p2, false)
	if _, b, u := q.lengths(); b != 2 || u != 0 {
		t.Fatalf("moved during attempt: backoff %d unschedulable %d", b, u)
	}
	// Long waits end anyway.
	q.done(q.pop(), false)
	if _, _, u := q.lengths(); u != 1 {
		t.Fatalf("unschedulable: %d", u)
	}
	now = now.Add(unschedulableMaxStay)
	q.flushUnschedulable()
	if _, _, u := q.lengths(); u != 0 {
		t.Fatalf("unschedulable after max stay: %d", u)
	}
}

func TestTenantsUseTheirOwnNodesOrTheShared(t *testing.T) {
	c := newTestCache([]*corev1.Node{mkNode("shared", "4", "8Gi")})
	t1 := mkPod("p")
	t1.Annotations = map[string]string{"pgkube.io/cluster": "t1"}
	mustPlace(t, c, t1, "shared")
	own := mkNode("own", "4", "8Gi")
	own.Annotations = map[string]string{"pgkube.io/cluster": "t2"}
	c.setNode(own)
	t2 := mkPod("q")
	t2.Annotations = map[string]string{"pgkube.io/cluster": "t2"}
	mustPlace(t, c, t2, "own")
	// A tenant's pods count on the shared node.
	b := mkPod("b", req("4", ""), on("shared"))
	b.Annotations = map[string]string{"pgkube.io/cluster": "t1"}
	c.placedPod(b)
	mustFail(t, c, mkPod("r", req("1", "")), "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")
}

// BenchmarkSchedule100Nodes: placing one pod (and assuming it) among 100
// nodes that already hold 3000 pods of 30 owners.
func BenchmarkSchedule100Nodes(b *testing.B) {
	var nodes []*corev1.Node
	for i := range 100 {
		nodes = append(nodes, mkNode(fmt.Sprint("n", i), "32", "128Gi", withLabel(corev1.LabelTopologyZone, fmt.Sprint("z", i%3)),
			withAlloc(corev1.ResourcePods, "500")))
	}
	c := newTestCache(nodes)
	for i := range 3000 {
		c.placedPod(mkPod(fmt.Sprint("p", i), req("10m", "10Mi"), owner(fmt.Sprint("o", i%30)), on(fmt.Sprint("n", i%100))))
	}
	b.ResetTimer()
	for i := range b.N {
		pod := mkPod(fmt.Sprint("new", i), req("10m", "10Mi"), owner(fmt.Sprint("o", i%30)))
		pi := newPodInfo(pod)
		c.mu.RLock()
		cy, msg := newCycle(c, pi, nil, nil)
		n, _ := cy.schedule(msg)
		c.mu.RUnlock()
		if n == nil {
			b.Fatal("not placed")
		}
		c.assume(pi, n.key)
	}
}

// fakeVolumes is a volumeLister over fixed objects of the root cluster.
type fakeVolumes struct {
	pvcs    []*corev1.PersistentVolumeClaim
	pvs     []*corev1.PersistentVolume
	classes []*storagev1.StorageClass
}

func (f fakeVolumes) PVC(_, ns, name string) *corev1.PersistentVolumeClaim {
	for _, p := range f.pvcs {
		if p.Namespace == ns && p.Name == name {
			return p
		}
	}
	return nil
}

func (f fakeVolumes) PV(_, name string) *corev1.PersistentVolume {
	for _, p := range f.pvs {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func (f fakeVolumes) PVs(string) []*corev1.PersistentVolume { return f.pvs }

func (f fakeVolumes) StorageClass(_, name string) *storagev1.StorageClass {
	for _, c := range f.classes {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func (f fakeVolumes) StorageClasses(string) []*storagev1.StorageClass { return f.classes }

func TestVolumes(t *testing.T) {
	nodes := []*corev1.Node{mkNode("a", "4", "8Gi"), mkNode("b", "4", "8Gi")}
	c := newTestCache(nodes)
	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	local := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "local"}, Provisioner: noProvisioner, VolumeBindingMode: &wffc}
	immediate := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "std", Annotations: map[string]string{annDefaultClass: "true"}}, Provisioner: "example.com/csi"}
	onNode := func(name, node string) *corev1.PersistentVolume {
		return &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeSpec{
			StorageClassName: "local", Capacity: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node}}}}}}}}}
	}
	claim := func(name string, class *string, volume string) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("pvc-" + name)},
			Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: class, VolumeName: volume,
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}}
	}
	vl := fakeVolumes{
		pvcs: []*corev1.PersistentVolumeClaim{
			claim("bound", nil, "pv-b"), claim("waiting", ptr.To("local"), ""), claim("pending", nil, ""), claim("lost", nil, "pv-gone")},
		pvs:     []*corev1.PersistentVolume{onNode("pv-b", "b"), onNode("pv-free", "a")},
		classes: []*storagev1.StorageClass{local, immediate},
	}
	vl.pvs[0].Spec.ClaimRef = &corev1.ObjectReference{Namespace: "default", Name: "bound", UID: "pvc-bound"}
	withClaim := func(name string) podOpt {
		return func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "v" + name,
				VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name}}})
		}
	}
	run := func(p *corev1.Pod) (string, string, *volumeState) {
		pi := newPodInfo(p)
		c.mu.RLock()
		defer c.mu.RUnlock()
		cy, msg := newCycle(c, pi, nil, vl)
		n, fe := cy.schedule(msg)
		if n != nil {
			return n.key.name, "", cy.volumes
		}
		return "", fe.Error(), cy.volumes
	}
	if n, msg, _ := run(mkPod("p", withClaim("bound"))); n != "b" {
		t.Errorf("bound claim on b's volume: node %q %s", n, msg)
	}
	n, msg, vs := run(mkPod("p", withClaim("waiting")))
	if n != "a" || vs == nil || len(vs.delayed) != 1 || vs.delayed[0].volumeFor(nodes[0]).Name != "pv-free" {
		t.Errorf("waiting claim goes where a free volume is: node %q %s", n, msg)
	}
	if _, msg, _ := run(mkPod("p", withClaim("waiting"), withClaim("bound"))); msg !=
		"0/2 nodes are available: 1 node(s) didn't find available persistent volumes to bind, 1 node(s) didn't match PersistentVolume's node affinity." {
		t.Errorf("conflicting claims: %s", msg)
	}
	if _, msg, _ := run(mkPod("p", withClaim("pending"))); msg != "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims." {
		t.Errorf("unbound immediate claim: %s", msg)
	}
	if _, msg, _ := run(mkPod("p", withClaim("nope"))); msg != `0/2 nodes are available: persistentvolumeclaim "nope" not found.` {
		t.Errorf("missing claim: %s", msg)
	}
	if _, msg, _ := run(mkPod("p", withClaim("lost"))); msg != "0/2 nodes are available: 2 node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)." {
		t.Errorf("claim of a missing volume: %s", msg)
	}
}
