package nodeconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// IsUpgrade reports whether r asks to switch protocols (SPDY/3.1 or
// WebSocket), as exec, attach and port-forward clients do.
func IsUpgrade(r *http.Request) bool {
	if r.Header.Get("Upgrade") == "" {
		return false
	}
	for _, v := range r.Header.Values("Connection") {
		for _, tok := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// StripCredentials removes what authenticated the caller to the API
// server: a backend is reached with the API server's own identity and must
// not learn the user's token (kube-apiserver drops it after
// authentication too).
func StripCredentials(h http.Header) {
	h.Del("Authorization")
	h.Del("Proxy-Authorization")
	h.Del(ClusterHeader)
	h.Del(PodUIDHeader)
	for k := range h {
		if strings.HasPrefix(k, "Impersonate-") {
			h.Del(k)
		}
	}
}

// hopHeaders are per-connection headers a proxy does not pass on. Connection
// and Upgrade are missing on purpose: they are the request being proxied.
var hopHeaders = []string{"Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding"}

// ProxyUpgrade passes the upgrade request r on to target (its path and
// query as given; r's are not used) over a connection of its own, with TLS
// when target is https. When the backend switches protocols, the client's
// connection is taken over and the two are spliced until either side
// closes or r's context ends. Any other answer of the backend (a refusal
// such as 400, or 403 for an unsupported subprotocol) goes to the client as
// it is, so a client can fall back, as kubectl falls back from WebSocket to
// SPDY.
//
// An error means nothing was written to w, and the caller answers.
func ProxyUpgrade(w http.ResponseWriter, r *http.Request, target *url.URL, tlsConfig *tls.Config) error {
	ctx := r.Context()
	backend, err := dial(ctx, target, tlsConfig)
	if err != nil {
		return fmt.Errorf("error dialing backend: %w", err)
	}
	out := &http.Request{Method: r.Method, URL: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: r.Header.Clone(), Host: target.Host}
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	backend.SetDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck // the handshake only
	if err := out.Write(backend); err != nil {
		backend.Close()
		return fmt.Errorf("error proxying upgrade request: %w", err)
	}
	fromBackend := bufio.NewReader(backend)
	resp, err := http.ReadResponse(fromBackend, out)
	if err != nil {
		backend.Close()
		return fmt.Errorf("error reading upgrade response: %w", err)
	}
	backend.SetDeadline(time.Time{}) //nolint:errcheck
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer backend.Close()
		defer resp.Body.Close()
		for k, vs := range resp.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body) //nolint:errcheck // the client sees a short body
		return nil
	}
	client, clientBuf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		backend.Close()
		// HTTP/2 has no upgrades; kubectl speaks HTTP/1.1 for them.
		return fmt.Errorf("connection upgrade not possible: %w", err)
	}
	splice(ctx, client, clientBuf, backend, fromBackend, resp)
	return nil
}

// splice writes the backend's 101 answer to the client, then copies both
// ways (the bytes either side sent early, held in the buffers, first).
func splice(ctx context.Context, client net.Conn, clientBuf *bufio.ReadWriter, backend net.Conn, fromBackend *bufio.Reader, resp *http.Response) {
	defer client.Close()
	defer backend.Close()
	head := &strings.Builder{}
	fmt.Fprintf(head, "HTTP/1.1 %s\r\n", resp.Status)
	resp.Header.Write(head) //nolint:errcheck // a strings.Builder does not fail
	head.WriteString("\r\n")
	if _, err := clientBuf.Writer.WriteString(head.String()); err != nil {
		return
	}
	if err := clientBuf.Writer.Flush(); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		io.Copy(backend, clientBuf.Reader) //nolint:errcheck // ends with either side
		done <- struct{}{}
	}()
	go func() {
		io.Copy(client, fromBackend) //nolint:errcheck // ends with either side
		done <- struct{}{}
	}()
	// One direction ending ends the session: SPDY and WebSocket close as a
	// whole, and a half-open spliced pair would hold both sockets forever.
	select {
	case <-done:
	case <-ctx.Done():
	}
	client.Close()
	backend.Close()
	<-done
}

func dial(ctx context.Context, target *url.URL, tlsConfig *tls.Config) (net.Conn, error) {
	host := target.Host
	if target.Port() == "" {
		port := "80"
		if target.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(target.Hostname(), port)
	}
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	switch target.Scheme {
	case "http":
		return d.DialContext(ctx, "tcp", host)
	case "https":
		cfg := &tls.Config{}
		if tlsConfig != nil {
			cfg = tlsConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = target.Hostname()
		}
		// HTTP/2 has no upgrades.
		cfg.NextProtos = []string{"http/1.1"}
		return (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", host)
	}
	return nil, errors.New("unsupported scheme " + target.Scheme)
}
