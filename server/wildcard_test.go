package server

import (
	"encoding/json"
	"maps"
	"testing"
)

// The wildcard view's mark goes into metadata.annotations, next to what is
// there, whatever the order of keys, and nowhere else (a pod template's
// metadata is left alone).
func TestMarkClusterJSON(t *testing.T) {
	cases := []struct {
		name, in string
		want     map[string]string
	}{
		{"no annotations", `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"n"},"spec":{}}`,
			map[string]string{ClusterAnnotation: "acme"}},
		{"annotations", `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","annotations":{"a":"b"}}}`,
			map[string]string{"a": "b", ClusterAnnotation: "acme"}},
		{"empty annotations", `{"metadata":{"annotations":{}}}`, map[string]string{ClusterAnnotation: "acme"}},
		{"empty metadata", `{"metadata":{}}`, map[string]string{ClusterAnnotation: "acme"}},
		{"metadata last, nested metadata first",
			`{"apiVersion":"apps/v1","spec":{"template":{"metadata":{"annotations":{"x":"y"}}}},"metadata":{"name":"d","labels":{"l":"v"}}}`,
			map[string]string{ClusterAnnotation: "acme"}},
	}
	for _, c := range cases {
		out, ok := markClusterJSON([]byte(c.in), "acme")
		if !ok {
			t.Errorf("%s: not marked", c.name)
			continue
		}
		var obj struct {
			Metadata struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"metadata"`
			Spec struct {
				Template struct {
					Metadata struct {
						Annotations map[string]string `json:"annotations"`
					} `json:"metadata"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(out, &obj); err != nil {
			t.Errorf("%s: %s is not JSON: %v", c.name, out, err)
			continue
		}
		if !maps.Equal(obj.Metadata.Annotations, c.want) {
			t.Errorf("%s: annotations %v, want %v (%s)", c.name, obj.Metadata.Annotations, c.want, out)
		}
		if a := obj.Spec.Template.Metadata.Annotations; a != nil && a[ClusterAnnotation] != "" {
			t.Errorf("%s: the template was marked: %s", c.name, out)
		}
	}
	for _, bad := range []string{`[]`, `{"metadata":[]}`, `{"metadata":{"annotations":null}}`, `not json`} {
		if _, ok := markClusterJSON([]byte(bad), "acme"); ok {
			t.Errorf("%s: marked, want a fallback", bad)
		}
	}
}
