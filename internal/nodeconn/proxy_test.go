package nodeconn

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// echoUpgrade is a real upgrade server: it switches to "test-echo" and
// echoes every line upper-cased, or refuses with 403 when asked to.
func echoUpgrade(t *testing.T) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("refuse") != "" {
			http.Error(w, "unsupported protocol", http.StatusForbidden)
			return
		}
		if !IsUpgrade(r) || r.Header.Get("Upgrade") != "test-echo" {
			http.Error(w, "Upgrade request required", http.StatusBadRequest)
			return
		}
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "credentials leaked", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test-echo\r\nX-Path: %s\r\n\r\n", r.URL.Path)
		rw.Flush()
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			rw.WriteString(strings.ToUpper(line))
			rw.Flush()
		}
	}))
}

func TestProxyUpgrade(t *testing.T) {
	backend := echoUpgrade(t)
	defer backend.Close()
	target, _ := url.Parse(backend.URL + "/streams/abc")
	proxyErrs := make(chan error, 10)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		StripCredentials(r.Header)
		t := *target
		t.RawQuery = r.URL.RawQuery
		if err := ProxyUpgrade(w, r, &t, nil); err != nil {
			proxyErrs <- err
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	}))
	defer front.Close()

	conn, err := net.Dial("tcp", strings.TrimPrefix(front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The first line is sent with the request, before the answer: it
	// must reach the backend all the same.
	fmt.Fprintf(conn, "GET /x HTTP/1.1\r\nHost: front\r\nConnection: Upgrade\r\nUpgrade: test-echo\r\nAuthorization: Bearer secret\r\n\r\nhello\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("X-Path") != "/streams/abc" {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("answer %d %v %q", resp.StatusCode, resp.Header, body)
	}
	for _, want := range []string{"HELLO\n", "WORLD\n"} {
		if want == "WORLD\n" {
			fmt.Fprint(conn, "world\n")
		}
		got, err := br.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("echo: %q, %v; want %q", got, err, want)
		}
	}
	// The client leaving ends the splice; the backend sees EOF.
	conn.Close()

	// A refusal is passed on as it is, so clients can fall back.
	req, _ := http.NewRequest(http.MethodGet, front.URL+"/x?refuse=1", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "test-echo")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "unsupported protocol") {
		t.Errorf("refusal: %d %q", r2.StatusCode, body)
	}

	// A backend that is not there: the caller answers.
	backend.Close()
	r3, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r3.Body.Close()
	if r3.StatusCode != http.StatusBadGateway {
		t.Errorf("dead backend: %d", r3.StatusCode)
	}
	select {
	case err := <-proxyErrs:
		if !strings.Contains(err.Error(), "error dialing backend") {
			t.Errorf("dead backend error: %v", err)
		}
	default:
		t.Error("no error for a dead backend")
	}
}

func TestIsUpgrade(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	if IsUpgrade(r) {
		t.Error("plain request is an upgrade")
	}
	r.Header.Set("Connection", "keep-alive, Upgrade")
	r.Header.Set("Upgrade", "SPDY/3.1")
	if !IsUpgrade(r) {
		t.Error("SPDY upgrade not recognized")
	}
}
