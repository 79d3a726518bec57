// Package endpointutil holds what the Endpoints and EndpointSlice
// controllers share: which pods are endpoints of a Service, the port a
// service port targets on one pod, which Services a pod event concerns, and
// the last-change-trigger-time bookkeeping.
package endpointutil

import (
	"net/netip"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/pgkube/pgkube/controllers/framework"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/cache"
)

// IsPodReady: the pod's Ready condition is True.
func IsPodReady(p *corev1.Pod) bool {
	c := ReadyCondition(p)
	return c != nil && c.Status == corev1.ConditionTrue
}

// ReadyCondition is the pod's Ready condition, or nil.
func ReadyCondition(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == corev1.PodReady {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

// PodIPs are the pod's IPs: status.podIPs, else status.podIP.
func PodIPs(p *corev1.Pod) []string {
	if len(p.Status.PodIPs) > 0 {
		out := make([]string, 0, len(p.Status.PodIPs))
		for _, ip := range p.Status.PodIPs {
			out = append(out, ip.IP)
		}
		return out
	}
	if p.Status.PodIP != "" {
		return []string{p.Status.PodIP}
	}
	return nil
}

// IsIPv6 tells whether ip (in any form ParseAddr or the legacy forms with
// leading zeros take) is an IPv6 address.
func IsIPv6(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	return a.Is6() && !a.Is4In6()
}

// CanonicalIP is ip in its canonical text form (legacy IPv4 with leading
// zeros is read as decimal, as upstream's sloppy parser does).
func CanonicalIP(ip string) string {
	if a, err := netip.ParseAddr(ip); err == nil {
		return a.Unmap().String()
	}
	// a.b.c.d with leading zeros
	var parts [4]byte
	n, start := 0, 0
	for i := 0; i <= len(ip); i++ {
		if i == len(ip) || ip[i] == '.' {
			if n == 4 {
				return ip
			}
			v, err := strconv.ParseUint(ip[start:i], 10, 8)
			if err != nil {
				return ip
			}
			parts[n] = byte(v)
			n++
			start = i + 1
		}
	}
	if n != 4 {
		return ip
	}
	return netip.AddrFrom4(parts).String()
}

// InEndpoints tells whether a pod is an endpoint at all: it has an IP, has
// not finished, and, unless terminating pods are wanted, is not being
// deleted.
func InEndpoints(p *corev1.Pod, includeTerminating bool) bool {
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return false
	}
	if len(PodIPs(p)) == 0 {
		return false
	}
	if !includeTerminating && p.DeletionTimestamp != nil {
		return false
	}
	return true
}

// ShouldSetHostname: a pod with a hostname whose subdomain is the Service's
// name is published under that hostname.
func ShouldSetHostname(p *corev1.Pod, svc *corev1.Service) bool {
	return p.Spec.Hostname != "" && p.Spec.Subdomain == svc.Name && p.Namespace == svc.Namespace
}

// IsServiceIPSet: the Service has a cluster IP (it is not headless).
func IsServiceIPSet(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP != corev1.ClusterIPNone && svc.Spec.ClusterIP != ""
}

// FindPort is the container port a service port targets on pod: a number
// as is; a name is looked up among the ports of the pod's containers (and
// of its sidecars, restartable init containers) with the same protocol.
func FindPort(p *corev1.Pod, sp *corev1.ServicePort) (int32, bool) {
	switch sp.TargetPort.Type {
	case intstr.Int:
		return sp.TargetPort.IntVal, true
	case intstr.String:
		name := sp.TargetPort.StrVal
		proto := sp.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		match := func(cs []corev1.ContainerPort) (int32, bool) {
			for _, cp := range cs {
				cpProto := cp.Protocol
				if cpProto == "" {
					cpProto = corev1.ProtocolTCP
				}
				if cp.Name == name && cpProto == proto {
					return cp.ContainerPort, true
				}
			}
			return 0, false
		}
		for _, c := range p.Spec.Containers {
			if n, ok := match(c.Ports); ok {
				return n, true
			}
		}
		for _, c := range p.Spec.InitContainers {
			if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				continue
			}
			if n, ok := match(c.Ports); ok {
				return n, true
			}
		}
	}
	return 0, false
}

// Selects tells whether svc's selector picks a pod with these labels (a
// Service without selector picks none: its endpoints are written by hand).
func Selects(svc *corev1.Service, podLabels map[string]string) bool {
	if svc.Spec.Selector == nil {
		return false
	}
	return labels.SelectorFromValidatedSet(svc.Spec.Selector).Matches(labels.Set(podLabels))
}

// PodsOf are the pods of svc's cluster and namespace its selector picks.
func PodsOf(pods *framework.Informer[*corev1.Pod], svc *corev1.Service) []*corev1.Pod {
	return pods.List(framework.ClusterOf(svc), svc.Namespace, labels.SelectorFromValidatedSet(svc.Spec.Selector))
}

// PodHandler enqueues the Services a pod event concerns: those selecting
// the pod before or after, when something endpoints show changed
// (readiness, IPs, deletion, labels, hostname, node).
func PodHandler(services *framework.Informer[*corev1.Service], enqueue func(framework.Key)) cache.ResourceEventHandler {
	forPod := func(p *corev1.Pod, lbls map[string]string, seen map[framework.Key]bool) {
		for _, svc := range services.List(framework.ClusterOf(p), p.Namespace, nil) {
			if Selects(svc, lbls) {
				k := framework.KeyOf(svc)
				if !seen[k] {
					seen[k] = true
					enqueue(k)
				}
			}
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				forPod(p, p.Labels, map[framework.Key]bool{})
			}
		},
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*corev1.Pod)
			n, ok2 := newObj.(*corev1.Pod)
			if !ok1 || !ok2 || o.ResourceVersion == n.ResourceVersion {
				return
			}
			podChanged, labelsChanged := endpointsChanged(o, n)
			if !podChanged && !labelsChanged {
				return
			}
			seen := map[framework.Key]bool{}
			if !labelsChanged {
				forPod(n, n.Labels, seen)
				return
			}
			if podChanged {
				forPod(n, n.Labels, seen)
				forPod(n, o.Labels, seen)
				return
			}
			// Only the labels changed: the Services that gained or lost it.
			cluster := framework.ClusterOf(n)
			for _, svc := range services.List(cluster, n.Namespace, nil) {
				if Selects(svc, o.Labels) != Selects(svc, n.Labels) || hostChanged(o, n) && (Selects(svc, n.Labels)) {
					enqueue(framework.KeyOf(svc))
				}
			}
		},
		DeleteFunc: func(obj any) {
			if p, ok := framework.ObjectFromEvent(obj).(*corev1.Pod); ok {
				forPod(p, p.Labels, map[framework.Key]bool{})
			}
		},
	}
}

func hostChanged(a, b *corev1.Pod) bool {
	return a.Spec.Hostname != b.Spec.Hostname || a.Spec.Subdomain != b.Spec.Subdomain
}

// endpointsChanged: whether the pod's endpoint changed, and whether its
// labels (or hostname, which decides membership of a subdomain) did.
func endpointsChanged(o, n *corev1.Pod) (podChanged, labelsChanged bool) {
	labelsChanged = !reflect.DeepEqual(o.Labels, n.Labels) || hostChanged(o, n)
	switch {
	case (o.DeletionTimestamp == nil) != (n.DeletionTimestamp == nil),
		IsPodReady(o) != IsPodReady(n),
		o.Status.Phase != n.Status.Phase,
		o.Spec.NodeName != n.Spec.NodeName,
		!reflect.DeepEqual(PodIPs(o), PodIPs(n)):
		podChanged = true
	}
	return podChanged, labelsChanged
}

// TriggerTimes computes the last-change-trigger-time of a Service's
// endpoints: the earliest of the changes not yet published (a pod's Ready
// transition, the Service's creation), as upstream's tracker.
type TriggerTimes struct {
	mu     sync.Mutex
	states map[framework.Key]triggerState
}

type triggerState struct {
	service time.Time
	pods    map[string]time.Time
}

// NewTriggerTimes makes an empty tracker.
func NewTriggerTimes() *TriggerTimes {
	return &TriggerTimes{states: map[framework.Key]triggerState{}}
}

// Compute is the trigger time of this sync (zero: nothing new since the
// last committed one); the first sync of a Service answers its creation
// time. The state it saw is remembered when commit is called, once the
// sync wrote what it computed (or had nothing to write): a sync that fails
// and is retried reports the same time again.
func (t *TriggerTimes) Compute(key framework.Key, svc *corev1.Service, pods []*corev1.Pod) (trigger time.Time, commit func()) {
	t.mu.Lock()
	prev, known := t.states[key]
	t.mu.Unlock()
	var earliest time.Time
	take := func(x time.Time) {
		if earliest.IsZero() || x.Before(earliest) {
			earliest = x
		}
	}
	next := triggerState{service: svc.CreationTimestamp.Time, pods: make(map[string]time.Time, len(pods))}
	for _, p := range pods {
		c := ReadyCondition(p)
		if c == nil || c.LastTransitionTime.IsZero() {
			continue
		}
		next.pods[p.Name] = c.LastTransitionTime.Time
		if c.LastTransitionTime.Time.After(prev.pods[p.Name]) {
			take(c.LastTransitionTime.Time)
		}
	}
	if next.service.After(prev.service) {
		take(next.service)
	}
	commit = func() {
		t.mu.Lock()
		t.states[key] = next
		t.mu.Unlock()
	}
	if !known {
		return svc.CreationTimestamp.Time, commit
	}
	return earliest, commit
}

// Forget drops a deleted Service.
func (t *TriggerTimes) Forget(key framework.Key) {
	t.mu.Lock()
	delete(t.states, key)
	t.mu.Unlock()
}
