package server

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPodContainer(t *testing.T) {
	two := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}, {Name: "b"}}}}
	if _, err := podContainer(two, ""); err == nil || err.Error() != "a container name must be specified for pod web-1, choose one of: [a b]" {
		t.Errorf("unnamed: %v", err)
	}
	if _, err := podContainer(two, "x"); !apierrors.IsBadRequest(err) || err.Error() != "container x is not valid for pod web-1" {
		t.Errorf("unknown: %v", err)
	}
	if c, err := podContainer(two, "b"); err != nil || c != "b" {
		t.Errorf("named: %q %v", c, err)
	}
	one := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "only"}}}}
	if c, err := podContainer(one, ""); err != nil || c != "only" {
		t.Errorf("the only one: %q %v", c, err)
	}
}

func TestPodLogOptions(t *testing.T) {
	for q, want := range map[string]string{
		"tailLines=-1":   "tailLines: Invalid value: -1: must be greater than or equal to 0",
		"limitBytes=0":   "limitBytes: Invalid value: 0: must be greater than 0",
		"sinceSeconds=0": "sinceSeconds: Invalid value: 0: must be greater than 0",
		"sinceSeconds=5&sinceTime=2026-01-02T03:04:05Z": "at most one of `sinceTime` or `sinceSeconds` may be specified",
		"tailLines=x":               `parsing "x": invalid syntax`,
		"sinceTime=yesterday":       `cannot parse "yesterday"`,
		"stream=Stdout&tailLines=1": "`tailLines` and specific `stream` are mutually exclusive for now",
	} {
		v, _ := url.ParseQuery(q)
		_, err := podLogOptions(v, "web-1")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", q, err, want)
		}
	}
	v, _ := url.ParseQuery("container=a&follow=true&previous=1&timestamps=false&tailLines=3&limitBytes=10&sinceSeconds=60")
	o, err := podLogOptions(v, "web-1")
	if err != nil || o.Container != "a" || !o.Follow || !o.Previous || o.Timestamps || *o.TailLines != 3 || *o.LimitBytes != 10 || *o.SinceSeconds != 60 {
		t.Errorf("options: %+v %v", o, err)
	}
}

func TestParseProxyPath(t *testing.T) {
	r := httptest.NewRequest("GET", "/api/v1/nodes/n1/proxy/containerLogs/ns/p/c?watch=true", nil)
	ri, ok := parseResourcePath("", "v1", []string{"nodes", "n1", "proxy", "containerLogs", "ns", "p", "c"}, r)
	if !ok || ri.Resource != "nodes" || ri.Name != "n1" || ri.Subresource != "proxy" || ri.Path != "containerLogs/ns/p/c" || ri.Verb != "get" {
		t.Errorf("%+v %v", ri, ok)
	}
	if _, ok := parseResourcePath("", "v1", []string{"pods", "p", "log", "x"}, r); ok {
		t.Error("a path below a subresource other than proxy was accepted")
	}
}
