package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// maxRedirects is where a probe stops following redirects to its own host.
const maxRedirects = 10

// newHTTPRequest builds the GET request of an httpGet probe.
func newHTTPRequest(ctx context.Context, g *corev1.HTTPGetAction, t Target) (*http.Request, error) {
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	host := g.Host
	if host == "" {
		host = t.PodIP
	}
	port, err := resolvePort(g.Port, t.Container)
	if err != nil {
		return nil, err
	}
	// The path may carry a query; parsing it keeps it. A path that does
	// not parse is still sent as it is, as the kubelet does, rather than
	// failing a probe the API accepted.
	u, err := url.Parse(g.Path)
	if err != nil {
		u = &url.URL{Path: g.Path}
	}
	u.Scheme = scheme
	u.Host = net.JoinHostPort(host, strconv.Itoa(port))
	if u.Path != "" && !strings.HasPrefix(u.Path, "/") {
		u.Path = "/" + u.Path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("building the probe's request: %w", err)
	}
	h := http.Header{}
	for _, hh := range g.HTTPHeaders {
		h.Add(hh.Name, hh.Value)
	}
	if _, ok := h["User-Agent"]; !ok {
		h.Set("User-Agent", UserAgent)
	}
	// An Accept header set to "" means "send none".
	if _, ok := h["Accept"]; !ok {
		h.Set("Accept", "*/*")
	} else if h.Get("Accept") == "" {
		h.Del("Accept")
	}
	req.Header = h
	req.Host = h.Get("Host")
	return req, nil
}

// checkRedirect follows redirects within the probed host only: a
// container must not make the node's agent send requests elsewhere. The
// redirect response then decides the result (a warning, see doHTTP).
func checkRedirect(req *http.Request, via []*http.Request) error {
	if req.URL.Hostname() != via[0].URL.Hostname() {
		return http.ErrUseLastResponse
	}
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	return nil
}

func newHTTPClient(timeout time.Duration, h2c bool) *http.Client {
	tr := &http.Transport{
		// Containers serve self-signed certificates; the probe checks
		// health, not identity.
		TLSClientConfig:    &tls.Config{InsecureSkipVerify: true},
		DisableKeepAlives:  true,
		Proxy:              nil,
		DisableCompression: true,
		DialContext:        dial,
	}
	if h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Timeout: timeout, Transport: tr, CheckRedirect: checkRedirect}
}

func doHTTP(ctx context.Context, g *corev1.HTTPGetAction, t Target, timeout time.Duration) (Result, string, error) {
	req, err := newHTTPRequest(ctx, g, t)
	if err != nil {
		return Unknown, "", err
	}
	h2c := g.Protocol != nil && *g.Protocol == corev1.HTTPProtocolHTTP2 && req.URL.Scheme == "http"
	client := newHTTPClient(timeout, h2c)
	defer client.CloseIdleConnections()
	res, err := client.Do(req)
	if err != nil {
		// Refused, reset, timed out: the container did not answer, a
		// failure whose message is the client's error.
		return Failure, err.Error(), nil
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxOutput))
	if err != nil && !errors.Is(err, io.EOF) {
		return Failure, fmt.Sprintf("reading the response body: %v", err), nil
	}
	if res.StatusCode >= http.StatusOK && res.StatusCode < http.StatusBadRequest {
		if res.StatusCode >= http.StatusMultipleChoices {
			return Warning, fmt.Sprintf("Probe terminated redirects, Response body: %s", body), nil
		}
		return Success, string(body), nil
	}
	// The body stays out of the message: events are readable by users who
	// may not see what the container serves.
	return Failure, fmt.Sprintf("HTTP probe failed with statuscode: %d", res.StatusCode), nil
}
