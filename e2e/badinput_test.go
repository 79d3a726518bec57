package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

type status struct {
	Kind    string `json:"kind"`
	Status  string `json:"status"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Code    int    `json:"code"`
	Details struct {
		Causes []struct {
			Field string `json:"field"`
		} `json:"causes"`
	} `json:"details"`
}

func do(t *testing.T, method, url, contentType string, body []byte, headers ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := adminHTTP(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// TestBadInput sends what a broken or hostile client might: each gets a
// Status with the right 4xx code and a clear message, and nothing is stored.
func TestBadInput(t *testing.T) {
	srv := sharedServer(t)
	base := srv.url
	ns := base + "/api/v1/namespaces/bad-input"
	if code, body := do(t, "POST", base+"/api/v1/namespaces", "application/json", []byte(`{"metadata":{"name":"bad-input"}}`)); code != 201 {
		t.Fatalf("create namespace: %d %s", code, body)
	}
	deep := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	huge := `{"metadata":{"name":"huge"},"data":{"k":"` + strings.Repeat("x", 3*1024*1024+10) + `"}}`
	cases := []struct {
		name, method, path, ctype, body string
		code                            int
		reason, msg                     string
	}{
		{"malformed json", "POST", "/configmaps", "application/json", `{"metadata":`, 400, "BadRequest", ""},
		{"json array", "POST", "/configmaps", "application/json", `[1,2]`, 400, "BadRequest", ""},
		{"malformed yaml", "POST", "/configmaps", "application/yaml", "metadata: [\n  name: x", 400, "BadRequest", ""},
		{"garbage protobuf", "POST", "/configmaps", "application/vnd.kubernetes.protobuf", "k8s\x00\xff\xfe\x01garbage", 400, "BadRequest", ""},
		{"protobuf without magic", "POST", "/configmaps", "application/vnd.kubernetes.protobuf", "\x0a\x02hi", 400, "BadRequest", ""},
		{"empty body", "POST", "/configmaps", "application/json", ``, 400, "BadRequest", ""},
		{"wrong kind", "POST", "/configmaps", "application/json", `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"k"}}`, 400, "BadRequest", "Secret"},
		{"wrong apiVersion", "POST", "/configmaps", "application/json", `{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"k"}}`, 400, "BadRequest", ""},
		{"wrong type", "POST", "/configmaps", "application/json", `{"metadata":{"name":"t"},"data":{"k":5}}`, 400, "BadRequest", ""},
		{"namespace mismatch", "POST", "/configmaps", "application/json", `{"metadata":{"name":"m","namespace":"other"}}`, 400, "BadRequest", "does not match the namespace"},
		{"no name", "POST", "/configmaps", "application/json", `{"metadata":{}}`, 422, "Invalid", "name or generateName is required"},
		{"bad name", "POST", "/configmaps", "application/json", `{"metadata":{"name":"Not_Valid"}}`, 422, "Invalid", "metadata.name"},
		{"bad label", "POST", "/configmaps", "application/json", `{"metadata":{"name":"l","labels":{"bad key!":"v"}}}`, 422, "Invalid", "metadata.labels"},
		{"label value too long", "POST", "/configmaps", "application/json", `{"metadata":{"name":"l2","labels":{"k":"` + strings.Repeat("v", 64) + `"}}}`, 422, "Invalid", "must be no more than 63"},
		{"annotations too large", "POST", "/configmaps", "application/json", `{"metadata":{"name":"a","annotations":{"k":"` + strings.Repeat("v", 256*1024+1) + `"}}}`, 422, "Invalid", "metadata.annotations"},
		{"resourceVersion on create", "POST", "/configmaps", "application/json", `{"metadata":{"name":"rv","resourceVersion":"5"}}`, 400, "BadRequest", "resourceVersion should not be set"},
		{"deeply nested", "POST", "/configmaps", "application/json", `{"metadata":{"name":"deep"},"data":` + deep + `}`, 400, "BadRequest", ""},
		{"too large", "POST", "/configmaps", "application/json", huge, 413, "RequestEntityTooLarge", ""},
		{"unsupported media type", "POST", "/configmaps", "text/plain", `hello`, 415, "UnsupportedMediaType", ""},
		{"unknown resource", "GET", "/widgets", "", ``, 404, "NotFound", ""},
		{"bad label selector", "GET", "/configmaps?labelSelector=a%20in%20(", "", ``, 400, "BadRequest", ""},
		{"bad field selector", "GET", "/configmaps?fieldSelector=nope", "", ``, 400, "BadRequest", ""},
		{"unsupported field", "GET", "/configmaps?fieldSelector=data.k%3Dv", "", ``, 400, "BadRequest", "field label not supported"},
		{"bad limit", "GET", "/configmaps?limit=abc", "", ``, 400, "BadRequest", ""},
		{"bad continue", "GET", "/configmaps?continue=bm90LWEtdG9rZW4", "", ``, 400, "BadRequest", ""},
		{"bad resourceVersion", "GET", "/configmaps?resourceVersion=abc", "", ``, 400, "BadRequest", ""},
		{"bad resourceVersionMatch", "GET", "/configmaps?resourceVersion=1&resourceVersionMatch=Sometimes", "", ``, 422, "Invalid", "resourceVersionMatch"},
		{"match without resourceVersion", "GET", "/configmaps?resourceVersionMatch=Exact", "", ``, 422, "Invalid", "resourceVersionMatch is forbidden unless resourceVersion is provided"},
		{"exact at 0", "GET", "/configmaps?resourceVersion=0&resourceVersionMatch=Exact", "", ``, 422, "Invalid", `resourceVersionMatch "exact" is forbidden for resourceVersion "0"`},
		{"sendInitialEvents on a list", "GET", "/configmaps?sendInitialEvents=true", "", ``, 422, "Invalid", "sendInitialEvents is forbidden for list"},
		{"sendInitialEvents without NotOlderThan", "GET", "/configmaps?watch=true&sendInitialEvents=true", "", ``, 422, "Invalid", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"},
		{"watch match without sendInitialEvents", "GET", "/configmaps?watch=true&resourceVersion=1&resourceVersionMatch=NotOlderThan", "", ``, 422, "Invalid", "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"},
		{"bad dryRun", "POST", "/configmaps?dryRun=Maybe", "application/json", `{"metadata":{"name":"d"}}`, 400, "BadRequest", ""},
		{"bad fieldValidation", "POST", "/configmaps?fieldValidation=Loose", "application/json", `{"metadata":{"name":"f"}}`, 400, "BadRequest", ""},
		{"strict unknown field", "POST", "/configmaps?fieldValidation=Strict", "application/json", `{"metadata":{"name":"s"},"bogus":1}`, 400, "BadRequest", `strict decoding error: unknown field "bogus"`},
		{"post to a name", "POST", "/configmaps/x", "application/json", `{"metadata":{"name":"x"}}`, 405, "MethodNotAllowed", ""},
		{"bad patch type", "PATCH", "/configmaps/target", "application/json", `{}`, 415, "UnsupportedMediaType", ""},
		{"bad json patch", "PATCH", "/configmaps/target", "application/json-patch+json", `{"op":"add"}`, 400, "BadRequest", ""},
		{"bad merge patch", "PATCH", "/configmaps/target", "application/merge-patch+json", `{"data":`, 400, "BadRequest", ""},
		{"patch to wrong type", "PATCH", "/configmaps/target", "application/merge-patch+json", `{"data":{"k":7}}`, 422, "Invalid", ""},
		{"update name mismatch", "PUT", "/configmaps/target", "application/json", `{"metadata":{"name":"other"}}`, 400, "BadRequest", "does not match the name"},
		{"update missing", "PUT", "/configmaps/missing", "application/json", `{"metadata":{"name":"missing"}}`, 404, "NotFound", ""},
		{"update stale", "PUT", "/configmaps/target", "application/json", `{"metadata":{"name":"target","resourceVersion":"1"}}`, 409, "Conflict", "the object has been modified"},
		{"update other uid", "PUT", "/configmaps/target", "application/json", `{"metadata":{"name":"target","uid":"6a1c1bd6-0000-4000-8000-000000000000"}}`, 409, "Conflict", "Precondition failed: UID"},
		{"immutable secret data", "PATCH", "/secrets/frozen", "application/merge-patch+json", `{"data":{"k":"dzI="}}`, 422, "Invalid", "field is immutable when `immutable` is set"},
		{"immutable secret type", "PATCH", "/secrets/frozen", "application/merge-patch+json", `{"type":"kubernetes.io/tls"}`, 422, "Invalid", "type"},
		{"bad delete options", "DELETE", "/configmaps/target", "application/json", `{"propagationPolicy":"Sometimes"}`, 422, "Invalid", ""},
		{"bad grace period", "DELETE", "/configmaps/target?gracePeriodSeconds=soon", "", ``, 400, "BadRequest", ""},
		{"scale negative", "PUT", "/replicationcontrollers/none/scale", "application/json", `{"spec":{"replicas":-1},"metadata":{"name":"none"}}`, 404, "NotFound", ""},
	}
	if code, body := do(t, "POST", ns+"/configmaps", "application/json", []byte(`{"metadata":{"name":"target"},"data":{"k":"v"}}`)); code != 201 {
		t.Fatalf("create target: %d %s", code, body)
	}
	if code, body := do(t, "POST", ns+"/secrets", "application/json", []byte(`{"metadata":{"name":"frozen"},"immutable":true,"data":{"k":"dg=="}}`)); code != 201 {
		t.Fatalf("create frozen: %d %s", code, body)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, tc.method, ns+tc.path, tc.ctype, []byte(tc.body))
			var st status
			if err := json.Unmarshal(body, &st); err != nil || st.Kind != "Status" {
				t.Fatalf("%d: body is not a Status: %.300s", code, body)
			}
			if code != tc.code || st.Code != tc.code || st.Reason != tc.reason {
				t.Fatalf("got %d %s (%s), want %d %s", code, st.Reason, st.Message, tc.code, tc.reason)
			}
			if st.Message == "" || !strings.Contains(st.Message, tc.msg) {
				t.Fatalf("message %q lacks %q", st.Message, tc.msg)
			}
		})
	}
	// Nothing above was stored: only "target" exists, unchanged.
	code, body := do(t, "GET", ns+"/configmaps", "", nil)
	var list struct {
		Items []struct {
			Metadata struct{ Name string } `json:"metadata"`
			Data     map[string]string     `json:"data"`
		} `json:"items"`
	}
	if code != 200 || json.Unmarshal(body, &list) != nil {
		t.Fatalf("list: %d %s", code, body)
	}
	// (kube-root-ca.crt is the root-ca-cert-publisher's, in every namespace.)
	list.Items = slices.DeleteFunc(list.Items, func(i struct {
		Metadata struct{ Name string } `json:"metadata"`
		Data     map[string]string     `json:"data"`
	}) bool {
		return i.Metadata.Name == "kube-root-ca.crt"
	})
	if len(list.Items) != 1 || list.Items[0].Metadata.Name != "target" || list.Items[0].Data["k"] != "v" {
		t.Fatalf("bad input left objects behind or changed target: %s", body)
	}
	// Accept headers the server cannot satisfy are 406.
	code, body = do(t, "GET", ns+"/configmaps/target", "", nil, "Accept", "application/xml")
	if code != 406 || !strings.Contains(string(body), "NotAcceptable") {
		t.Fatalf("Accept: application/xml: got %d %s", code, body)
	}
	code, _ = do(t, "GET", ns+"/configmaps", "", nil, "Accept", "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io")
	if code != 406 {
		t.Fatalf("a protobuf Table is not servable: want 406, got %d", code)
	}
}
