package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"

	"github.com/pgkube/pgkube/admission"
	"github.com/pgkube/pgkube/storage"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// resolveService picks the address a webhook's service reference reaches:
// a ready endpoint of the service port, as kube-apiserver does with
// aggregator routing, since pgkube has no cluster IPs to dial.
func (w *Webhooks) resolveService(ctx context.Context, cluster, namespace, name string, port int32) (string, error) {
	if w.opts.Store == nil {
		return "", apierrors.NewServiceUnavailable(fmt.Sprintf("no endpoints available for service %q", name))
	}
	var svc corev1.Service
	if err := getJSON(ctx, w.opts.Store, cluster, storage.Key{Resource: "/services", Namespace: namespace, Name: name}, &svc); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return "", apierrors.NewNotFound(schema.GroupResource{Resource: "service"}, name)
		}
		return "", err
	}
	switch svc.Spec.Type {
	case "", corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
	case corev1.ServiceTypeExternalName:
		return net.JoinHostPort(svc.Spec.ExternalName, strconv.Itoa(int(port))), nil
	default:
		return "", fmt.Errorf("unsupported service type %q", svc.Spec.Type)
	}
	var svcPort *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Port == port {
			svcPort = &svc.Spec.Ports[i]
			break
		}
	}
	if svcPort == nil {
		return "", apierrors.NewServiceUnavailable(fmt.Sprintf("no service port %d found for service %q", port, name))
	}

	if lister, ok := w.opts.Store.(admission.Lister); ok {
		addr, err := fromSlices(ctx, lister, cluster, namespace, name, svcPort.Name)
		if addr != "" || err != nil {
			return addr, err
		}
	}
	// Endpoints, for clusters whose controllers still write only those.
	var eps corev1.Endpoints
	err := getJSON(ctx, w.opts.Store, cluster, storage.Key{Resource: "/endpoints", Namespace: namespace, Name: name}, &eps)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return "", err
	}
	for _, ss := range eps.Subsets {
		for _, p := range ss.Ports {
			if p.Name != svcPort.Name || len(ss.Addresses) == 0 {
				continue
			}
			a := ss.Addresses[rand.IntN(len(ss.Addresses))]
			return net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))), nil
		}
	}
	return "", apierrors.NewServiceUnavailable(fmt.Sprintf("no endpoints available for service %q", name))
}

func fromSlices(ctx context.Context, l admission.Lister, cluster, namespace, name, portName string) (string, error) {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: name})
	res, err := l.List(ctx, cluster, storage.ListOptions{Resource: "discovery.k8s.io/endpointslices", Namespace: namespace, Labels: sel})
	if err != nil {
		return "", err
	}
	for _, o := range res.Items {
		var slice discoveryv1.EndpointSlice
		if err := json.Unmarshal(o.Data, &slice); err != nil {
			return "", fmt.Errorf("decode %s: %w", o.Key, err)
		}
		for _, p := range slice.Ports {
			if p.Name == nil || *p.Name != portName || p.Port == nil || len(slice.Endpoints) == 0 {
				continue
			}
			// Start at a random endpoint so that load spreads.
			offset := rand.IntN(len(slice.Endpoints))
			for i := range slice.Endpoints {
				ep := slice.Endpoints[(i+offset)%len(slice.Endpoints)]
				if (ep.Conditions.Ready != nil && !*ep.Conditions.Ready) || len(ep.Addresses) == 0 {
					continue
				}
				return net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(*p.Port))), nil
			}
		}
	}
	return "", nil
}

func getJSON(ctx context.Context, g admission.Getter, cluster string, key storage.Key, into any) error {
	o, err := g.Get(ctx, cluster, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(o.Data, into); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}
