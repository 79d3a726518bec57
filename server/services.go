package server

import (
	"context"
	"fmt"
	"math/big"
	"math/rand"
	"net"
	"net/netip"

	"github.com/pgkube/pgkube/storage"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ServiceAllocator hands out Service ClusterIPs and NodePorts.
type ServiceAllocator struct {
	Store     *storage.Store
	CIDR      netip.Prefix
	PortBase  int // first NodePort
	PortCount int
}

// NewServiceAllocator parses a service CIDR such as 10.96.0.0/12 and a
// NodePort range such as 30000-32767.
func NewServiceAllocator(store *storage.Store, cidr string, ports string) (*ServiceAllocator, error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		return nil, fmt.Errorf("service CIDR %q: must be an IPv4 prefix", cidr)
	}
	var lo, hi int
	if _, err := fmt.Sscanf(ports, "%d-%d", &lo, &hi); err != nil || lo < 1 || hi > 65535 || hi < lo {
		return nil, fmt.Errorf("node port range %q: must be LOW-HIGH", ports)
	}
	return &ServiceAllocator{Store: store, CIDR: p.Masked(), PortBase: lo, PortCount: hi - lo + 1}, nil
}

// KubernetesIP is the first address of the range, the "kubernetes" Service's.
func (a *ServiceAllocator) KubernetesIP() string { return a.CIDR.Addr().Next().String() }

func (a *ServiceAllocator) size() int64 {
	bits := 32 - a.CIDR.Bits()
	return int64(1)<<bits - 2 // no network or broadcast address
}

func (a *ServiceAllocator) nth(n int64) string {
	base := big.NewInt(0).SetBytes(a.CIDR.Addr().AsSlice())
	ip := base.Add(base, big.NewInt(n+1)).Bytes()
	return net.IP(ip).String()
}

const (
	kindClusterIP = "clusterip"
	kindNodePort  = "nodeport"
)

// claim is one allocated value; release undoes it.
type claim struct{ kind, value string }

// BeforeWrite claims the IPs and ports a Service write needs (filling them
// into the object) and returns a function to call once the write's outcome
// is known: on failure it frees what was claimed, on success what the old
// version held and the new one no longer does.
func (a *ServiceAllocator) BeforeWrite(ctx context.Context, cluster string, obj, old runtime.Object, deleting bool) (func(ok bool), error) {
	svc := obj.(*corev1.Service)
	// The uid makes the owner one incarnation of the Service: a racing
	// create of the same name cannot share, or free, this one's claims.
	owner := svc.Namespace + "/" + svc.Name + "/" + string(svc.UID)
	var oldSvc *corev1.Service
	var oldClaims []claim
	if old != nil {
		oldSvc = old.(*corev1.Service)
		oldClaims = serviceClaims(oldSvc)
	}
	after := context.WithoutCancel(ctx)
	if deleting {
		return func(ok bool) {
			if ok {
				a.release(after, cluster, owner, oldClaims)
			}
		}, nil
	}
	if err := a.fill(ctx, cluster, owner, svc, oldSvc); err != nil {
		return nil, err
	}
	newClaims := serviceClaims(svc)
	return func(ok bool) {
		if ok {
			a.release(after, cluster, owner, minus(oldClaims, newClaims))
		} else {
			a.release(after, cluster, owner, minus(newClaims, oldClaims))
		}
	}, nil
}

func serviceClaims(svc *corev1.Service) []claim {
	var out []claim
	for _, ip := range svc.Spec.ClusterIPs {
		if ip != "" && ip != corev1.ClusterIPNone {
			out = append(out, claim{kindClusterIP, ip})
		}
	}
	if len(svc.Spec.ClusterIPs) == 0 && svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		out = append(out, claim{kindClusterIP, svc.Spec.ClusterIP})
	}
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			out = append(out, claim{kindNodePort, fmt.Sprint(p.NodePort)})
		}
	}
	return out
}

func minus(a, b []claim) []claim {
	var out []claim
	for _, x := range a {
		found := false
		for _, y := range b {
			if x == y {
				found = true
			}
		}
		if !found {
			out = append(out, x)
		}
	}
	return out
}

func (a *ServiceAllocator) release(ctx context.Context, cluster, owner string, claims []claim) {
	for _, cl := range claims {
		_ = a.Store.Release(ctx, cluster, cl.kind, cl.value, owner)
	}
}

// fill sets the Service's server-chosen fields: type and policy defaults,
// its ClusterIP and its NodePorts, claiming each.
func (a *ServiceAllocator) fill(ctx context.Context, cluster, owner string, svc, old *corev1.Service) error {
	sp := &svc.Spec
	if sp.Type == "" {
		sp.Type = corev1.ServiceTypeClusterIP
	}
	if sp.SessionAffinity == "" {
		sp.SessionAffinity = corev1.ServiceAffinityNone
	}
	for i := range sp.Ports {
		p := &sp.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == (intstr.IntOrString{}) {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	invalid := func(errs field.ErrorList) error {
		return apierrors.NewInvalid(schema.GroupKind{Kind: "Service"}, svc.Name, errs)
	}
	if sp.Type == corev1.ServiceTypeExternalName {
		sp.ClusterIP, sp.ClusterIPs = "", nil
	} else {
		if sp.InternalTrafficPolicy == nil {
			p := corev1.ServiceInternalTrafficPolicyCluster
			sp.InternalTrafficPolicy = &p
		}
		if old != nil && sp.ClusterIP == "" && old.Spec.Type != corev1.ServiceTypeExternalName {
			sp.ClusterIP, sp.ClusterIPs = old.Spec.ClusterIP, old.Spec.ClusterIPs
		}
		if len(sp.ClusterIPs) > 0 && sp.ClusterIP == "" {
			sp.ClusterIP = sp.ClusterIPs[0]
		}
		if old != nil && old.Spec.ClusterIP != "" && old.Spec.Type != corev1.ServiceTypeExternalName && sp.ClusterIP != old.Spec.ClusterIP {
			return invalid(field.ErrorList{field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), sp.ClusterIP, "may not change once set")})
		}
		switch {
		case sp.ClusterIP == corev1.ClusterIPNone:
		case sp.ClusterIP != "":
			addr, err := netip.ParseAddr(sp.ClusterIP)
			if err != nil || !a.CIDR.Contains(addr) {
				return invalid(field.ErrorList{field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), sp.ClusterIP,
					fmt.Sprintf("failed to allocate IP %s: the provided IP (%s) is not in the valid range. The range of valid IPs is %s", sp.ClusterIP, sp.ClusterIP, a.CIDR))})
			}
			ok, err := a.Store.Allocate(ctx, cluster, kindClusterIP, addr.String(), owner)
			if err != nil {
				return err
			}
			if !ok {
				return invalid(field.ErrorList{field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), []string{sp.ClusterIP},
					fmt.Sprintf("failed to allocate IP %s: provided IP is already allocated", sp.ClusterIP))})
			}
		default:
			ip, err := a.pickIP(ctx, cluster, owner)
			if err != nil {
				return err
			}
			sp.ClusterIP = ip
		}
		sp.ClusterIPs = []string{sp.ClusterIP}
		if sp.ClusterIP != corev1.ClusterIPNone || len(sp.IPFamilies) == 0 {
			sp.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol}
		}
		if sp.IPFamilyPolicy == nil {
			p := corev1.IPFamilyPolicySingleStack
			sp.IPFamilyPolicy = &p
		}
	}
	if sp.Type == corev1.ServiceTypeNodePort || sp.Type == corev1.ServiceTypeLoadBalancer {
		if sp.ExternalTrafficPolicy == "" {
			sp.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		}
		for i := range sp.Ports {
			p := &sp.Ports[i]
			if p.NodePort == 0 && old != nil {
				for _, op := range old.Spec.Ports {
					if op.Port == p.Port && op.Protocol == p.Protocol {
						p.NodePort = op.NodePort
					}
				}
			}
			if p.NodePort != 0 {
				if int(p.NodePort) < a.PortBase || int(p.NodePort) >= a.PortBase+a.PortCount {
					return invalid(field.ErrorList{field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort,
						fmt.Sprintf("provided port is not in the valid range. The range of valid ports is %d-%d", a.PortBase, a.PortBase+a.PortCount-1))})
				}
				ok, err := a.Store.Allocate(ctx, cluster, kindNodePort, fmt.Sprint(p.NodePort), owner)
				if err != nil {
					return err
				}
				if !ok {
					return invalid(field.ErrorList{field.Invalid(field.NewPath("spec", "ports").Index(i).Child("nodePort"), p.NodePort,
						"provided port is already allocated")})
				}
				continue
			}
			port, err := a.pickPort(ctx, cluster, owner)
			if err != nil {
				return err
			}
			p.NodePort = int32(port)
		}
	} else {
		for i := range sp.Ports {
			sp.Ports[i].NodePort = 0
		}
	}
	return nil
}

// pickIP claims a random free address; random probes find one quickly
// while the range is sparse, a scan of what is taken when it is not.
func (a *ServiceAllocator) pickIP(ctx context.Context, cluster, owner string) (string, error) {
	n := a.size()
	for i := 0; i < 32; i++ {
		ip := a.nth(1 + rand.Int63n(n-1)) // the first address is the kubernetes Service's
		if ok, err := a.Store.Allocate(ctx, cluster, kindClusterIP, ip, owner); err != nil || ok {
			return ip, err
		}
	}
	taken, err := a.Store.Allocated(ctx, cluster, kindClusterIP)
	if err != nil {
		return "", err
	}
	for i := int64(1); i < n; i++ {
		ip := a.nth(i)
		if !taken[ip] {
			if ok, err := a.Store.Allocate(ctx, cluster, kindClusterIP, ip, owner); err != nil || ok {
				return ip, err
			}
		}
	}
	return "", apierrors.NewInternalError(fmt.Errorf("failed to allocate a serviceIP: range is full"))
}

func (a *ServiceAllocator) pickPort(ctx context.Context, cluster, owner string) (int, error) {
	for i := 0; i < 32; i++ {
		port := a.PortBase + rand.Intn(a.PortCount)
		if ok, err := a.Store.Allocate(ctx, cluster, kindNodePort, fmt.Sprint(port), owner); err != nil || ok {
			return port, err
		}
	}
	taken, err := a.Store.Allocated(ctx, cluster, kindNodePort)
	if err != nil {
		return 0, err
	}
	for port := a.PortBase; port < a.PortBase+a.PortCount; port++ {
		if !taken[fmt.Sprint(port)] {
			if ok, err := a.Store.Allocate(ctx, cluster, kindNodePort, fmt.Sprint(port), owner); err != nil || ok {
				return port, err
			}
		}
	}
	return 0, apierrors.NewInternalError(fmt.Errorf("failed to allocate a nodePort: range is full"))
}
