package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// credentials are what a client needs to talk to the API server, which
// serves only HTTPS: the CA that signed its serving certificate and a
// client certificate, by which the server knows the user.
type credentials struct {
	caPEM, certPEM, keyPEM []byte
}

func (c credentials) tlsConfig() (*tls.Config, error) {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(c.caPEM) {
		return nil, errors.New("the CA's PEM holds no certificate")
	}
	cert, err := tls.X509KeyPair(c.certPEM, c.keyPEM)
	if err != nil {
		return nil, fmt.Errorf("loading the client certificate: %w", err)
	}
	return &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// transport returns an HTTP/1.1 transport presenting c's certificate. A
// Transport with its own TLSClientConfig does not negotiate HTTP/2, which
// is the point: one connection per concurrent request, as the figures
// taken over plain HTTP had, rather than every worker multiplexed on one
// connection.
func (c credentials) transport(maxIdlePerHost int) (*http.Transport, error) {
	tlsConfig, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	return &http.Transport{
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: maxIdlePerHost,
	}, nil
}

// newClientset returns a client for concurrent workers. Its transport
// keeps an idle connection for each of them, as client-go's TLS transport
// does (25 per host) against a kube-apiserver: net/http's default of two
// per host would close and reopen the others' connections, and every
// reopening costs a TLS handshake. The transport is built here, TLS and
// all, because client-go refuses a custom Transport together with
// TLSClientConfig.
func newClientset(url string, creds credentials, workers int) (*kubernetes.Clientset, error) {
	tr, err := creds.transport(workers)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	return clientsetFor(url, tr)
}

// newProtobufClientset is newClientset speaking protobuf, as Kubernetes'
// own components do.
func newProtobufClientset(url string, creds credentials) (*kubernetes.Clientset, error) {
	tr, err := creds.transport(1)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	return kubernetes.NewForConfig(&rest.Config{Host: url, UserAgent: "pgkube-bench", Transport: tr, QPS: 100000, Burst: 100000,
		Timeout: time.Minute, ContentConfig: rest.ContentConfig{ContentType: "application/vnd.kubernetes.protobuf",
			AcceptContentTypes: "application/vnd.kubernetes.protobuf,application/json"}})
}

// clientsetFor returns a client on tr, whose idle connections the caller
// may then close.
func clientsetFor(url string, tr http.RoundTripper) (*kubernetes.Clientset, error) {
	cs, err := kubernetes.NewForConfig(&rest.Config{
		Host:      url,
		UserAgent: "pgkube-bench",
		Transport: tr,
		// client-go's defaults (QPS 5, burst 10) would measure its own
		// rate limiter rather than the server.
		QPS:     100000,
		Burst:   100000,
		Timeout: time.Minute,
		ContentConfig: rest.ContentConfig{
			ContentType:        "application/json",
			AcceptContentTypes: "application/json",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	return cs, nil
}

// adminClientset is a clientset as the admin with its own transport of
// workers idle connections; the caller closes the transport's idle
// connections when done.
func (s *apiServer) adminClientset(workers int) (*kubernetes.Clientset, *http.Transport, error) {
	tr, err := s.admin.transport(workers)
	if err != nil {
		return nil, nil, fmt.Errorf("creating client: %w", err)
	}
	cs, err := clientsetFor(s.url, tr)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, nil, err
	}
	return cs, tr, nil
}
