package endpointslice

import (
	"fmt"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func svc(ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "svc-uid", Labels: map[string]string{"team": "a"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: "10.96.0.10",
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, Ports: ports},
	}
}

func pod(name, ip string, ready bool, ports ...corev1.ContainerPort) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Ports: ports}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

var zoneA = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{corev1.LabelTopologyZone: "zone-a"}}}

func nodes(name string) (*corev1.Node, bool) {
	if name == "n1" {
		return zoneA, true
	}
	return nil, false
}

var httpPort = corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http")}

// apply plays a plan on a set of slices, naming created ones.
func apply(t *testing.T, slices []*discoveryv1.EndpointSlice, p Plan, next *int) []*discoveryv1.EndpointSlice {
	t.Helper()
	byName := map[string]*discoveryv1.EndpointSlice{}
	for _, s := range slices {
		byName[s.Name] = s
	}
	for _, s := range p.Delete {
		if byName[s.Name] == nil {
			t.Fatalf("deleting unknown slice %s", s.Name)
		}
		delete(byName, s.Name)
	}
	for _, s := range p.Update {
		if byName[s.Name] == nil {
			t.Fatalf("updating unknown slice %s", s.Name)
		}
		byName[s.Name] = s
	}
	for _, s := range p.Create {
		if s.Name != "" {
			t.Fatalf("created slice has a name %s", s.Name)
		}
		c := s.DeepCopy()
		*next++
		c.Name = fmt.Sprintf("%s%d", s.GenerateName, *next)
		byName[c.Name] = c
	}
	var out []*discoveryv1.EndpointSlice
	for _, s := range byName {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func TestEndpointConditions(t *testing.T) {
	s := svc(httpPort)
	ready := pod("a", "10.0.0.1", true, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
	notReady := pod("b", "10.0.0.2", false, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
	term := pod("c", "10.0.0.3", true, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
	term.DeletionTimestamp = &metav1.Time{}
	d := Compute(s, []*corev1.Pod{ready, notReady, term}, nodes)
	g := d.Groups[discoveryv1.AddressTypeIPv4]
	if len(g) != 1 {
		t.Fatalf("groups %v", g)
	}
	for _, grp := range g {
		cond := func(name string) string {
			ep := grp.Endpoints["ns/"+name+"/uid-"+name]
			c := ep.Conditions
			return fmt.Sprintf("ready=%v serving=%v terminating=%v", *c.Ready, *c.Serving, *c.Terminating)
		}
		for name, want := range map[string]string{
			"a": "ready=true serving=true terminating=false",
			"b": "ready=false serving=false terminating=false",
			"c": "ready=false serving=true terminating=true",
		} {
			if got := cond(name); got != want {
				t.Errorf("%s: %s, want %s", name, got, want)
			}
		}
		ep := grp.Endpoints["ns/a/uid-a"]
		if ptr.Deref(ep.NodeName, "") != "n1" || ptr.Deref(ep.Zone, "") != "zone-a" || ep.TargetRef.Name != "a" || ep.Addresses[0] != "10.0.0.1" {
			t.Errorf("endpoint %+v", ep)
		}
		if len(grp.Ports) != 1 || *grp.Ports[0].Port != 8080 || *grp.Ports[0].Name != "http" {
			t.Errorf("ports %+v", grp.Ports)
		}
	}
	// publishNotReadyAddresses: every endpoint ready.
	s.Spec.PublishNotReadyAddresses = true
	for _, grp := range Compute(s, []*corev1.Pod{notReady, term}, nodes).Groups[discoveryv1.AddressTypeIPv4] {
		for k, ep := range grp.Endpoints {
			if !*ep.Conditions.Ready {
				t.Errorf("%s not ready with publishNotReadyAddresses", k)
			}
		}
	}
}

func TestUnknownNodeSkipped(t *testing.T) {
	s := svc(httpPort)
	p := pod("a", "10.0.0.1", true, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
	p.Spec.NodeName = "elsewhere"
	d := Compute(s, []*corev1.Pod{p}, nodes)
	if len(d.Skipped) != 1 || len(d.Groups[discoveryv1.AddressTypeIPv4]) != 0 {
		t.Errorf("pod on an unknown node: %+v", d)
	}
	// Not scheduled (pgkube has no node agent yet): in, without a node.
	p.Spec.NodeName = ""
	d = Compute(s, []*corev1.Pod{p}, nodes)
	if len(d.Skipped) != 0 || len(d.Groups[discoveryv1.AddressTypeIPv4]) != 1 {
		t.Errorf("pod without node: %+v", d)
	}
}

func TestAddressTypes(t *testing.T) {
	s := svc()
	s.Spec.ClusterIP, s.Spec.IPFamilies = corev1.ClusterIPNone, nil
	if got := AddressTypes(s); len(got) != 2 {
		t.Errorf("headless without families: %v", got)
	}
	s.Spec.ClusterIP = "fd00::10"
	if got := AddressTypes(s); len(got) != 1 || got[0] != discoveryv1.AddressTypeIPv6 {
		t.Errorf("IPv6 cluster IP: %v", got)
	}
	s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	if got := AddressTypes(s); len(got) != 2 || got[0] != discoveryv1.AddressTypeIPv4 {
		t.Errorf("dual stack: %v", got)
	}
}

func TestReconcileLifecycle(t *testing.T) {
	s := svc(httpPort)
	next := 0
	var slices []*discoveryv1.EndpointSlice

	// No pods: one placeholder.
	plan := Reconcile(s, slices, Compute(s, nil, nodes), MaxEndpointsPerSlice)
	slices = apply(t, slices, plan, &next)
	if len(slices) != 1 || len(slices[0].Endpoints) != 0 || len(slices[0].Ports) != 0 {
		t.Fatalf("placeholder: %+v", slices)
	}
	ph := slices[0]
	if ph.Labels[discoveryv1.LabelServiceName] != "web" || ph.Labels[discoveryv1.LabelManagedBy] != ControllerName || ph.Labels["team"] != "a" {
		t.Errorf("labels %v", ph.Labels)
	}
	if ref := metav1.GetControllerOf(ph); ref == nil || ref.UID != "svc-uid" || ref.Kind != "Service" || ref.APIVersion != "v1" {
		t.Errorf("owner %+v", ph.OwnerReferences)
	}
	// Again: nothing to do.
	if plan := Reconcile(s, slices, Compute(s, nil, nodes), MaxEndpointsPerSlice); len(plan.Create)+len(plan.Update)+len(plan.Delete) != 0 {
		t.Fatalf("placeholder not stable: %+v", plan)
	}

	// 150 pods: the placeholder is reused, and a second slice made.
	var pods []*corev1.Pod
	for i := range 150 {
		pods = append(pods, pod(fmt.Sprintf("p%03d", i), fmt.Sprintf("10.0.%d.%d", i/200, i%200+1), true, corev1.ContainerPort{Name: "http", ContainerPort: 8080}))
	}
	plan = Reconcile(s, slices, Compute(s, pods, nodes), MaxEndpointsPerSlice)
	if len(plan.Delete) != 0 || len(plan.Update) != 1 || plan.Update[0].Name != ph.Name || len(plan.Create) != 1 {
		t.Fatalf("plan for 150: create %d update %d delete %d", len(plan.Create), len(plan.Update), len(plan.Delete))
	}
	slices = apply(t, slices, plan, &next)
	total := 0
	for _, sl := range slices {
		if len(sl.Endpoints) > MaxEndpointsPerSlice {
			t.Errorf("slice %s holds %d", sl.Name, len(sl.Endpoints))
		}
		total += len(sl.Endpoints)
	}
	if len(slices) != 2 || total != 150 {
		t.Fatalf("%d slices, %d endpoints", len(slices), total)
	}
	if plan := Reconcile(s, slices, Compute(s, pods, nodes), MaxEndpointsPerSlice); len(plan.Create)+len(plan.Update)+len(plan.Delete) != 0 {
		t.Fatalf("not stable: %+v", plan)
	}

	// One pod goes unready: only its slice changes.
	where := ""
	for _, sl := range slices {
		for _, ep := range sl.Endpoints {
			if ep.TargetRef.Name == "p007" {
				where = sl.Name
			}
		}
	}
	pods[7] = pod("p007", pods[7].Status.PodIP, false, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
	plan = Reconcile(s, slices, Compute(s, pods, nodes), MaxEndpointsPerSlice)
	if len(plan.Update) != 1 || plan.Update[0].Name != where || len(plan.Create)+len(plan.Delete) != 0 {
		t.Fatalf("readiness change: %+v", plan)
	}
	slices = apply(t, slices, plan, &next)

	// A pod whose named port resolves elsewhere gets its own slice.
	odd := pod("odd", "10.9.9.9", true, corev1.ContainerPort{Name: "http", ContainerPort: 9999})
	plan = Reconcile(s, slices, Compute(s, append(pods, odd), nodes), MaxEndpointsPerSlice)
	if len(plan.Create) != 1 || *plan.Create[0].Ports[0].Port != 9999 || len(plan.Create[0].Endpoints) != 1 {
		t.Fatalf("other port: %+v", plan)
	}

	// All pods gone: back to one placeholder, reusing a slice.
	plan = Reconcile(s, slices, Compute(s, nil, nodes), MaxEndpointsPerSlice)
	slices = apply(t, slices, plan, &next)
	if len(slices) != 1 || len(slices[0].Endpoints) != 0 || len(slices[0].Ports) != 0 {
		t.Fatalf("after all pods gone: %d slices", len(slices))
	}

	// A slice of a previous Service of the name, or of the wrong address
	// type, goes.
	old := slices[0].DeepCopy()
	old.Name, old.OwnerReferences[0].UID = "old", "other-uid"
	v6 := slices[0].DeepCopy()
	v6.Name, v6.AddressType = "v6", discoveryv1.AddressTypeIPv6
	plan = Reconcile(s, append(slices, old, v6), Compute(s, nil, nodes), MaxEndpointsPerSlice)
	if len(plan.Delete) != 2 || len(plan.Create)+len(plan.Update) != 0 {
		t.Fatalf("foreign slices: %+v", plan)
	}
}
