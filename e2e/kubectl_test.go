package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// kubectls finds the stock kubectl on PATH and the versioned kubectl.1.NN
// binaries shipped beside the file its symlink resolves to.
func kubectls(t *testing.T) map[string]string {
	path, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl is not on PATH: the e2e tests need stock kubectl (%v)", err)
	}
	out := map[string]string{"default": path}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(real), "kubectl.1.*"))
	for _, m := range matches {
		out[strings.TrimPrefix(filepath.Base(m), "kubectl.")] = m
	}
	return out
}

// kubectl runs one kubectl binary against a server.
type kubectl struct {
	t          *testing.T
	bin        string
	kubeconfig string
	cacheDir   string
}

func (k *kubectl) run(stdin string, args ...string) (string, error) {
	k.t.Helper()
	args = append([]string{"--kubeconfig", k.kubeconfig, "--cache-dir", k.cacheDir}, args...)
	cmd := exec.Command(k.bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.kubeconfig)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ok runs kubectl and fails the test if it fails.
func (k *kubectl) ok(args ...string) string {
	k.t.Helper()
	out, err := k.run("", args...)
	if err != nil {
		k.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (k *kubectl) okIn(stdin string, args ...string) string {
	k.t.Helper()
	out, err := k.run(stdin, args...)
	if err != nil {
		k.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// failsIn runs kubectl with stdin, expects it to fail, and returns its
// output.
func (k *kubectl) failsIn(stdin string, args ...string) string {
	k.t.Helper()
	out, err := k.run(stdin, args...)
	if err == nil {
		k.t.Fatalf("kubectl %s succeeded, expected an error:\n%s", strings.Join(args, " "), out)
	}
	return out
}

// fails runs kubectl, expects it to fail, and returns its output.
func (k *kubectl) fails(args ...string) string {
	k.t.Helper()
	out, err := k.run("", args...)
	if err == nil {
		k.t.Fatalf("kubectl %s succeeded, expected an error:\n%s", strings.Join(args, " "), out)
	}
	return out
}

func contains(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Fatalf("output lacks %q:\n%s", w, out)
		}
	}
}

var spaces = regexp.MustCompile(`\s+`)

// header returns the first line of a table with single spaces.
func header(out string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	return spaces.ReplaceAllString(strings.TrimSpace(line), " ")
}

func appYAML(ns string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: %[1]s
  labels: {app: web, tier: config}
data:
  color: blue
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: %[1]s
type: Opaque
stringData:
  password: hunter2
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: %[1]s
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox:1.36
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: %[1]s
  labels: {app: web}
spec:
  selector: {app: web}
  ports:
  - name: http
    port: 80
    targetPort: 8080
`, ns)
}

// forEachKubectl runs session as a parallel subtest for every shipped
// kubectl version, all against the shared server.
func forEachKubectl(t *testing.T, session func(t *testing.T, k *kubectl, version string)) {
	srv := sharedServer(t)
	versions := kubectls(t)
	names := make([]string, 0, len(versions))
	for v := range versions {
		names = append(names, v)
	}
	sort.Strings(names)
	if len(names) < 2 {
		t.Fatalf("expected the versioned kubectl.1.27 … kubectl.1.33 beside kubectl, found only %v", names)
	}
	for _, v := range names {
		bin := versions[v]
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			session(t, &kubectl{t: t, bin: bin, kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}, strings.ReplaceAll(v, ".", "-"))
		})
	}
}

// TestKubectlMatrix runs the same session with every shipped kubectl.
func TestKubectlMatrix(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, k *kubectl, version string) {
		kubectlSession(t, k, "e2e-"+version)
	})
}

func kubectlSession(t *testing.T, k *kubectl, ns string) {
	// Discovery.
	out := k.ok("api-resources")
	contains(t, out, "deployments", "deploy", "apps/v1", "Deployment", "configmaps", "cm", "horizontalpodautoscalers", "hpa",
		"customresourcedefinitions", "crd,crds")
	out = k.ok("api-resources", "--namespaced=false", "-o", "name")
	contains(t, out, "namespaces", "nodes", "clusterroles.rbac.authorization.k8s.io")

	// Namespaces.
	other := ns + "-other"
	contains(t, k.ok("create", "ns", other), "namespace/"+other+" created")
	contains(t, k.fails("create", "ns", other), `Error from server (AlreadyExists): namespaces "`+other+`" already exists`)

	// A multi-document apply, twice: the second changes nothing.
	app := appYAML(ns)
	out = k.okIn(app, "apply", "-f", "-")
	contains(t, out, "namespace/"+ns+" created", "configmap/settings created", "secret/creds created",
		"deployment.apps/web created", "service/web created")
	out = k.okIn(app, "apply", "-f", "-")
	contains(t, out, "configmap/settings unchanged", "deployment.apps/web unchanged", "service/web unchanged")

	// get: table, wide, yaml, json, selectors, all namespaces, chunks.
	out = k.ok("get", "deploy", "-n", ns)
	if h := header(out); h != "NAME READY UP-TO-DATE AVAILABLE AGE" {
		t.Fatalf("deployment table header %q:\n%s", h, out)
	}
	contains(t, out, "web", "0/2")
	out = k.ok("get", "deploy", "-n", ns, "-o", "wide")
	if h := header(out); h != "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR" {
		t.Fatalf("wide header %q", h)
	}
	contains(t, out, "busybox:1.36", "app=web")
	out = k.ok("get", "svc", "web", "-n", ns)
	if h := header(out); h != "NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE" {
		t.Fatalf("service header %q", h)
	}
	contains(t, out, "ClusterIP", "80/TCP", "<none>")
	if !regexp.MustCompile(`10\.\d+\.\d+\.\d+`).MatchString(out) {
		t.Fatalf("service has no ClusterIP from 10.96.0.0/12:\n%s", out)
	}
	out = k.ok("get", "cm", "settings", "-n", ns, "-o", "yaml")
	contains(t, out, "kind: ConfigMap", "color: blue", "resourceVersion:", "uid:", "creationTimestamp:")
	var sec struct {
		Data       map[string]string `json:"data"`
		StringData map[string]string `json:"stringData"`
	}
	if err := json.Unmarshal([]byte(k.ok("get", "secret", "creds", "-n", ns, "-o", "json")), &sec); err != nil {
		t.Fatal(err)
	}
	if sec.Data["password"] != "aHVudGVyMg==" || sec.StringData != nil {
		t.Fatalf("secret stringData was not folded into data: %+v", sec)
	}
	out = k.ok("get", "cm,deploy,svc", "-n", ns, "-l", "app=web", "-o", "name")
	contains(t, out, "configmap/settings", "deployment.apps/web", "service/web")
	if strings.Contains(k.ok("get", "cm", "-n", ns, "-l", "app!=web", "-o", "name"), "settings") {
		t.Fatal("label selector app!=web matched settings")
	}
	out = k.ok("get", "cm", "-A", "--field-selector", "metadata.namespace="+ns+",metadata.name=settings")
	if h := header(out); h != "NAMESPACE NAME DATA AGE" {
		t.Fatalf("-A header %q", h)
	}
	contains(t, out, ns, "settings")
	contains(t, k.fails("get", "pods", "-n", ns, "--field-selector", "spec.bogus=x"), "field label not supported: spec.bogus")
	for i := 0; i < 3; i++ {
		k.ok("create", "cm", fmt.Sprintf("chunk-%d", i), "-n", ns, "--from-literal=i="+fmt.Sprint(i))
	}
	out = k.ok("get", "cm", "-n", ns, "--chunk-size=1", "-o", "name")
	for _, want := range []string{"chunk-0", "chunk-1", "chunk-2", "settings"} {
		if strings.Count(out, "configmap/"+want+"\n") != 1 {
			t.Fatalf("chunked list should show %s exactly once:\n%s", want, out)
		}
	}

	// describe.
	out = k.ok("describe", "deploy", "web", "-n", ns)
	contains(t, out, "Name:", "web", "Namespace:", ns, "Selector:", "app=web", "busybox:1.36")
	contains(t, k.ok("describe", "cm", "settings", "-n", ns), "color", "blue")

	// label, annotate.
	contains(t, k.ok("label", "cm", "settings", "-n", ns, "team=blue"), "configmap/settings labeled")
	contains(t, k.ok("get", "cm", "-n", ns, "-l", "team=blue", "-o", "name"), "configmap/settings")
	contains(t, k.ok("annotate", "cm", "settings", "-n", ns, "owner=ops"), "configmap/settings annotate") // 1.27 says "annotate"
	contains(t, k.ok("get", "cm", "settings", "-n", ns, "-o", "jsonpath={.metadata.annotations.owner}"), "ops")

	// patch, all three types.
	contains(t, k.ok("patch", "cm", "settings", "-n", ns, "-p", `{"data":{"size":"L"}}`), "configmap/settings patched")
	k.ok("patch", "cm", "settings", "-n", ns, "--type=merge", "-p", `{"data":{"shape":"round"}}`)
	k.ok("patch", "cm", "settings", "-n", ns, "--type=json", "-p", `[{"op":"remove","path":"/data/size"}]`)
	out = k.ok("get", "cm", "settings", "-n", ns, "-o", "jsonpath={.data}")
	contains(t, out, `"shape":"round"`, `"color":"blue"`)
	if strings.Contains(out, "size") {
		t.Fatalf("json patch remove did not apply: %s", out)
	}
	k.ok("patch", "deploy", "web", "-n", ns, "-p", `{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"busybox:1.37"}]}}}}`)
	contains(t, k.ok("get", "deploy", "web", "-n", ns, "-o", "jsonpath={.spec.template.spec.containers[0].image} {.metadata.generation}"),
		"busybox:1.37 2")
	contains(t, k.fails("patch", "cm", "settings", "-n", ns, "--type=json", "-p", `[{"op":"replace","path":"/data/nope/x","value":"v"}]`),
		"The request is invalid")

	// scale.
	contains(t, k.ok("scale", "deploy", "web", "-n", ns, "--replicas=3"), "deployment.apps/web scaled")
	contains(t, k.ok("get", "deploy", "web", "-n", ns, "-o", "jsonpath={.spec.replicas}"), "3")

	// Server-side apply: a second field manager conflicts, --force-conflicts
	// takes the field over; kubectl diff (a dry-run patch) stores nothing.
	ssa := func(value string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\n  namespace: " + ns + "\ndata:\n  a: \"" + value + "\"\n  b: \"2\"\n"
	}
	contains(t, k.okIn(ssa("1"), "apply", "--server-side", "-f", "-"), "configmap/ssa serverside-applied")
	out, err := k.run(ssa("9"), "apply", "--server-side", "--field-manager=other", "-f", "-")
	if err == nil {
		t.Fatalf("a conflicting server-side apply succeeded:\n%s", out)
	}
	contains(t, out, "Apply failed with 1 conflict", `conflict with "kubectl"`, ".data.a")
	contains(t, k.okIn(ssa("9"), "apply", "--server-side", "--field-manager=other", "--force-conflicts", "-f", "-"), "serverside-applied")
	contains(t, k.ok("get", "cm", "ssa", "-n", ns, "-o", "jsonpath={.data.a} {.metadata.managedFields[*].manager}"), "9 kubectl other")
	out, err = k.run(ssa("5"), "diff", "-f", "-")
	if err == nil {
		t.Fatalf("kubectl diff found no change:\n%s", out)
	}
	contains(t, out, `-  a: "9"`, `+  a: "5"`)
	contains(t, k.ok("get", "cm", "ssa", "-n", ns, "-o", "jsonpath={.data.a}"), "9")
	k.okIn(ssa("9"), "delete", "-f", "-")

	// kubectl explain reads the OpenAPI v3 documents (v2 for old
	// versions): built-in kinds and a CRD's schema.
	contains(t, k.ok("explain", "pods.spec.containers.livenessProbe"), "KIND:", "Pod", "FIELD:", "livenessProbe", "httpGet", "initialDelaySeconds")
	contains(t, k.ok("explain", "deployments", "--recursive"), "revisionHistoryLimit", "maxSurge", "terminationGracePeriodSeconds")
	group := ns + ".example.com"
	k.okIn(widgetCRD(group), "apply", "-f", "-")
	eventually(t, "CRD explained", func() error {
		out, err := k.run("", "explain", "widgets.spec", "--api-version="+group+"/v1", "--recursive")
		if err != nil || !strings.Contains(out, "replicas") || !strings.Contains(out, "size") {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	k.ok("delete", "crd", "widgets."+group)

	// Errors as kube-apiserver words them.
	contains(t, k.fails("get", "cm", "nope", "-n", ns), `Error from server (NotFound): configmaps "nope" not found`)
	contains(t, k.fails("create", "cm", "settings", "-n", ns), `configmaps "settings" already exists`)
	contains(t, k.fails("create", "cm", "x", "-n", "no-such-ns"), `namespaces "no-such-ns" not found`)
	stale := k.ok("get", "cm", "settings", "-n", ns, "-o", "json")
	k.ok("label", "cm", "settings", "-n", ns, "bump=1")
	out, err = k.run(stale, "replace", "-f", "-")
	if err == nil {
		t.Fatalf("replace with a stale resourceVersion succeeded:\n%s", out)
	}
	contains(t, out, "Error from server (Conflict)", "the object has been modified; please apply your changes to the latest version and try again")

	// delete: by name, by label, everything.
	contains(t, k.ok("delete", "cm", "chunk-0", "-n", ns), `configmap "chunk-0" deleted`)
	contains(t, k.fails("get", "cm", "chunk-0", "-n", ns), "NotFound")
	k.ok("label", "cm", "chunk-1", "-n", ns, "doomed=yes")
	contains(t, k.ok("delete", "cm", "-n", ns, "-l", "doomed=yes"), `configmap "chunk-1" deleted`)
	out = k.ok("delete", "cm,deploy,svc,secret", "--all", "-n", ns)
	contains(t, out, `configmap "settings" deleted`, `deployment.apps "web" deleted`, `service "web" deleted`, `secret "creds" deleted`)
	// (kube-root-ca.crt comes back: the root-ca-cert-publisher keeps it in
	// every namespace, as upstream's.)
	if out := k.ok("get", "cm,deploy,svc,secret", "-n", ns, "-o", "name"); strings.TrimSpace(strings.ReplaceAll(out, "configmap/kube-root-ca.crt", "")) != "" {
		t.Fatalf("objects left after delete --all:\n%s", out)
	}
	// A deleted namespace stays Terminating while content held by a
	// finalizer remains, and goes once the finalizer does.
	k.okIn("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [e2e.pgkube.io/hold]}\n", "apply", "-n", other, "-f", "-")
	contains(t, k.ok("delete", "ns", other, "--wait=false"), `namespace "`+other+`" deleted`)
	contains(t, k.ok("get", "ns", other), "Terminating")
	k.ok("patch", "cm", "held", "-n", other, "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
	k.ok("wait", "--for=delete", "ns/"+other, "--timeout=30s")
}
