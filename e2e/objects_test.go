package e2e

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestMinimalPodYAML: a minimal pod comes back from `kubectl get -o yaml`
// exactly as kube-apiserver returns it: defaults, admission's additions
// (service account token volume, priority, tolerations) and status.
func TestMinimalPodYAML(t *testing.T) {
	srv := sharedServer(t)
	k := &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}
	k.ok("create", "ns", "pod-yaml")
	k.okIn("apiVersion: v1\nkind: Pod\nmetadata: {name: minimal}\nspec:\n  containers: [{name: c, image: busybox}]\n", "apply", "-n", "pod-yaml", "-f", "-")
	got := k.ok("get", "pod", "minimal", "-n", "pod-yaml", "-o", "yaml")
	// kubectl apply leaves its annotation; the comparison is about what the
	// server adds.
	got = regexp.MustCompile(`(?s)  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: \|\n      [^\n]*\n`).ReplaceAllString(got, "")
	for re, repl := range map[string]string{
		`creationTimestamp: "[^"]*"`:  "creationTimestamp: TIMESTAMP",
		`resourceVersion: "[^"]*"`:    "resourceVersion: RV",
		`uid: [0-9a-f-]{36}`:          "uid: UID",
		`kube-api-access-[a-z0-9]{5}`: "kube-api-access-XXXXX",
	} {
		got = regexp.MustCompile(re).ReplaceAllString(got, repl)
	}
	raw, err := os.ReadFile("testdata/minimal-pod.expected.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(l, "#") {
			want = append(want, l)
		}
	}
	if w := strings.TrimSpace(strings.Join(want, "\n")); strings.TrimSpace(got) != w {
		t.Errorf("pod YAML differs from kube-apiserver's.\ngot:\n%s\nwant:\n%s", got, w)
	}
}
