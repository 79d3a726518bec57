package endpoints

import (
	"maps"
	"sort"
	"strconv"
	"strings"

	"github.com/pgkube/pgkube/controllers/endpointutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// addressFor is the pod's address in the Service's IP family (its first
// family; else that of its cluster IP; else that of the pod's first IP).
func addressFor(svc *corev1.Service, p *corev1.Pod) (string, bool) {
	ips := endpointutil.PodIPs(p)
	if len(ips) == 0 {
		return "", false
	}
	var wantV6 bool
	switch {
	case len(svc.Spec.IPFamilies) > 0:
		wantV6 = svc.Spec.IPFamilies[0] == corev1.IPv6Protocol
	case endpointutil.IsServiceIPSet(svc):
		wantV6 = endpointutil.IsIPv6(svc.Spec.ClusterIP)
	default:
		wantV6 = endpointutil.IsIPv6(ips[0])
	}
	for _, ip := range ips {
		if endpointutil.IsIPv6(ip) == wantV6 {
			return endpointutil.CanonicalIP(ip), true
		}
	}
	return "", false
}

type addrEntry struct {
	addr  corev1.EndpointAddress
	ready bool
	ports map[string]corev1.EndpointPort // by portKey
}

func portKey(p corev1.EndpointPort) string {
	ap := ""
	if p.AppProtocol != nil {
		ap = *p.AppProtocol
	}
	return p.Name + "\x00" + strconv.Itoa(int(p.Port)) + "\x00" + string(p.Protocol) + "\x00" + ap
}

// Subsets are the Endpoints subsets of svc over its selected pods, packed
// as upstream does (addresses that have the same ports share a subset),
// sorted so that equal inputs give equal outputs; with the counts of ready
// and not-ready addresses.
func Subsets(svc *corev1.Service, pods []*corev1.Pod) ([]corev1.EndpointSubset, int, int) {
	publishNotReady := svc.Spec.PublishNotReadyAddresses
	headless := svc.Spec.ClusterIP == corev1.ClusterIPNone
	entries := map[string]*addrEntry{}
	var order []string
	for _, p := range pods {
		if !endpointutil.InEndpoints(p, publishNotReady) {
			continue
		}
		ip, ok := addressFor(svc, p)
		if !ok {
			continue
		}
		addr := corev1.EndpointAddress{
			IP:        ip,
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID},
		}
		if p.Spec.NodeName != "" {
			node := p.Spec.NodeName
			addr.NodeName = &node
		}
		if endpointutil.ShouldSetHostname(p, svc) {
			addr.Hostname = p.Spec.Hostname
		}
		ready := publishNotReady || endpointutil.IsPodReady(p)
		var ports []corev1.EndpointPort
		if len(svc.Spec.Ports) == 0 {
			if !headless {
				continue // only headless Services may have no ports
			}
		} else {
			for i := range svc.Spec.Ports {
				sp := &svc.Spec.Ports[i]
				n, ok := endpointutil.FindPort(p, sp)
				if !ok {
					continue
				}
				ports = append(ports, corev1.EndpointPort{Name: sp.Name, Port: n, Protocol: sp.Protocol, AppProtocol: sp.AppProtocol})
			}
			if len(ports) == 0 {
				continue
			}
		}
		k := ip + "/" + string(p.UID) + "/" + p.Namespace + "/" + p.Name
		e, ok := entries[k]
		if !ok {
			e = &addrEntry{addr: addr, ports: map[string]corev1.EndpointPort{}}
			entries[k] = e
			order = append(order, k)
		}
		e.ready = e.ready || ready
		for _, port := range ports {
			e.ports[portKey(port)] = port
		}
	}

	// Group by port set.
	type group struct {
		ports           []corev1.EndpointPort
		ready, notReady []corev1.EndpointAddress
	}
	groups := map[string]*group{}
	var nReady, nNotReady int
	for _, k := range order {
		e := entries[k]
		keys := make([]string, 0, len(e.ports))
		for pk := range e.ports {
			keys = append(keys, pk)
		}
		sort.Strings(keys)
		gk := strings.Join(keys, "\x01")
		g, ok := groups[gk]
		if !ok {
			g = &group{}
			for _, pk := range keys {
				g.ports = append(g.ports, e.ports[pk])
			}
			groups[gk] = g
		}
		if e.ready {
			g.ready = append(g.ready, e.addr)
			nReady++
		} else {
			g.notReady = append(g.notReady, e.addr)
			nNotReady++
		}
	}
	gkeys := make([]string, 0, len(groups))
	for k := range groups {
		gkeys = append(gkeys, k)
	}
	sort.Strings(gkeys)
	subsets := []corev1.EndpointSubset{}
	for _, k := range gkeys {
		g := groups[k]
		sortAddresses(g.ready)
		sortAddresses(g.notReady)
		subsets = append(subsets, corev1.EndpointSubset{Addresses: g.ready, NotReadyAddresses: g.notReady, Ports: g.ports})
	}
	return subsets, nReady, nNotReady
}

func sortAddresses(a []corev1.EndpointAddress) {
	sort.Slice(a, func(i, j int) bool {
		if a[i].IP != a[j].IP {
			return a[i].IP < a[j].IP
		}
		return refName(a[i]) < refName(a[j])
	})
}

func refName(a corev1.EndpointAddress) string {
	if a.TargetRef == nil {
		return ""
	}
	return a.TargetRef.Namespace + "/" + a.TargetRef.Name + "/" + string(a.TargetRef.UID)
}

// Labels are the labels of svc's Endpoints: the Service's, the managed-by
// label, and the headless label when it has no cluster IP.
func Labels(svc *corev1.Service) map[string]string {
	l := maps.Clone(svc.Labels)
	if l == nil {
		l = map[string]string{}
	}
	if endpointutil.IsServiceIPSet(svc) {
		delete(l, corev1.IsHeadlessService)
	} else {
		l[corev1.IsHeadlessService] = ""
	}
	l[LabelManagedBy] = ControllerName
	return l
}

// UpToDate tells whether cur already says what svc's pods make (subsets,
// labels, capacity annotation); target references' resourceVersions are
// not compared.
func UpToDate(cur *corev1.Endpoints, svc *corev1.Service, subsets []corev1.EndpointSubset) bool {
	if !maps.Equal(cur.Labels, Labels(svc)) {
		return false
	}
	n := 0
	for _, s := range subsets {
		n += len(s.Addresses) + len(s.NotReadyAddresses)
	}
	if _, annotated := cur.Annotations[corev1.EndpointsOverCapacity]; annotated != (n > MaxCapacity) {
		return false
	}
	want := subsets
	if n > MaxCapacity {
		ep := &corev1.Endpoints{Subsets: cloneSubsets(subsets)}
		Truncate(ep)
		want = ep.Subsets
	}
	return equality.Semantic.DeepEqual(withoutRVs(cur.Subsets), withoutRVs(want))
}

func cloneSubsets(s []corev1.EndpointSubset) []corev1.EndpointSubset {
	out := make([]corev1.EndpointSubset, len(s))
	for i := range s {
		s[i].DeepCopyInto(&out[i])
	}
	return out
}

func withoutRVs(s []corev1.EndpointSubset) []corev1.EndpointSubset {
	out := cloneSubsets(s)
	for i := range out {
		for _, as := range [][]corev1.EndpointAddress{out[i].Addresses, out[i].NotReadyAddresses} {
			for j := range as {
				if as[j].TargetRef != nil {
					as[j].TargetRef.ResourceVersion = ""
				}
			}
		}
	}
	return out
}

// Truncate cuts ep down to MaxCapacity addresses, ready ones first (in
// subset order), and says whether it had to. (Upstream spreads the cut
// over the subsets in proportion; the bound and the preference for ready
// addresses are the same.)
func Truncate(ep *corev1.Endpoints) bool {
	total := 0
	for _, s := range ep.Subsets {
		total += len(s.Addresses) + len(s.NotReadyAddresses)
	}
	if total <= MaxCapacity {
		return false
	}
	left := MaxCapacity
	for i := range ep.Subsets {
		s := &ep.Subsets[i]
		if len(s.Addresses) > left {
			s.Addresses = s.Addresses[:left]
		}
		left -= len(s.Addresses)
	}
	for i := range ep.Subsets {
		s := &ep.Subsets[i]
		if len(s.NotReadyAddresses) > left {
			s.NotReadyAddresses = s.NotReadyAddresses[:left]
		}
		left -= len(s.NotReadyAddresses)
	}
	kept := ep.Subsets[:0]
	for _, s := range ep.Subsets {
		if len(s.Addresses)+len(s.NotReadyAddresses) > 0 {
			kept = append(kept, s)
		}
	}
	ep.Subsets = kept
	return true
}
