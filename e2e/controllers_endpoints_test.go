package e2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// ctlWait retries f until it succeeds or d passes (controllers act
// through informers and queues: a little later).
func ctlWait(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ctlPodStatus changes a pod's status through pods/status, as a node
// agent would (there is none yet).
func ctlPodStatus(t *testing.T, cs kubernetes.Interface, ns, name string, change func(*corev1.PodStatus)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := cs.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(&p.Status)
		_, err = cs.CoreV1().Pods(ns).UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("status of pod %s: %v", name, err)
	}
}

// ctlRunning makes a pod Running at ip, Ready or not.
func ctlRunning(ip string, ready bool) func(*corev1.PodStatus) {
	return func(st *corev1.PodStatus) {
		cond := corev1.ConditionFalse
		if ready {
			cond = corev1.ConditionTrue
		}
		now := metav1.Now()
		st.Phase = corev1.PodRunning
		st.PodIP, st.PodIPs = ip, []corev1.PodIP{{IP: ip}}
		st.StartTime = &now
		st.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: cond, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: cond, LastTransitionTime: now},
		}
	}
}

func ctlPod(name, node string, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "web", Image: "nginx", Ports: ports}}},
	}
}

// ctlAddresses describes an Endpoints object: "ready:ip:port,..." and
// "notready:..." per subset, sorted.
func ctlAddresses(ep *corev1.Endpoints) string {
	var out []string
	for _, s := range ep.Subsets {
		var ports []string
		for _, p := range s.Ports {
			ports = append(ports, fmt.Sprintf("%s/%d", p.Name, p.Port))
		}
		for _, a := range s.Addresses {
			out = append(out, fmt.Sprintf("ready %s(%s) %s", a.IP, a.TargetRef.Name, strings.Join(ports, "+")))
		}
		for _, a := range s.NotReadyAddresses {
			out = append(out, fmt.Sprintf("notready %s(%s) %s", a.IP, a.TargetRef.Name, strings.Join(ports, "+")))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// ctlSliceEndpoints describes a Service's EndpointSlices: one line per
// endpoint with its conditions, node, zone and ports.
func ctlSliceEndpoints(slices []discoveryv1.EndpointSlice) string {
	var out []string
	for _, s := range slices {
		var ports []string
		for _, p := range s.Ports {
			ports = append(ports, fmt.Sprintf("%s/%d", ptr.Deref(p.Name, ""), ptr.Deref(p.Port, 0)))
		}
		sort.Strings(ports)
		for _, e := range s.Endpoints {
			c := e.Conditions
			out = append(out, fmt.Sprintf("%s %s(%s) ready=%v serving=%v terminating=%v node=%s zone=%s %s",
				s.AddressType, strings.Join(e.Addresses, ","), e.TargetRef.Name, ptr.Deref(c.Ready, false), ptr.Deref(c.Serving, false),
				ptr.Deref(c.Terminating, false), ptr.Deref(e.NodeName, "-"), ptr.Deref(e.Zone, "-"), strings.Join(ports, "+")))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func TestControllersEndpoints(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(adminConfig(t, srv.url))
	const ns = "ctl-endpoints"
	namespace(t, cs, ns)
	const wait = 30 * time.Second

	// A node in zone-a; web-1 runs there, web-2 is not scheduled.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "ctl-ep-node", Labels: map[string]string{corev1.LabelTopologyZone: "zone-a"}}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })

	web := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Labels: map[string]string{"tier": "front"}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}
	headless := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web-headless"},
		Spec:       corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{"app": "web"}},
	}
	manual := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "manual"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 5432}}},
	}
	for _, s := range []*corev1.Service{web, headless, manual} {
		if _, err := cs.CoreV1().Services(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A Service without selector keeps the Endpoints its user writes.
	manualEP := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: "manual"}, Subsets: []corev1.EndpointSubset{{
		Addresses: []corev1.EndpointAddress{{IP: "192.0.2.10"}}, Ports: []corev1.EndpointPort{{Port: 5432}}}}}
	if _, err := cs.CoreV1().Endpoints(ns).Create(ctx, manualEP, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The named port "http" is 8080 on web-1 and 9090 on web-2.
	for _, p := range []*corev1.Pod{
		ctlPod("web-1", node.Name, corev1.ContainerPort{Name: "http", ContainerPort: 8080}),
		ctlPod("web-2", "", corev1.ContainerPort{Name: "http", ContainerPort: 9090}),
		ctlPod("web-pending", ""), // no IP: no endpoint
	} {
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ctlPodStatus(t, cs, ns, "web-1", ctlRunning("10.244.1.1", true))
	ctlPodStatus(t, cs, ns, "web-2", ctlRunning("10.244.1.2", true))

	endpointsAre := func(name, want string) {
		t.Helper()
		ctlWait(t, wait, "endpoints "+name, func() error {
			ep, err := cs.CoreV1().Endpoints(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got := ctlAddresses(ep); got != want {
				return fmt.Errorf("endpoints\n  %s\nwant\n  %s", got, want)
			}
			return nil
		})
	}
	slicesOf := func(svc string) ([]discoveryv1.EndpointSlice, error) {
		l, err := cs.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
		if err != nil {
			return nil, err
		}
		return l.Items, nil
	}
	slicesAre := func(svc, want string) []discoveryv1.EndpointSlice {
		t.Helper()
		var got []discoveryv1.EndpointSlice
		ctlWait(t, wait, "endpointslices of "+svc, func() (err error) {
			if got, err = slicesOf(svc); err != nil {
				return err
			}
			if s := ctlSliceEndpoints(got); s != want {
				return fmt.Errorf("slices\n  %s\nwant\n  %s", s, want)
			}
			return nil
		})
		return got
	}

	// Both pods ready, each under its own port.
	endpointsAre("web", "ready 10.244.1.1(web-1) http/8080; ready 10.244.1.2(web-2) http/9090")
	ep, err := cs.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ep.Labels["endpoints.kubernetes.io/managed-by"] != "endpoint-controller" || ep.Labels["tier"] != "front" {
		t.Errorf("endpoints labels %v", ep.Labels)
	}
	if _, err := time.Parse(time.RFC3339Nano, ep.Annotations[corev1.EndpointsLastChangeTriggerTime]); err != nil {
		t.Errorf("last-change-trigger-time annotation: %v (%v)", err, ep.Annotations)
	}
	for _, s := range ep.Subsets {
		for _, a := range s.Addresses {
			if a.TargetRef == nil || a.TargetRef.Kind != "Pod" || a.TargetRef.UID == "" {
				t.Errorf("address %+v has no pod reference", a)
			}
			if a.TargetRef.Name == "web-1" && ptr.Deref(a.NodeName, "") != node.Name {
				t.Errorf("web-1's address has node %v", a.NodeName)
			}
		}
	}
	sl := slicesAre("web",
		"IPv4 10.244.1.1(web-1) ready=true serving=true terminating=false node=ctl-ep-node zone=zone-a http/8080; "+
			"IPv4 10.244.1.2(web-2) ready=true serving=true terminating=false node=- zone=- http/9090")
	svc, err := cs.CoreV1().Services(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sl {
		if s.Labels[discoveryv1.LabelManagedBy] != "endpointslice-controller.k8s.io" || s.Labels["tier"] != "front" {
			t.Errorf("slice %s labels %v", s.Name, s.Labels)
		}
		if ref := metav1.GetControllerOf(&s); ref == nil || ref.Kind != "Service" || ref.UID != svc.UID || !strings.HasPrefix(s.Name, "web-") {
			t.Errorf("slice %s owner %+v", s.Name, s.OwnerReferences)
		}
		if _, ok := s.Annotations[corev1.EndpointsLastChangeTriggerTime]; !ok {
			t.Errorf("slice %s has no trigger time: %v", s.Name, s.Annotations)
		}
	}

	// web-2 fails its readiness probe: not ready, then back.
	ctlPodStatus(t, cs, ns, "web-2", ctlRunning("10.244.1.2", false))
	endpointsAre("web", "notready 10.244.1.2(web-2) http/9090; ready 10.244.1.1(web-1) http/8080")
	slicesAre("web",
		"IPv4 10.244.1.1(web-1) ready=true serving=true terminating=false node=ctl-ep-node zone=zone-a http/8080; "+
			"IPv4 10.244.1.2(web-2) ready=false serving=false terminating=false node=- zone=- http/9090")
	ctlPodStatus(t, cs, ns, "web-2", ctlRunning("10.244.1.2", true))
	endpointsAre("web", "ready 10.244.1.1(web-1) http/8080; ready 10.244.1.2(web-2) http/9090")
	slicesAre("web",
		"IPv4 10.244.1.1(web-1) ready=true serving=true terminating=false node=ctl-ep-node zone=zone-a http/8080; "+
			"IPv4 10.244.1.2(web-2) ready=true serving=true terminating=false node=- zone=- http/9090")

	// The headless Service: addresses without ports, headless label.
	endpointsAre("web-headless", "ready 10.244.1.1(web-1) ; ready 10.244.1.2(web-2) ")
	hep, err := cs.CoreV1().Endpoints(ns).Get(ctx, "web-headless", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := hep.Labels[corev1.IsHeadlessService]; !ok {
		t.Errorf("headless endpoints labels %v", hep.Labels)
	}
	ctlWait(t, wait, "headless slices", func() error {
		got, err := slicesOf("web-headless")
		if err != nil {
			return err
		}
		n := 0
		for _, s := range got {
			if _, ok := s.Labels[corev1.IsHeadlessService]; !ok {
				return fmt.Errorf("slice %s labels %v", s.Name, s.Labels)
			}
			if s.AddressType == discoveryv1.AddressTypeIPv4 {
				n += len(s.Endpoints)
			}
		}
		if n != 2 {
			return fmt.Errorf("%d IPv4 endpoints: %s", n, ctlSliceEndpoints(got))
		}
		return nil
	})

	// The selector-less Service's Endpoints are the user's; it gets no
	// slices from the controller.
	if got, err := cs.CoreV1().Endpoints(ns).Get(ctx, "manual", metav1.GetOptions{}); err != nil || ctlAddressesNoRef(got) != "192.0.2.10" {
		t.Errorf("manual endpoints changed: %v %+v", err, got)
	}
	if got, err := slicesOf("manual"); err != nil || slices.ContainsFunc(got, func(s discoveryv1.EndpointSlice) bool {
		return s.Labels[discoveryv1.LabelManagedBy] == "endpointslice-controller.k8s.io"
	}) {
		t.Errorf("manual service slices: %v %v", err, got)
	}

	// web-1 is deleted: on a node, it terminates gracefully. It leaves the
	// Endpoints; its slice endpoint says terminating (still serving).
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "web-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	endpointsAre("web", "ready 10.244.1.2(web-2) http/9090")
	slicesAre("web",
		"IPv4 10.244.1.1(web-1) ready=false serving=true terminating=true node=ctl-ep-node zone=zone-a http/8080; "+
			"IPv4 10.244.1.2(web-2) ready=true serving=true terminating=false node=- zone=- http/9090")
	if err := cs.CoreV1().Pods(ns).Delete(ctx, "web-1", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	slicesAre("web", "IPv4 10.244.1.2(web-2) ready=true serving=true terminating=false node=- zone=- http/9090")

	// A pod that stops matching the selector leaves.
	if _, err := cs.CoreV1().Pods(ns).Patch(ctx, "web-2", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"app":"other"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	endpointsAre("web", "")
	ctlWait(t, wait, "placeholder slice", func() error {
		got, err := slicesOf("web")
		if err != nil {
			return err
		}
		if len(got) != 1 || len(got[0].Endpoints) != 0 {
			return fmt.Errorf("%d slices: %s", len(got), ctlSliceEndpoints(got))
		}
		return nil
	})

	// The Service goes: so do its Endpoints and slices.
	if err := cs.CoreV1().Services(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ctlWait(t, wait, "endpoints of a deleted service", func() error {
		if _, err := cs.CoreV1().Endpoints(ns).Get(ctx, "web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (%v)", err)
		}
		got, err := slicesOf("web")
		if err != nil {
			return err
		}
		if len(got) != 0 {
			return fmt.Errorf("%d slices left", len(got))
		}
		return nil
	})
}

func ctlAddressesNoRef(ep *corev1.Endpoints) string {
	var out []string
	for _, s := range ep.Subsets {
		for _, a := range s.Addresses {
			out = append(out, a.IP)
		}
	}
	return strings.Join(out, ",")
}
