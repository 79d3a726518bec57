package e2e

import (
	"bufio"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// watchingKubectl is a `kubectl get -w` running in the background, its
// output lines arriving on a channel.
type watchingKubectl struct {
	cmd   *exec.Cmd
	lines chan string
}

func (k *kubectl) watch(args ...string) *watchingKubectl {
	k.t.Helper()
	cmd := exec.Command(k.bin, append([]string{"--kubeconfig", k.kubeconfig, "--cache-dir", k.cacheDir}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		k.t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		k.t.Fatal(err)
	}
	w := &watchingKubectl{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			w.lines <- spaces.ReplaceAllString(strings.TrimSpace(sc.Text()), " ")
		}
		close(w.lines)
	}()
	k.t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck
		cmd.Wait()         //nolint:errcheck
	})
	return w
}

// expect waits for a line starting with prefix, failing on anything else
// that is not in allowed, or after 15 seconds.
func (w *watchingKubectl) expect(t *testing.T, prefix string) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				t.Fatalf("kubectl -w ended before %q", prefix)
			}
			if strings.HasPrefix(line, prefix) {
				return
			}
			// kube-root-ca.crt is the root-ca-cert-publisher's, in every
			// namespace: part of the current state of any ConfigMap watch.
			if !strings.HasPrefix(line, "EVENT ") && !strings.Contains(line, "kube-root-ca.crt") {
				t.Fatalf("kubectl -w printed %q while waiting for %q", line, prefix)
			}
		case <-timeout:
			t.Fatalf("kubectl -w did not print %q within 15s", prefix)
		}
	}
}

// quiet asserts kubectl -w prints nothing for a moment.
func (w *watchingKubectl) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case line := <-w.lines:
		t.Fatalf("kubectl -w printed %q, expected nothing", line)
	case <-time.After(d):
	}
}

// TestKubectlWatch runs `kubectl get -w` and `--watch-only` with every
// shipped kubectl: each change shows up as it happens.
func TestKubectlWatch(t *testing.T) {
	forEachKubectl(t, func(t *testing.T, k *kubectl, version string) {
		ns := "watch-" + version
		k.ok("create", "ns", ns)
		k.ok("create", "cm", "before", "-n", ns, "--from-literal=a=1")
		// The controller's ConfigMap arrives first, so that it is no change
		// --watch-only would show.
		eventually(t, "kube-root-ca.crt in "+ns, func() error {
			_, err := k.run("", "get", "cm", "kube-root-ca.crt", "-n", ns)
			return err
		})

		// get -w: the current state first, then each change.
		w := k.watch("get", "cm", "-n", ns, "-w", "--output-watch-events")
		w.expect(t, "ADDED before 1")
		k.ok("create", "cm", "during", "-n", ns, "--from-literal=a=1")
		w.expect(t, "ADDED during 1")
		k.ok("patch", "cm", "during", "-n", ns, "-p", `{"data":{"b":"2"}}`)
		w.expect(t, "MODIFIED during 2")
		k.ok("delete", "cm", "during", "-n", ns)
		w.expect(t, "DELETED during 2")

		// --watch-only: no current state, only changes; plain table rows.
		wo := k.watch("get", "cm", "-n", ns, "--watch-only")
		wo.quiet(t, 1500*time.Millisecond)
		k.ok("label", "cm", "before", "-n", ns, "x=y")
		wo.expect(t, "NAME DATA AGE")
		wo.expect(t, "before 1")
		// The first watcher saw that change too.
		w.expect(t, "MODIFIED before 1")
	})
}
