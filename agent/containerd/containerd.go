// Package containerd starts a private containerd for a node agent (its
// state, config and socket under one directory) and loads images into it,
// so that pods run with nothing installed but Debian's containerd and runc
// and no registry to pull from.
package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Namespace is containerd's namespace of the CRI plugin: images loaded
// anywhere else are invisible to pods.
const Namespace = "k8s.io"

// PauseImage is the sandbox image the private containerd is configured
// with; Start loads it (built from busybox) since none can be pulled.
const PauseImage = "pgkube.local/pause:1"

// ErrNotInstalled: containerd or runc is missing, with what to install.
var ErrNotInstalled = errors.New("containerd is not installed: install the Debian packages containerd and runc (apt-get install containerd runc), or point the agent at a running CRI runtime with --container-runtime-endpoint")

// Available tells whether the binaries a private containerd needs are on
// PATH.
func Available() error {
	for _, bin := range []string{"containerd", "runc", "ctr"} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%w (%s not found)", ErrNotInstalled, bin)
		}
	}
	return nil
}

// Socket is the path of the private containerd's socket under dir.
func Socket(dir string) string { return filepath.Join(dir, "containerd.sock") }

// Endpoint is the CRI endpoint of the private containerd under dir.
func Endpoint(dir string) string { return "unix://" + Socket(dir) }

// config is containerd 1.6's configuration for one private instance.
// restrict_oom_score_adj: runc cannot lower oom_score_adj where the
// process lacks CAP_SYS_RESOURCE (VMs and containers), and the CRI plugin
// asks it to otherwise. runc's state lives under dir too, so that two
// instances on a host never share it. Pods run on the host network until
// pod networking exists, so no CNI is needed.
func config(dir, snapshotter string) string {
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	return strings.Join([]string{
		`version = 2`,
		`root = ` + q(filepath.Join(dir, "root")),
		`state = ` + q(filepath.Join(dir, "state")),
		`disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]`,
		`[grpc]`,
		`  address = ` + q(Socket(dir)),
		`[ttrpc]`,
		`  address = ` + q(Socket(dir)+".ttrpc"),
		`[debug]`,
		`  address = ""`,
		`[metrics]`,
		`  address = ""`,
		`[plugins."io.containerd.grpc.v1.cri"]`,
		`  sandbox_image = ` + q(PauseImage),
		`  restrict_oom_score_adj = true`,
		`  stream_server_address = "127.0.0.1"`,
		`  stream_server_port = "0"`,
		`  disable_apparmor = true`,
		`  tolerate_missing_hugetlb_controller = true`,
		`  [plugins."io.containerd.grpc.v1.cri".containerd]`,
		`    snapshotter = ` + q(snapshotter),
		`    default_runtime_name = "runc"`,
		`    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]`,
		`      runtime_type = "io.containerd.runc.v2"`,
		`      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]`,
		`        Root = ` + q(filepath.Join(dir, "runc")),
		`        SystemdCgroup = false`,
		`  [plugins."io.containerd.grpc.v1.cri".cni]`,
		`    bin_dir = ` + q(filepath.Join(dir, "cni", "bin")),
		`    conf_dir = ` + q(filepath.Join(dir, "cni", "net.d")),
		``,
	}, "\n")
}

// Process is a running private containerd.
type Process struct {
	Dir      string
	Endpoint string
	cmd      *exec.Cmd
	done     chan error
}

// Start runs a private containerd under dir and loads the pause image;
// it ends with ctx. Its log goes to dir/containerd.log.
func Start(ctx context.Context, dir string) (*Process, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("containerd: %w", err)
	}
	snap := snapshotter(dir)
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(config(dir, snap)), 0o600); err != nil {
		return nil, fmt.Errorf("containerd: %w", err)
	}
	// Images are unpacked at import for the snapshotter pods use.
	if err := os.WriteFile(filepath.Join(dir, "snapshotter"), []byte(snap), 0o600); err != nil {
		return nil, fmt.Errorf("containerd: %w", err)
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("containerd: %w", err)
	}
	defer logFile.Close()
	os.Remove(Socket(dir))
	cmd := exec.CommandContext(ctx, "containerd", "--config", cfg)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	setChildAttrs(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting containerd: %w", err)
	}
	p := &Process{Dir: dir, Endpoint: Endpoint(dir), cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	if err := p.waitSocket(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	if err := p.ensurePause(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Done reports containerd's exit.
func (p *Process) Done() <-chan error { return p.done }

func (p *Process) waitSocket(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if c, err := net.DialTimeout("unix", Socket(p.Dir), time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-p.done:
			return fmt.Errorf("containerd exited at start (%v); see %s", err, filepath.Join(p.Dir, "containerd.log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not open %s within %s; see %s", Socket(p.Dir), limit, filepath.Join(p.Dir, "containerd.log"))
		}
	}
}

func (p *Process) ensurePause(ctx context.Context) error {
	if has, err := HasImage(ctx, p.Dir, PauseImage); err != nil || has {
		return err
	}
	var buf bytes.Buffer
	if err := BusyboxArchive(&buf, PauseImage, []string{"/bin/sleep", "2147483647"}); err != nil {
		return fmt.Errorf("building the pause image: %w", err)
	}
	return Import(ctx, p.Dir, &buf)
}

// snapshotter is overlayfs where the directory's filesystem can hold it,
// else native (plain copies).
func snapshotter(dir string) string {
	if overlayWorks(dir) {
		return "overlayfs"
	}
	return "native"
}

// ctr runs containerd's own client against the private containerd under
// dir, in the CRI namespace.
func ctr(ctx context.Context, dir string, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", Socket(dir), "--namespace", Namespace}, args...)...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Import loads a docker or OCI image archive into the private containerd
// under dir (running), under the names the archive gives.
func Import(ctx context.Context, dir string, archive io.Reader) error {
	args := []string{"images", "import"}
	if snap, err := os.ReadFile(filepath.Join(dir, "snapshotter")); err == nil {
		args = append(args, "--snapshotter", strings.TrimSpace(string(snap)))
	}
	_, err := ctr(ctx, dir, archive, append(args, "-")...)
	return err
}

// HasImage tells whether the private containerd under dir has the image
// (a normalized reference, e.g. docker.io/library/busybox:1.36).
func HasImage(ctx context.Context, dir, ref string) (bool, error) {
	out, err := ctr(ctx, dir, nil, "images", "list", "--quiet")
	if err != nil {
		return false, err
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == ref {
			return true, nil
		}
	}
	return false, nil
}
