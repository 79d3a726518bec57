package endpoints

import (
	"fmt"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func svc(ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", Labels: map[string]string{"team": "a"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, ClusterIP: "10.96.0.10",
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}, Ports: ports},
	}
}

func pod(name, ip string, ready bool, ports ...corev1.ContainerPort) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Ports: ports}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
	if ip != "" {
		p.Status.PodIP = ip
		p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	}
	return p
}

func ips(as []corev1.EndpointAddress) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.IP)
	}
	return out
}

func TestSubsetsReadyAndNotReady(t *testing.T) {
	s := svc(corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(8080)})
	pods := []*corev1.Pod{
		pod("b", "10.0.0.2", true),
		pod("a", "10.0.0.1", true),
		pod("c", "10.0.0.3", false),
		pod("noip", "", true),
	}
	done := pod("done", "10.0.0.9", false)
	done.Status.Phase = corev1.PodSucceeded
	gone := pod("gone", "10.0.0.8", true)
	gone.DeletionTimestamp = &metav1.Time{}
	pods = append(pods, done, gone)

	subsets, ready, notReady := Subsets(s, pods)
	if ready != 2 || notReady != 1 {
		t.Fatalf("ready %d, not ready %d; want 2, 1", ready, notReady)
	}
	if len(subsets) != 1 {
		t.Fatalf("%d subsets, want 1: %+v", len(subsets), subsets)
	}
	ss := subsets[0]
	if got := ips(ss.Addresses); !reflect.DeepEqual(got, []string{"10.0.0.1", "10.0.0.2"}) {
		t.Errorf("addresses %v", got)
	}
	if got := ips(ss.NotReadyAddresses); !reflect.DeepEqual(got, []string{"10.0.0.3"}) {
		t.Errorf("not ready %v", got)
	}
	want := []corev1.EndpointPort{{Name: "http", Port: 8080, Protocol: corev1.ProtocolTCP}}
	if !reflect.DeepEqual(ss.Ports, want) {
		t.Errorf("ports %+v", ss.Ports)
	}
	a := ss.Addresses[0]
	if a.TargetRef == nil || a.TargetRef.Kind != "Pod" || a.TargetRef.Name != "a" || a.TargetRef.UID != "uid-a" || a.NodeName == nil || *a.NodeName != "n1" {
		t.Errorf("address %+v", a)
	}

	// Publishing not-ready addresses: every pod ready, terminating ones too.
	s.Spec.PublishNotReadyAddresses = true
	subsets, ready, notReady = Subsets(s, pods)
	if ready != 4 || notReady != 0 || len(subsets[0].NotReadyAddresses) != 0 {
		t.Fatalf("publishNotReadyAddresses: ready %d, not ready %d: %+v", ready, notReady, subsets)
	}
}

func TestSubsetsNamedPortsPerPod(t *testing.T) {
	s := svc(
		corev1.ServicePort{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("web")},
		corev1.ServicePort{Name: "metrics", Port: 9090, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("metrics")},
	)
	pods := []*corev1.Pod{
		pod("a", "10.0.0.1", true, corev1.ContainerPort{Name: "web", ContainerPort: 8080}, corev1.ContainerPort{Name: "metrics", ContainerPort: 9100}),
		pod("b", "10.0.0.2", true, corev1.ContainerPort{Name: "web", ContainerPort: 8080}, corev1.ContainerPort{Name: "metrics", ContainerPort: 9100}),
		pod("c", "10.0.0.3", true, corev1.ContainerPort{Name: "web", ContainerPort: 3000}),
		// The name with another protocol does not count.
		pod("d", "10.0.0.4", true, corev1.ContainerPort{Name: "web", ContainerPort: 53, Protocol: corev1.ProtocolUDP}),
	}
	subsets, ready, _ := Subsets(s, pods)
	if ready != 3 {
		t.Fatalf("ready %d, want 3 (d has no TCP port named web)", ready)
	}
	if len(subsets) != 2 {
		t.Fatalf("%d subsets, want 2: %+v", len(subsets), subsets)
	}
	got := map[string][]string{}
	for _, ss := range subsets {
		k := ""
		for _, p := range ss.Ports {
			k += fmt.Sprintf("%s:%d ", p.Name, p.Port)
		}
		got[k] = ips(ss.Addresses)
	}
	want := map[string][]string{
		"http:3000 ":              {"10.0.0.3"},
		"http:8080 metrics:9100 ": {"10.0.0.1", "10.0.0.2"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("subsets %v, want %v", got, want)
	}

	// A sidecar's (restartable init container's) port resolves too.
	always := corev1.ContainerRestartPolicyAlways
	side := pod("e", "10.0.0.5", true)
	side.Spec.InitContainers = []corev1.Container{{Name: "side", RestartPolicy: &always, Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 7000}}}}
	subsets, _, _ = Subsets(s, []*corev1.Pod{side})
	if len(subsets) != 1 || subsets[0].Ports[0].Port != 7000 {
		t.Errorf("sidecar port: %+v", subsets)
	}
}

func TestSubsetsHeadless(t *testing.T) {
	s := svc()
	s.Spec.ClusterIP = corev1.ClusterIPNone
	s.Spec.IPFamilies = nil
	p := pod("a", "10.0.0.1", true)
	p.Spec.Hostname, p.Spec.Subdomain = "a", "web"
	subsets, ready, _ := Subsets(s, []*corev1.Pod{p, pod("b", "10.0.0.2", false)})
	if ready != 1 || len(subsets) != 1 || len(subsets[0].Ports) != 0 {
		t.Fatalf("headless without ports: %+v", subsets)
	}
	if subsets[0].Addresses[0].Hostname != "a" {
		t.Errorf("hostname not published: %+v", subsets[0].Addresses[0])
	}
	if l := Labels(s); l[corev1.IsHeadlessService] != "" || l["team"] != "a" || l[LabelManagedBy] != ControllerName {
		t.Errorf("labels %v", l)
	} else if _, ok := l[corev1.IsHeadlessService]; !ok {
		t.Errorf("no headless label: %v", l)
	}
	// A Service with a cluster IP and no ports has no endpoints.
	s = svc()
	if subsets, _, _ := Subsets(s, []*corev1.Pod{p}); len(subsets) != 0 {
		t.Errorf("ports-less service with cluster IP: %+v", subsets)
	}
	if _, ok := Labels(s)[corev1.IsHeadlessService]; ok {
		t.Errorf("headless label on a service with a cluster IP")
	}
}

func TestSubsetsIPFamily(t *testing.T) {
	s := svc(corev1.ServicePort{Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(80)})
	s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	p := pod("a", "10.0.0.1", true)
	p.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.1"}, {IP: "fd00::0001"}}
	v4only := pod("b", "10.0.0.2", true)
	subsets, _, _ := Subsets(s, []*corev1.Pod{p, v4only})
	if len(subsets) != 1 || !reflect.DeepEqual(ips(subsets[0].Addresses), []string{"fd00::1"}) {
		t.Errorf("IPv6 service: %+v", subsets)
	}
}

func TestUpToDateAndTruncate(t *testing.T) {
	s := svc(corev1.ServicePort{Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(80)})
	pods := []*corev1.Pod{pod("a", "10.0.0.1", true), pod("b", "10.0.0.2", false)}
	subsets, _, _ := Subsets(s, pods)
	cur := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Labels: Labels(s)}, Subsets: cloneSubsets(subsets)}
	cur.Subsets[0].Addresses[0].TargetRef.ResourceVersion = "42"
	if !UpToDate(cur, s, subsets) {
		t.Error("equal subsets (but a pod resourceVersion) not up to date")
	}
	pods[1] = pod("b", "10.0.0.2", true)
	subsets2, _, _ := Subsets(s, pods)
	if UpToDate(cur, s, subsets2) {
		t.Error("readiness change not noticed")
	}
	s.Labels["team"] = "b"
	if UpToDate(cur, s, subsets) {
		t.Error("label change not noticed")
	}

	var many []*corev1.Pod
	for i := range 1200 {
		many = append(many, pod(fmt.Sprintf("p%04d", i), fmt.Sprintf("10.1.%d.%d", i/250, i%250), i%2 == 0))
	}
	subsets, ready, notReady := Subsets(s, many)
	if ready != 600 || notReady != 600 {
		t.Fatalf("ready %d not ready %d", ready, notReady)
	}
	ep := &corev1.Endpoints{Subsets: subsets}
	if !Truncate(ep) {
		t.Fatal("not truncated")
	}
	if n := len(ep.Subsets[0].Addresses); n != 600 {
		t.Errorf("%d ready kept, want all 600", n)
	}
	if n := len(ep.Subsets[0].NotReadyAddresses); n != 400 {
		t.Errorf("%d not ready kept, want 400", n)
	}
}
