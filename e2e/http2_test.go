package e2e

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestWatchOverHTTP2 streams a watch over HTTP/2 (negotiated by TLS ALPN,
// as client-go does) and over HTTP/1.1 chunked encoding, the connection
// taken over by the server: each event arrives as it happens.
func TestWatchOverHTTP2(t *testing.T) {
	srv := sharedServer(t)
	do(t, "POST", srv.url+"/api/v1/namespaces", "application/json", []byte(`{"metadata":{"name":"h2"}}`))
	for _, h2 := range []bool{true, false} {
		var p http.Protocols
		if h2 {
			p.SetHTTP2(true)
		} else {
			p.SetHTTP1(true)
		}
		// A fresh TLS config: ALPN then offers only the chosen protocol.
		tlsConfig := adminHTTP(t).Transport.(*http.Transport).TLSClientConfig.Clone()
		tlsConfig.NextProtos = nil
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, Protocols: &p}}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.url+"/api/v1/namespaces/h2/configmaps?watch=true&resourceVersion=0", nil)
		resp, err := client.Do(req)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if want := map[bool]int{true: 2, false: 1}[h2]; resp.ProtoMajor != want {
			t.Fatalf("protocol HTTP/%d, want HTTP/%d", resp.ProtoMajor, want)
		}
		if !h2 && len(resp.TransferEncoding) == 0 {
			t.Fatalf("HTTP/1.1 watch is not chunked: %v", resp.Header)
		}
		lines := make(chan string, 10)
		go func() {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		name := map[bool]string{true: "via-h2", false: "via-h1"}[h2]
		body := []byte(`{"metadata":{"name":"` + name + `"}}`)
		if code, out := do(t, "POST", srv.url+"/api/v1/namespaces/h2/configmaps", "application/json", body); code != 201 {
			t.Fatalf("create: %d %s", code, bytes.TrimSpace(out))
		}
		for found := false; !found; {
			select {
			case l := <-lines:
				found = strings.Contains(l, `"type":"ADDED"`) && strings.Contains(l, name)
			case <-ctx.Done():
				t.Fatalf("no ADDED event for %s", name)
			}
		}
		cancel()
		resp.Body.Close()
	}
}
