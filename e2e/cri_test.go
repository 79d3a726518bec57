package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgkube/pgkube/agent/containerd"
	"github.com/pgkube/pgkube/internal/pgtest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// criCluster is one `pgkube up` with its real node agent: a private
// containerd runs the pods (containerd's shims and runc state are shared
// by the host, so the test binary starts one such cluster only).
type criCluster struct {
	srv       *pgkube
	clockFile string
	cs        kubernetes.Interface
	k         *kubectl
}

func startCRICluster(t *testing.T) *criCluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the cri agent runs containers: run the e2e tests as root (make test does)")
	}
	for _, bin := range []string{"containerd", "runc", "ctr", "busybox"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is missing: make test installs containerd, runc and busybox-static", bin)
		}
	}
	certs, _ := testCerts(t)
	dir := tempDir(t)
	// The controller manager's clock can be moved (controllers/testclock),
	// so a CronJob runs without waiting for its minute.
	clock := filepath.Join(dir, "clock-offset")
	srv := startUpEnv(t, []string{"PGKUBE_TEST_CLOCK_FILE=" + clock}, dir, freePort(t), pgtest.NewDatabase(t), "--cert-dir", certs)
	t.Cleanup(func() { srv.stop() }) //nolint:errcheck
	c := &criCluster{srv: srv, clockFile: clock, cs: kubernetes.NewForConfigOrDie(restConfig(t, srv, false)),
		k: &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}}
	node := agHostNode(t)
	within(t, 60*time.Second, "the node Ready on containerd", func() error {
		n, err := c.cs.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if !strings.HasPrefix(n.Status.NodeInfo.ContainerRuntimeVersion, "containerd://") {
			return fmt.Errorf("runtime %q", n.Status.NodeInfo.ContainerRuntimeVersion)
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("not ready: %+v", n.Status.Conditions)
	})
	out, err := exec.Command(pgkubeBinary(t), "image", "busybox", "--tag", "busybox:1.36", "--data-dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("pgkube image busybox: %v\n%s", err, out)
	}
	return c
}

// TestCRIRealPods runs real busybox pods through containerd: a Deployment
// of three with their own hostnames, logs -f, exec, port-forward, probes,
// ConfigMap/Secret/downward API data, a Job, a crashing container and an
// image that cannot be pulled.
func TestCRIRealPods(t *testing.T) {
	c := startCRICluster(t)
	ctx := context.Background()
	k := c.k
	k.ok("create", "namespace", "real")

	t.Run("deployment", func(t *testing.T) {
		k.ok("create", "deployment", "web", "-n", "real", "--image=busybox:1.36", "--replicas=3", "--",
			"sh", "-c", "while true; do echo hi; sleep 1; done")
		var pods []corev1.Pod
		within(t, 60*time.Second, "3 pods Running", func() error {
			l, err := c.cs.CoreV1().Pods("real").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil {
				return err
			}
			running := 0
			for _, p := range l.Items {
				if p.Status.Phase == corev1.PodRunning && podReady(&p) {
					running++
				}
			}
			if running != 3 || len(l.Items) != 3 {
				return fmt.Errorf("%d of %d running and ready", running, len(l.Items))
			}
			pods = l.Items
			return nil
		})
		var hostnames []string
		for _, p := range pods {
			st := p.Status.ContainerStatuses[0]
			if !strings.HasPrefix(st.ContainerID, "containerd://") || st.ImageID == "" || p.Status.PodIP == "" || p.Status.QOSClass != corev1.PodQOSBestEffort {
				t.Errorf("pod %s status %+v", p.Name, p.Status)
			}
			h := strings.TrimSpace(k.ok("exec", "-n", "real", p.Name, "--", "cat", "/etc/hostname"))
			if h != p.Name {
				t.Errorf("pod %s has hostname %q", p.Name, h)
			}
			hostnames = append(hostnames, h)
		}
		slices.Sort(hostnames)
		if len(slices.Compact(hostnames)) != 3 {
			t.Errorf("hostnames %v, want three different ones", hostnames)
		}
		// The service account token is mounted and accepted by the API.
		tok := k.ok("exec", "-n", "real", pods[0].Name, "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/token")
		if strings.Count(tok, ".") != 2 {
			t.Errorf("token %q", tok)
		}
		// logs -f streams: two lines arrive while it runs.
		cmd := exec.Command(k.bin, "--kubeconfig", k.kubeconfig, "logs", "-f", "-n", "real", pods[0].Name)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		deadline := time.After(20 * time.Second)
		got := 0
		for got < 4 {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("kubectl logs -f ended after %d lines", got)
				}
				if l != "hi" {
					t.Fatalf("log line %q", l)
				}
				got++
			case <-deadline:
				t.Fatalf("kubectl logs -f: %d lines in 20s", got)
			}
		}
		cmd.Process.Kill() //nolint:errcheck
		cmd.Wait()         //nolint:errcheck
		if tail := k.ok("logs", "-n", "real", pods[1].Name, "--tail=1"); tail != "hi\n" {
			t.Errorf("logs --tail=1: %q", tail)
		}
	})

	t.Run("top", func(t *testing.T) {
		// Usage measured by containerd, through metrics.k8s.io.
		within(t, 60*time.Second, "kubectl top pods", func() error {
			out, err := k.run("", "top", "pods", "-n", "real", "-l", "app=web", "--no-headers")
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 3 {
				return fmt.Errorf("%d rows: %s", len(lines), out)
			}
			for _, l := range lines {
				f := strings.Fields(l)
				if len(f) != 3 || !strings.HasSuffix(f[1], "m") || !strings.HasSuffix(f[2], "Mi") {
					return fmt.Errorf("row %q", l)
				}
			}
			return nil
		})
		// A shell loop uses less than a MiB, which top rounds to 0Mi:
		// the API's figure in bytes says it was measured.
		raw := k.ok("get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/real/pods?labelSelector=app%3Dweb")
		var pm struct {
			Items []struct {
				Containers []struct {
					Usage corev1.ResourceList `json:"usage"`
				} `json:"containers"`
			} `json:"items"`
		}
		if err := json.Unmarshal([]byte(raw), &pm); err != nil || len(pm.Items) != 3 {
			t.Fatalf("pod metrics: %v\n%s", err, raw)
		}
		for _, it := range pm.Items {
			if mem := it.Containers[0].Usage.Memory(); mem.Value() <= 0 {
				t.Errorf("memory usage %v", mem)
			}
		}
		out := k.ok("top", "node")
		contains(t, out, "CPU(cores)", "MEMORY(bytes)", agHostNode(t))
	})

	t.Run("port-forward", func(t *testing.T) {
		// Pods share the host's network for now: the server takes a free
		// port of the host.
		port := strings.TrimPrefix(freePort(t), "127.0.0.1:")
		k.okIn(fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: httpd, namespace: real}
spec:
  containers:
  - name: httpd
    image: busybox:1.36
    command: ["sh", "-c", "mkdir -p /www && echo hello from busybox > /www/index.html && exec httpd -f -p %s -h /www"]
    readinessProbe:
      httpGet: {path: /index.html, port: %s}
      periodSeconds: 1
`, port, port), "apply", "-f", "-")
		k.ok("wait", "--for=condition=Ready", "pod/httpd", "-n", "real", "--timeout=60s")
		local := strings.TrimPrefix(freePort(t), "127.0.0.1:")
		pf := exec.Command(k.bin, "--kubeconfig", k.kubeconfig, "port-forward", "-n", "real", "pod/httpd", local+":"+port)
		pfOut, _ := pf.StdoutPipe()
		if err := pf.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			pf.Process.Kill() //nolint:errcheck
			pf.Wait()         //nolint:errcheck
		}()
		first, _ := bufio.NewReader(pfOut).ReadString('\n')
		if !strings.Contains(first, "Forwarding from") {
			t.Fatalf("port-forward said %q", first)
		}
		resp, err := http.Get("http://127.0.0.1:" + local + "/index.html")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello from busybox\n" {
			t.Fatalf("through port-forward: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("probes", func(t *testing.T) {
		k.okIn(`apiVersion: v1
kind: Service
metadata: {name: probed, namespace: real}
spec:
  selector: {app: probed}
  ports: [{port: 80}]
---
apiVersion: v1
kind: Pod
metadata: {name: probed, namespace: real, labels: {app: probed}}
spec:
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "touch /tmp/alive; while true; do sleep 1; done"]
    readinessProbe:
      exec: {command: ["cat", "/tmp/ready"]}
      periodSeconds: 1
      failureThreshold: 1
    livenessProbe:
      exec: {command: ["cat", "/tmp/alive"]}
      periodSeconds: 1
      failureThreshold: 2
`, "apply", "-f", "-")
		endpoints := func(want string) {
			t.Helper()
			within(t, 30*time.Second, "endpoints "+want, func() error {
				ep, err := c.cs.CoreV1().Endpoints("real").Get(ctx, "probed", metav1.GetOptions{})
				if err != nil {
					return err
				}
				ready, notReady := 0, 0
				for _, s := range ep.Subsets {
					ready += len(s.Addresses)
					notReady += len(s.NotReadyAddresses)
				}
				if got := fmt.Sprintf("ready=%d notReady=%d", ready, notReady); got != want {
					return fmt.Errorf("%s", got)
				}
				return nil
			})
		}
		k.ok("wait", "--for=jsonpath={.status.phase}=Running", "pod/probed", "-n", "real", "--timeout=60s")
		endpoints("ready=0 notReady=1")
		k.ok("exec", "-n", "real", "probed", "--", "touch", "/tmp/ready")
		endpoints("ready=1 notReady=0")
		k.ok("exec", "-n", "real", "probed", "--", "rm", "/tmp/ready")
		endpoints("ready=0 notReady=1")
		k.ok("exec", "-n", "real", "probed", "--", "touch", "/tmp/ready")
		endpoints("ready=1 notReady=0")

		// Liveness fails: the container is killed and started again.
		k.ok("exec", "-n", "real", "probed", "--", "rm", "/tmp/alive")
		within(t, 60*time.Second, "a restart for liveness", func() error {
			p, err := c.cs.CoreV1().Pods("real").Get(ctx, "probed", metav1.GetOptions{})
			if err != nil {
				return err
			}
			st := p.Status.ContainerStatuses[0]
			last := st.LastTerminationState.Terminated
			if st.RestartCount < 1 || last == nil {
				return fmt.Errorf("restartCount %d, last state %+v", st.RestartCount, st.LastTerminationState)
			}
			if last.ExitCode != 137 && last.ExitCode != 143 {
				return fmt.Errorf("last exit code %d, want 128+SIGTERM or 128+SIGKILL", last.ExitCode)
			}
			return nil
		})
		ev := k.ok("get", "events", "-n", "real", "--field-selector", "involvedObject.name=probed")
		contains(t, ev, "Unhealthy", "Liveness probe failed", "Readiness probe failed", "failed liveness probe, will be restarted")
	})

	t.Run("config and downward API", func(t *testing.T) {
		k.ok("create", "configmap", "settings", "-n", "real", "--from-literal=color=blue", "--from-literal=size=large")
		k.ok("create", "secret", "generic", "creds", "-n", "real", "--from-literal=password=s3cret")
		k.okIn(`apiVersion: v1
kind: Pod
metadata: {name: reader, namespace: real, labels: {app: reader, tier: back}}
spec:
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "sleep 3600"]
    env:
    - name: COLOR
      valueFrom: {configMapKeyRef: {name: settings, key: color}}
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: creds, key: password}}
    - name: MY_POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: GREETING
      value: "pod $(MY_POD) likes $(COLOR)"
    envFrom:
    - configMapRef: {name: settings}
      prefix: CFG_
    volumeMounts:
    - {name: settings, mountPath: /etc/settings}
    - {name: creds, mountPath: /etc/creds}
    - {name: info, mountPath: /etc/podinfo}
    - {name: scratch, mountPath: /scratch}
  volumes:
  - name: settings
    configMap: {name: settings}
  - name: creds
    secret: {secretName: creds}
  - name: info
    downwardAPI:
      items:
      - path: labels
        fieldRef: {fieldPath: metadata.labels}
  - name: scratch
    emptyDir: {medium: Memory}
`, "apply", "-f", "-")
		k.ok("wait", "--for=condition=Ready", "pod/reader", "-n", "real", "--timeout=60s")
		env := k.ok("exec", "-n", "real", "reader", "--", "env")
		contains(t, env, "COLOR=blue", "PASSWORD=s3cret", "GREETING=pod reader likes blue", "CFG_size=large", "KUBERNETES_SERVICE_HOST=")
		if got := k.ok("exec", "-n", "real", "reader", "--", "cat", "/etc/settings/color", "/etc/creds/password"); got != "blues3cret" {
			t.Errorf("files: %q", got)
		}
		if got := k.ok("exec", "-n", "real", "reader", "--", "cat", "/etc/podinfo/labels"); got != "app=\"reader\"\ntier=\"back\"" {
			t.Errorf("downward API labels: %q", got)
		}
		if got := k.ok("exec", "-n", "real", "reader", "--", "sh", "-c", "grep ' /scratch ' /proc/mounts | cut -d' ' -f3"); got != "tmpfs\n" {
			t.Errorf("emptyDir medium Memory is on %q", got)
		}
		// A ConfigMap change reaches the mounted file.
		k.ok("patch", "configmap", "settings", "-n", "real", "-p", `{"data":{"color":"green"}}`)
		within(t, 60*time.Second, "the new value in the file", func() error {
			out, err := k.run("", "exec", "-n", "real", "reader", "--", "cat", "/etc/settings/color")
			if err != nil || out != "green" {
				return fmt.Errorf("%q %v", out, err)
			}
			return nil
		})
	})

	t.Run("job, crash loop, missing image", func(t *testing.T) {
		k.ok("create", "job", "once", "-n", "real", "--image=busybox:1.36", "--", "sh", "-c", "echo done; exit 0")
		k.ok("wait", "--for=condition=Complete", "job/once", "-n", "real", "--timeout=60s")
		if out := k.ok("logs", "-n", "real", "job/once"); out != "done\n" {
			t.Errorf("job logs %q", out)
		}
		k.okIn(`apiVersion: v1
kind: Pod
metadata: {name: crasher, namespace: real}
spec:
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "echo crashing; exit 3"]
`, "apply", "-f", "-")
		within(t, 60*time.Second, "CrashLoopBackOff", func() error {
			p, err := c.cs.CoreV1().Pods("real").Get(ctx, "crasher", metav1.GetOptions{})
			if err != nil {
				return err
			}
			st := p.Status.ContainerStatuses
			if len(st) != 1 || st[0].State.Waiting == nil || st[0].State.Waiting.Reason != "CrashLoopBackOff" ||
				st[0].LastTerminationState.Terminated == nil || st[0].LastTerminationState.Terminated.ExitCode != 3 || st[0].RestartCount < 1 {
				return fmt.Errorf("statuses %+v", st)
			}
			return nil
		})
		if out := k.ok("logs", "-n", "real", "crasher", "--previous"); out != "crashing\n" {
			t.Errorf("logs --previous %q", out)
		}
		k.ok("run", "nothere", "-n", "real", "--image=registry.invalid/nothere:1")
		within(t, 60*time.Second, "ErrImagePull", func() error {
			p, err := c.cs.CoreV1().Pods("real").Get(ctx, "nothere", metav1.GetOptions{})
			if err != nil {
				return err
			}
			st := p.Status.ContainerStatuses
			if len(st) != 1 || st[0].State.Waiting == nil || (st[0].State.Waiting.Reason != "ErrImagePull" && st[0].State.Waiting.Reason != "ImagePullBackOff") {
				return fmt.Errorf("statuses %+v", st)
			}
			return nil
		})
	})

	t.Run("cronjob", func(t *testing.T) {
		k.ok("create", "cronjob", "tick", "-n", "real", "--image=busybox:1.36", "--schedule=*/1 * * * *", "--", "sh", "-c", "echo tick")
		// Two minutes on, by the manager's clock: a start is due.
		if err := os.WriteFile(c.clockFile+".tmp", []byte("2m"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(c.clockFile+".tmp", c.clockFile); err != nil {
			t.Fatal(err)
		}
		var job string
		within(t, 60*time.Second, "a completed Job of the CronJob", func() error {
			l, err := c.cs.BatchV1().Jobs("real").List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, j := range l.Items {
				if ref := metav1.GetControllerOf(&j); ref != nil && ref.Kind == "CronJob" && j.Status.Succeeded == 1 {
					job = j.Name
					return nil
				}
			}
			return fmt.Errorf("%d jobs, none completed by the CronJob", len(l.Items))
		})
		if out := k.ok("logs", "-n", "real", "job/"+job); out != "tick\n" {
			t.Errorf("the CronJob's pod said %q", out)
		}
		k.ok("delete", "cronjob", "tick", "-n", "real")
	})

	t.Run("graceful deletion", func(t *testing.T) {
		// SIGTERM first: a shell that traps it exits 0 at once.
		k.okIn(`apiVersion: v1
kind: Pod
metadata: {name: polite, namespace: real}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
`, "apply", "-f", "-")
		k.ok("wait", "--for=condition=Ready", "pod/polite", "-n", "real", "--timeout=60s")
		start := time.Now()
		k.ok("delete", "pod", "polite", "-n", "real", "--timeout=30s")
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("deleting a pod that stops on SIGTERM took %s", took)
		}
	})

	t.Run("init containers, security context, OOM", func(t *testing.T) {
		k.okIn(`apiVersion: v1
kind: Pod
metadata: {name: guarded, namespace: real}
spec:
  restartPolicy: Never
  securityContext: {runAsUser: 1000, runAsGroup: 3000}
  initContainers:
  - name: prepare
    image: busybox:1.36
    command: ["sh", "-c", "echo prepared by $(id -u) > /work/note"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "cat /work/note; id -u; id -g; touch /not-here 2>/dev/null && echo writable || echo read-only"]
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}
    volumeMounts: [{name: work, mountPath: /work}]
  volumes:
  - name: work
    emptyDir: {}
`, "apply", "-f", "-")
		k.ok("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/guarded", "-n", "real", "--timeout=60s")
		if out := k.ok("logs", "-n", "real", "guarded", "-c", "main"); out != "prepared by 1000\n1000\n3000\nread-only\n" {
			t.Errorf("guarded pod said %q", out)
		}
		p, err := c.cs.CoreV1().Pods("real").Get(ctx, "guarded", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st := p.Status.InitContainerStatuses; len(st) != 1 || st[0].State.Terminated == nil || st[0].State.Terminated.Reason != "Completed" {
			t.Errorf("init container status %+v", st)
		}
		// Memory over the limit: the kernel kills the container.
		k.okIn(`apiVersion: v1
kind: Pod
metadata: {name: hungry, namespace: real}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1.36
    command: ["sh", "-c", "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"]
    resources: {limits: {memory: 32Mi}}
`, "apply", "-f", "-")
		k.ok("wait", "--for=jsonpath={.status.phase}=Failed", "pod/hungry", "-n", "real", "--timeout=60s")
		p, err = c.cs.CoreV1().Pods("real").Get(ctx, "hungry", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if st := p.Status.ContainerStatuses; len(st) != 1 || st[0].State.Terminated == nil || st[0].State.Terminated.Reason != "OOMKilled" || st[0].State.Terminated.ExitCode != 137 {
			t.Errorf("hungry container status %+v", st)
		}
		if p.Status.QOSClass != corev1.PodQOSBurstable {
			t.Errorf("QoS %s", p.Status.QOSClass)
		}
	})

	t.Run("every kubectl", func(t *testing.T) {
		// exec, logs and port-forward with kubectl 1.27 to 1.33: SPDY
		// for the older ones, WebSocket first for the newer.
		pods, err := c.cs.CoreV1().Pods("real").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("web pods: %v", err)
		}
		pod := pods.Items[0].Name
		for v, bin := range kubectls(t) {
			kv := &kubectl{t: t, bin: bin, kubeconfig: k.kubeconfig, cacheDir: t.TempDir()}
			if out, err := kv.run("", "exec", "-n", "real", pod, "--", "cat", "/etc/hostname"); err != nil || out != pod+"\n" {
				t.Errorf("kubectl %s exec: %q %v", v, out, err)
			}
			if out, err := kv.run("from stdin\n", "exec", "-i", "-n", "real", pod, "--", "cat"); err != nil || out != "from stdin\n" {
				t.Errorf("kubectl %s exec -i: %q %v", v, out, err)
			}
			if out, err := kv.run("", "logs", "-n", "real", pod, "--tail=1"); err != nil || out != "hi\n" {
				t.Errorf("kubectl %s logs: %q %v", v, out, err)
			}
			if out, err := kv.run("", "exec", "-n", "real", pod, "--", "sh", "-c", "exit 7"); err == nil || !strings.Contains(out, "exit code 7") {
				t.Errorf("kubectl %s exec of a failing command: %q %v", v, out, err)
			}
		}
	})

	t.Run("image import", func(t *testing.T) {
		// A docker archive, as `docker save` writes one, loaded with
		// pgkube image import.
		archive := filepath.Join(t.TempDir(), "tools.tar")
		f, err := os.Create(archive)
		if err != nil {
			t.Fatal(err)
		}
		if err := containerd.BusyboxArchive(f, "example.local/tools:2", []string{"sh", "-c", "echo from the imported image"}); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if out, err := exec.Command(pgkubeBinary(t), "image", "import", archive, "--data-dir", c.srv.dataDir).CombinedOutput(); err != nil {
			t.Fatalf("pgkube image import: %v\n%s", err, out)
		}
		k.ok("run", "imported", "-n", "real", "--image=example.local/tools:2", "--restart=Never")
		k.ok("wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/imported", "-n", "real", "--timeout=60s")
		if out := k.ok("logs", "-n", "real", "imported"); out != "from the imported image\n" {
			t.Errorf("imported image's pod said %q", out)
		}
	})

	t.Run("statefulset keeps its data", func(t *testing.T) {
		k.okIn(`apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local-host}
provisioner: pgkube.io/hostpath
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: real}
spec: {clusterIP: None, selector: {app: db}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: real}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: main
        image: busybox:1.36
        command: ["sh", "-c", "[ -f /data/born ] || cat /etc/hostname > /data/born; exec sleep 3600"]
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: local-host
      resources: {requests: {storage: 10Mi}}
`, "apply", "-f", "-")
		k.ok("rollout", "status", "statefulset/db", "-n", "real", "--timeout=120s")
		for i := range 3 {
			pvc, err := c.cs.CoreV1().PersistentVolumeClaims("real").Get(ctx, fmt.Sprintf("data-db-%d", i), metav1.GetOptions{})
			if err != nil || pvc.Status.Phase != corev1.ClaimBound {
				t.Fatalf("claim data-db-%d: %v %+v", i, err, pvc.Status)
			}
		}
		k.ok("exec", "-n", "real", "db-1", "--", "sh", "-c", "echo kept > /data/note")
		old, _ := c.cs.CoreV1().Pods("real").Get(ctx, "db-1", metav1.GetOptions{})
		k.ok("delete", "pod", "db-1", "-n", "real")
		within(t, 90*time.Second, "db-1 back", func() error {
			p, err := c.cs.CoreV1().Pods("real").Get(ctx, "db-1", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if p.UID == old.UID || !podReady(p) {
				return fmt.Errorf("not the new pod running yet")
			}
			return nil
		})
		if got := k.ok("exec", "-n", "real", "db-1", "--", "cat", "/data/note", "/data/born"); got != "kept\ndb-1\n" {
			t.Errorf("data after the pod's replacement: %q", got)
		}
	})

	t.Run("daemonset over simulated nodes", func(t *testing.T) {
		// Three more nodes from a simulated agent join the real one.
		sim := exec.Command(pgkubeBinary(t), "agent", "--kubeconfig", c.srv.kubeconfig, "--runtime", "simulated",
			"--node-name", "sim", "--nodes", "3", "--node-labels", "pool=sim")
		if err := sim.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			sim.Process.Signal(os.Interrupt) //nolint:errcheck
			sim.Wait()                       //nolint:errcheck
			for i := range 3 {
				c.cs.CoreV1().Nodes().Delete(ctx, fmt.Sprintf("sim-%d", i), metav1.DeleteOptions{}) //nolint:errcheck
			}
		}()
		k.okIn(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: everywhere, namespace: real}
spec:
  selector: {matchLabels: {app: everywhere}}
  template:
    metadata: {labels: {app: everywhere}}
    spec:
      nodeSelector: {pool: sim}
      containers:
      - {name: main, image: busybox:1.36, command: ["sleep", "3600"]}
`, "apply", "-f", "-")
		within(t, 60*time.Second, "one pod on each simulated node", func() error {
			l, err := c.cs.CoreV1().Pods("real").List(ctx, metav1.ListOptions{LabelSelector: "app=everywhere"})
			if err != nil {
				return err
			}
			var nodes []string
			for _, p := range l.Items {
				if p.Status.Phase == corev1.PodRunning {
					nodes = append(nodes, p.Spec.NodeName)
				}
			}
			slices.Sort(nodes)
			if strings.Join(nodes, ",") != "sim-0,sim-1,sim-2" {
				return fmt.Errorf("running on %v", nodes)
			}
			return nil
		})
		// Its pods go while their nodes' agent still runs to end them.
		k.ok("delete", "daemonset", "everywhere", "-n", "real", "--cascade=foreground")
		within(t, 60*time.Second, "the DaemonSet's pods gone", func() error {
			l, err := c.cs.CoreV1().Pods("real").List(ctx, metav1.ListOptions{LabelSelector: "app=everywhere"})
			if err != nil {
				return err
			}
			if len(l.Items) != 0 {
				return fmt.Errorf("%d pods left", len(l.Items))
			}
			return nil
		})
	})

	// Pods' files go with them.
	agentDir := filepath.Join(c.srv.dataDir, "agent", "pods")
	k.ok("delete", "namespace", "real", "--timeout=120s")
	within(t, 60*time.Second, "pod directories removed", func() error {
		left, _ := os.ReadDir(agentDir)
		if len(left) != 0 {
			return fmt.Errorf("%d left", len(left))
		}
		return nil
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestCRIWithoutContainerd: on a machine without containerd the API still
// serves, and the node is NotReady saying what to install.
func TestCRIWithoutContainerd(t *testing.T) {
	certs, _ := testCerts(t)
	// An empty PATH hides containerd (the embedded PostgreSQL is found
	// under /usr/lib/postgresql, and children run pgkube's own binary).
	srv := startUpEnv(t, []string{"PATH=" + t.TempDir()}, tempDir(t), freePort(t), pgtest.NewDatabase(t), "--cert-dir", certs, "--scheduler=false")
	defer srv.stop() //nolint:errcheck
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	node := agHostNode(t)
	within(t, 60*time.Second, "a NotReady node saying why", func() error {
		n, err := cs.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status != corev1.ConditionFalse || !strings.Contains(c.Message, "containerd is not installed") ||
					!strings.Contains(c.Message, "apt-get install containerd runc") || !strings.Contains(c.Message, "--container-runtime-endpoint") {
					return fmt.Errorf("Ready %s: %s", c.Status, c.Message)
				}
				return nil
			}
		}
		return fmt.Errorf("no Ready condition")
	})
	if _, err := cs.CoreV1().ConfigMaps("default").Create(context.Background(),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "still-serving"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("the API does not serve without containerd: %v", err)
	}
}
