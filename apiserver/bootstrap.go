package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/pgkube/pgkube/authn"
	"github.com/pgkube/pgkube/server"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// bootstrap creates what every cluster has from the start: the system
// namespaces and the "kubernetes" Service pointing at the API server. It
// goes through the API handler itself, so these objects get the same
// defaults, validation and allocation as any other.
func (s *Server) bootstrap(ctx context.Context, kubernetesIP string) error {
	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
		if err := s.ensure(ctx, "/api/v1/namespaces", obj); err != nil {
			return err
		}
	}
	host, portStr, err := net.SplitHostPort(s.listener.Addr().String())
	if err != nil {
		return err
	}
	port, _ := strconv.Atoi(portStr)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Labels: map[string]string{"component": "apiserver", "provider": "kubernetes"}},
		Spec: corev1.ServiceSpec{
			ClusterIP: kubernetesIP,
			Ports:     []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(int32(port))}},
		},
	}
	if err := s.ensure(ctx, "/api/v1/namespaces/default/services", svc); err != nil {
		return err
	}
	ep := &corev1.Endpoints{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Labels: map[string]string{"endpointslice.kubernetes.io/skip-mirror": "true"}},
		Subsets: []corev1.EndpointSubset{{
			Addresses: []corev1.EndpointAddress{{IP: host}},
			Ports:     []corev1.EndpointPort{{Name: "https", Port: int32(port), Protocol: corev1.ProtocolTCP}},
		}},
	}
	if err := s.ensure(ctx, "/api/v1/namespaces/default/endpoints", ep); err != nil {
		return err
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "kubernetes", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{host}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if err := s.ensure(ctx, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", slice); err != nil {
		return err
	}
	// Both follow this process's address; another process sharing the
	// database may have written its own, so refresh them.
	if err := s.put(ctx, "/api/v1/namespaces/default/endpoints/kubernetes", ep); err != nil {
		return err
	}
	return s.put(ctx, "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes", slice)
}

// ensure creates obj at collection unless it exists. API servers starting
// together race here; whichever create loses finds the winner's object.
// The loser may also see the winner's claims (the kubernetes Service's
// address) before its object commits, so it retries for a while.
func (s *Server) ensure(ctx context.Context, collection string, obj metav1.Object) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body, err := s.call(ctx, http.MethodPost, collection, obj)
		if err != nil || code == http.StatusCreated {
			return err
		}
		if code, _, err := s.call(ctx, http.MethodGet, collection+"/"+obj.GetName(), nil); err == nil && code == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("create at %s: %d %s", collection, code, body)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Server) put(ctx context.Context, path string, obj any) error {
	code, body, err := s.call(ctx, http.MethodPut, path, obj)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("update %s: %d %s", path, code, body)
	}
	return nil
}

func (s *Server) call(ctx context.Context, method, path string, obj any) (int, string, error) {
	var body []byte
	if obj != nil {
		var err error
		if body, err = json.Marshal(obj); err != nil {
			return 0, "", err
		}
	}
	return s.callRaw(ctx, method, path, "application/json", body)
}

// apiserverUser is who the server's own requests come from: a member of
// system:masters, as kube-apiserver's loopback client is.
var apiserverUser = authn.User{Name: "system:apiserver", Groups: []string{authn.SystemPrivileged, authn.AllAuthenticated}}

// callRaw runs a request through the full handler in process, as the
// server itself.
func (s *Server) callRaw(ctx context.Context, method, path, contentType string, body []byte) (int, string, error) {
	u := apiserverUser
	req := httptest.NewRequest(method, path, bytes.NewReader(body)).WithContext(server.Internal(authn.WithUser(ctx, &u)))
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String(), nil
}
