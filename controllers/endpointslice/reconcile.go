package endpointslice

import (
	"maps"
	"sort"
	"strconv"
	"strings"

	"github.com/pgkube/pgkube/controllers/endpointutil"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Desired is what a Service's pods make: endpoints grouped by the ports
// they resolve to, per address type.
type Desired struct {
	// Groups by address type, then by port-set key.
	Groups map[discoveryv1.AddressType]map[string]*Group
	// Skipped are pods left out because their node is unknown.
	Skipped []string
}

// Group is endpoints sharing one set of ports.
type Group struct {
	Ports     []discoveryv1.EndpointPort
	Endpoints map[string]discoveryv1.Endpoint // by endpointKey
}

// AddressTypes are the address types of svc's slices: its IP families;
// without them, the family of its cluster IP; a headless Service without
// families gets both.
func AddressTypes(svc *corev1.Service) []discoveryv1.AddressType {
	var out []discoveryv1.AddressType
	seen := map[discoveryv1.AddressType]bool{}
	for _, f := range svc.Spec.IPFamilies {
		t := discoveryv1.AddressTypeIPv4
		if f == corev1.IPv6Protocol {
			t = discoveryv1.AddressTypeIPv6
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	if len(out) > 0 {
		return out
	}
	if endpointutil.IsServiceIPSet(svc) {
		if endpointutil.IsIPv6(svc.Spec.ClusterIP) {
			return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv6}
		}
		return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4}
	}
	return []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6}
}

// EndpointPorts are the ports svc's ports resolve to on pod (named target
// ports looked up per pod); a port that does not resolve is left out.
func EndpointPorts(svc *corev1.Service, p *corev1.Pod) []discoveryv1.EndpointPort {
	out := []discoveryv1.EndpointPort{}
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		n, ok := endpointutil.FindPort(p, sp)
		if !ok {
			continue
		}
		out = append(out, discoveryv1.EndpointPort{
			Name: ptr.To(sp.Name), Port: ptr.To(n), Protocol: ptr.To(sp.Protocol), AppProtocol: sp.AppProtocol,
		})
	}
	return out
}

// PortsKey identifies a set of ports, whatever their order.
func PortsKey(ports []discoveryv1.EndpointPort) string {
	keys := make([]string, 0, len(ports))
	for _, p := range ports {
		keys = append(keys, portKey(p))
	}
	sort.Strings(keys)
	return strings.Join(keys, "\x01")
}

func portKey(p discoveryv1.EndpointPort) string {
	return ptr.Deref(p.Name, "") + "\x00" + strconv.Itoa(int(ptr.Deref(p.Port, 0))) + "\x00" +
		string(ptr.Deref(p.Protocol, "")) + "\x00" + ptr.Deref(p.AppProtocol, "")
}

func sortPorts(ports []discoveryv1.EndpointPort) {
	sort.Slice(ports, func(i, j int) bool { return portKey(ports[i]) < portKey(ports[j]) })
}

// Endpoint is pod's endpoint in a slice of addressType: ready when serving
// and not terminating (or always, when the Service publishes not-ready
// addresses), serving when the pod is Ready, terminating when it is being
// deleted; with its node, the node's zone, and its hostname when it is in
// the Service's subdomain.
func Endpoint(p *corev1.Pod, node *corev1.Node, svc *corev1.Service, addressType discoveryv1.AddressType) discoveryv1.Endpoint {
	serving := endpointutil.IsPodReady(p)
	terminating := p.DeletionTimestamp != nil
	ready := svc.Spec.PublishNotReadyAddresses || serving && !terminating
	ep := discoveryv1.Endpoint{
		Addresses:  []string{},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(serving), Terminating: ptr.To(terminating)},
		TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
	}
	for _, ip := range endpointutil.PodIPs(p) {
		v6 := endpointutil.IsIPv6(ip)
		if v6 == (addressType == discoveryv1.AddressTypeIPv6) {
			ep.Addresses = append(ep.Addresses, endpointutil.CanonicalIP(ip))
		}
	}
	if p.Spec.NodeName != "" {
		ep.NodeName = ptr.To(p.Spec.NodeName)
	}
	if node != nil && node.Labels[corev1.LabelTopologyZone] != "" {
		ep.Zone = ptr.To(node.Labels[corev1.LabelTopologyZone])
	}
	if endpointutil.ShouldSetHostname(p, svc) {
		ep.Hostname = ptr.To(p.Spec.Hostname)
	}
	return ep
}

// endpointKey identifies an endpoint across syncs: its pod.
func endpointKey(ep *discoveryv1.Endpoint) string {
	if r := ep.TargetRef; r != nil {
		return r.Namespace + "/" + r.Name + "/" + string(r.UID)
	}
	return strings.Join(ep.Addresses, ",")
}

// Compute is the desired endpoints of svc over its selected pods; node
// looks a node up (nil when unknown).
func Compute(svc *corev1.Service, pods []*corev1.Pod, node func(string) (*corev1.Node, bool)) *Desired {
	d := &Desired{Groups: map[discoveryv1.AddressType]map[string]*Group{}}
	types := AddressTypes(svc)
	for _, t := range types {
		d.Groups[t] = map[string]*Group{}
	}
	for _, p := range pods {
		if !endpointutil.InEndpoints(p, true) {
			continue
		}
		var n *corev1.Node
		if p.Spec.NodeName != "" {
			var ok bool
			n, ok = node(p.Spec.NodeName)
			if !ok && !svc.Spec.PublishNotReadyAddresses {
				// As upstream: a pod on a node not (yet) known is left out
				// until the node shows up.
				d.Skipped = append(d.Skipped, p.Name)
				continue
			}
		}
		ports := EndpointPorts(svc, p)
		if len(svc.Spec.Ports) > 0 && len(ports) == 0 {
			continue
		}
		sortPorts(ports)
		pk := PortsKey(ports)
		for _, t := range types {
			ep := Endpoint(p, n, svc, t)
			if len(ep.Addresses) == 0 {
				continue
			}
			g := d.Groups[t][pk]
			if g == nil {
				g = &Group{Ports: ports, Endpoints: map[string]discoveryv1.Endpoint{}}
				d.Groups[t][pk] = g
			}
			g.Endpoints[endpointKey(&ep)] = ep
		}
	}
	return d
}

// Labels are the labels of svc's slices: the Service's own (but the
// reserved ones), the service name, managed-by, and the headless label
// when it has no cluster IP.
func Labels(svc *corev1.Service) map[string]string {
	l := map[string]string{}
	for k, v := range svc.Labels {
		if k == discoveryv1.LabelServiceName || k == discoveryv1.LabelManagedBy || k == corev1.IsHeadlessService {
			continue
		}
		l[k] = v
	}
	if !endpointutil.IsServiceIPSet(svc) {
		l[corev1.IsHeadlessService] = ""
	}
	l[discoveryv1.LabelServiceName] = svc.Name
	l[discoveryv1.LabelManagedBy] = ControllerName
	return l
}

// Plan is the writes that bring a Service's slices to the desired state.
type Plan struct {
	Create, Update, Delete []*discoveryv1.EndpointSlice
}

func ownedBy(s *discoveryv1.EndpointSlice, svc *corev1.Service) bool {
	for _, o := range s.OwnerReferences {
		if o.UID == svc.UID && o.Kind == "Service" && o.APIVersion == "v1" {
			return true
		}
	}
	return false
}

func newSlice(svc *corev1.Service, t discoveryv1.AddressType, ports []discoveryv1.EndpointPort) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    svc.Name + "-",
			Namespace:       svc.Namespace,
			Labels:          Labels(svc),
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))},
		},
		AddressType: t,
		Ports:       ports,
		Endpoints:   []discoveryv1.Endpoint{},
	}
}

// normalized is ep without what comparisons ignore (the pod's
// resourceVersion).
func normalized(ep discoveryv1.Endpoint) discoveryv1.Endpoint {
	c := *ep.DeepCopy()
	if c.TargetRef != nil {
		c.TargetRef.ResourceVersion = ""
	}
	return c
}

func endpointsEqual(a, b []discoveryv1.Endpoint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !equality.Semantic.DeepEqual(normalized(a[i]), normalized(b[i])) {
			return false
		}
	}
	return true
}

// Reconcile plans the writes that turn existing (svc's managed slices)
// into desired, holding at most maxPerSlice endpoints per slice. Endpoints
// stay in the slice they are in while they can; new ones fill the fullest
// slices with room first, then new slices; emptied slices are deleted, or
// reused for a new one; every address type keeps at least one slice (an
// empty placeholder when there are no endpoints), as upstream.
func Reconcile(svc *corev1.Service, existing []*discoveryv1.EndpointSlice, desired *Desired, maxPerSlice int) Plan {
	var plan Plan
	labels := Labels(svc)
	byType := map[discoveryv1.AddressType][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		if _, ok := desired.Groups[s.AddressType]; !ok || !ownedBy(s, svc) {
			plan.Delete = append(plan.Delete, s)
			continue
		}
		byType[s.AddressType] = append(byType[s.AddressType], s)
	}
	types := make([]discoveryv1.AddressType, 0, len(desired.Groups))
	for t := range desired.Groups {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return types[i] < types[j] })
	for _, t := range types {
		p := reconcileType(svc, t, byType[t], desired.Groups[t], labels, maxPerSlice)
		plan.Create = append(plan.Create, p.Create...)
		plan.Update = append(plan.Update, p.Update...)
		plan.Delete = append(plan.Delete, p.Delete...)
	}
	return plan
}

func reconcileType(svc *corev1.Service, t discoveryv1.AddressType, existing []*discoveryv1.EndpointSlice,
	groups map[string]*Group, labels map[string]string, maxPerSlice int) Plan {
	var creates, updates, deletes []*discoveryv1.EndpointSlice
	byPorts := map[string][]*discoveryv1.EndpointSlice{}
	for _, s := range existing {
		k := PortsKey(s.Ports)
		byPorts[k] = append(byPorts[k], s)
	}
	gkeys := make([]string, 0, len(groups))
	for k := range groups {
		gkeys = append(gkeys, k)
	}
	sort.Strings(gkeys)
	for _, pk := range gkeys {
		c, u, d := reconcilePorts(svc, t, byPorts[pk], groups[pk], labels, maxPerSlice)
		creates, updates, deletes = append(creates, c...), append(updates, u...), append(deletes, d...)
	}
	// Slices of port sets no pod has any more.
	pkeys := make([]string, 0, len(byPorts))
	for k := range byPorts {
		pkeys = append(pkeys, k)
	}
	sort.Strings(pkeys)
	for _, pk := range pkeys {
		if _, ok := groups[pk]; !ok {
			deletes = append(deletes, byPorts[pk]...)
		}
	}
	// Every address type keeps one slice: an empty placeholder.
	if len(existing) == len(deletes) && len(creates) == 0 {
		ph := newSlice(svc, t, []discoveryv1.EndpointPort{})
		if len(deletes) == 1 && len(deletes[0].Endpoints) == 0 && len(deletes[0].Ports) == 0 && maps.Equal(deletes[0].Labels, labels) {
			deletes = nil // already the placeholder
		} else {
			creates = append(creates, ph)
		}
	}
	// A slice about to be deleted is reused for one about to be created.
	for len(deletes) > 0 && len(creates) > 0 {
		d, c := deletes[0], creates[len(creates)-1]
		deletes, creates = deletes[1:], creates[:len(creates)-1]
		reused := d.DeepCopy()
		reused.Labels = c.Labels
		reused.OwnerReferences = c.OwnerReferences
		reused.Ports = c.Ports
		reused.Endpoints = c.Endpoints
		updates = append(updates, reused)
	}
	return Plan{Create: creates, Update: updates, Delete: deletes}
}

func reconcilePorts(svc *corev1.Service, t discoveryv1.AddressType, existing []*discoveryv1.EndpointSlice, g *Group,
	labels map[string]string, maxPerSlice int) (creates, updates, deletes []*discoveryv1.EndpointSlice) {
	sort.Slice(existing, func(i, j int) bool { return existing[i].Name < existing[j].Name })
	placed := map[string]bool{}
	type slot struct {
		s       *discoveryv1.EndpointSlice
		changed bool
	}
	var kept []*slot
	for _, s := range existing {
		var eps []discoveryv1.Endpoint
		for i := range s.Endpoints {
			k := endpointKey(&s.Endpoints[i])
			want, ok := g.Endpoints[k]
			if !ok || placed[k] || len(eps) >= maxPerSlice {
				continue
			}
			placed[k] = true
			eps = append(eps, want)
		}
		if len(eps) == 0 {
			deletes = append(deletes, s)
			continue
		}
		changed := !endpointsEqual(eps, s.Endpoints) || !maps.Equal(s.Labels, labels) || !ownedBy(s, svc) ||
			!equality.Semantic.DeepEqual(s.Ports, g.Ports)
		c := s
		if changed {
			c = s.DeepCopy()
			c.Endpoints = eps
			c.Labels = maps.Clone(labels)
			c.Ports = g.Ports
		}
		kept = append(kept, &slot{s: c, changed: changed})
	}
	var rest []string
	for k := range g.Endpoints {
		if !placed[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	// Fill the slices being written anyway first, then the fullest.
	sort.SliceStable(kept, func(i, j int) bool {
		if kept[i].changed != kept[j].changed {
			return kept[i].changed
		}
		return len(kept[i].s.Endpoints) > len(kept[j].s.Endpoints)
	})
	for _, sl := range kept {
		for len(rest) > 0 && len(sl.s.Endpoints) < maxPerSlice {
			if !sl.changed {
				sl.s = sl.s.DeepCopy()
				sl.changed = true
			}
			sl.s.Endpoints = append(sl.s.Endpoints, g.Endpoints[rest[0]])
			rest = rest[1:]
		}
		if sl.changed {
			updates = append(updates, sl.s)
		}
	}
	for len(rest) > 0 {
		n := min(len(rest), maxPerSlice)
		s := newSlice(svc, t, g.Ports)
		for _, k := range rest[:n] {
			s.Endpoints = append(s.Endpoints, g.Endpoints[k])
		}
		rest = rest[n:]
		creates = append(creates, s)
	}
	return creates, updates, deletes
}
