package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pgkube/pgkube/agent/containerd"
	"github.com/pgkube/pgkube/agent/cri"
	"github.com/pgkube/pgkube/apiserver"
	"github.com/pgkube/pgkube/embedpg"
	"github.com/pgkube/pgkube/encryption"
	"github.com/pgkube/pgkube/migrations"
	"github.com/pgkube/pgkube/pki"
)

// runUp starts a whole local cluster: PostgreSQL (embedded unless given),
// the API server, and an admin kubeconfig in the data dir.
func runUp(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	var o apiserver.Options
	serverFlags(fs, &o)
	dataDir := fs.String("data-dir", defaultDataDir(), "where pgkube keeps its state")
	withCM := fs.Bool("controller-manager", true, "run the controller manager (pgkube controller-manager) as a child process")
	withScheduler := fs.Bool("scheduler", true, "run the scheduler (pgkube scheduler) as a child process")
	agentRuntime := fs.String("agent", "cri", "run a node agent (pgkube agent) for one node named after the host as a child process, with this runtime: cri (real containers in a private containerd under the data dir), simulated, or none")
	runtimeEndpoint := fs.String("container-runtime-endpoint", "", "with --agent cri: use this CRI runtime (unix:///path) instead of starting a private containerd")
	// Any free port by default: several local clusters (and a real
	// kubelet) may share the machine; the Node reports the port taken.
	agentPort := fs.Int("agent-port", 0, "port of the node agent's server for logs, exec, attach and port forwarding (0: any free port)")
	cmFlags := fs.String("controller-manager-flags", "", "more flags for the controller manager child, space-separated (e.g. --node-monitor-grace-period=5s)")
	fs.Parse(args) //nolint:errcheck // ExitOnError
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o.Log = log
	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	var pg *embedpg.Server
	if o.DatabaseURL == "" {
		logFile, err := os.OpenFile(filepath.Join(dir, "postgres.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer logFile.Close()
		pg, err = embedpg.Start(ctx, embedpg.Options{DataDir: dir, Log: logFile})
		if err != nil {
			return err
		}
		defer pg.Stop() //nolint:errcheck
		// Migrations run as the database's owner; the API server runs as
		// an ordinary role, so PostgreSQL's row-level security separates
		// logical clusters even from a faulty query.
		owner := pg.URL("pgkube")
		if err := migrations.ApplyURL(ctx, owner); err != nil {
			return err
		}
		if err := migrations.GrantApp(ctx, owner, appRole); err != nil {
			return err
		}
		o.DatabaseURL = pg.URLAs(appRole, "pgkube")
		log.Info("embedded PostgreSQL started", "dir", filepath.Join(dir, "postgres"))
	}
	if o.CertDir == "" {
		o.CertDir = filepath.Join(dir, "pki")
	}
	if o.EncryptionConfig == "" {
		if o.EncryptionConfig, err = ensureEncryptionConfig(dir); err != nil {
			return err
		}
	}
	if o.AuditLogPath == "" {
		o.AuditLogPath = filepath.Join(dir, "audit.log")
	}
	s, err := apiserver.Start(ctx, o)
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, clientURL(s.Addr()), s.PKI()); err != nil {
		return err
	}
	waitCM := func() {}
	cmCtx, stopCM := context.WithCancel(ctx)
	defer stopCM()
	if *withCM {
		flags := strings.Fields(*cmFlags)
		if !strings.Contains(*cmFlags, "--hostpath-dir") {
			// Claims of pgkube.io/hostpath classes get volumes on this
			// host, where the node's pods run.
			flags = append(flags, "--hostpath-dir="+filepath.Join(dir, "volumes"))
		}
		if waitCM, err = startControllerManager(cmCtx, kubeconfig, flags, log); err != nil {
			return err
		}
	}
	// The agent shares the API server's cert dir: the CA there signs its
	// serving certificate, which the API server then trusts.
	agentFlags := []string{"--cert-dir", o.CertDir, "--port", strconv.Itoa(*agentPort)}
	stopRuntime := func() {}
	if *agentRuntime == "cri" {
		endpoint := *runtimeEndpoint
		if endpoint == "" {
			var err error
			if endpoint, stopRuntime, err = startContainerd(ctx, dir, log); err != nil {
				return err
			}
		}
		// The node answers on loopback: its pods share the host's network
		// and are reached at the node's address.
		agentFlags = append(agentFlags, "--data-dir", dir, "--container-runtime-endpoint", endpoint, "--node-ip", "127.0.0.1")
	}
	defer stopRuntime()
	waitNodes, err := startNodeComponents(cmCtx, kubeconfig, *withScheduler, *agentRuntime, agentFlags, log)
	if err != nil {
		return err
	}
	fmt.Printf("pgkube is up at %s\nexport KUBECONFIG=%s\n", clientURL(s.Addr()), kubeconfig)
	var pgDone <-chan struct{}
	if pg != nil {
		pgDone = pg.Done()
	}
	select {
	case <-ctx.Done():
	case <-pgDone:
		log.Error("embedded PostgreSQL exited; stopping")
	}
	// The controller manager goes first: it releases its Lease while the
	// API server still answers.
	stopCM()
	waitCM()
	waitNodes()
	stopRuntime()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Shutdown(shutdown)
}

func defaultDataDir() string {
	if d := os.Getenv("PGKUBE_DATA_DIR"); d != "" {
		return d
	}
	return ".pgkube"
}

// ensureEncryptionConfig makes sure the data dir has an encryption config,
// so Secrets are encrypted at rest from the first start, and returns its
// path.
func ensureEncryptionConfig(dir string) (string, error) {
	path := filepath.Join(dir, "encryption-config.yaml")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	raw, err := encryption.NewConfig()
	if err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, os.ErrExist) {
		return path, nil // another start made it first
	}
	if err != nil {
		return "", fmt.Errorf("encryption config: %w", err)
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return "", fmt.Errorf("encryption config: %w", err)
	}
	return path, f.Close()
}

// writeKubeconfig writes an admin kubeconfig for the server: the cluster
// CA and the admin client certificate (user "admin" in system:masters).
func writeKubeconfig(path, server string, b *pki.Bundle) error {
	enc := base64.StdEncoding.EncodeToString
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: pgkube
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: pgkube
  context:
    cluster: pgkube
    user: admin
    namespace: default
current-context: pgkube
`, server, enc(b.CAPEM), enc(b.AdminCertPEM), enc(b.AdminKeyPEM))
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return os.Rename(tmp, path)
}

// appRole is the PostgreSQL role the API server of `pgkube up` runs as.
const appRole = "pgkube_app"

// clientURL is where a client on this machine reaches a server listening on
// addr: an unspecified address (0.0.0.0, ::) is reached through loopback,
// which the serving certificate names.
func clientURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	return "https://" + addr
}

// startContainerd starts the private containerd of the cri agent under
// the data dir. Without containerd installed it only warns: the agent
// then marks its node NotReady saying what to install, and the API
// serves on. stop ends the pods, then containerd.
func startContainerd(ctx context.Context, dir string, log *slog.Logger) (endpoint string, stop func(), err error) {
	ctdDir := filepath.Join(dir, "containerd")
	endpoint = containerd.Endpoint(ctdDir)
	if err := containerd.Available(); err != nil {
		log.Warn("no container runtime: pods will not run", "err", err)
		return endpoint, func() {}, nil
	}
	if os.Geteuid() != 0 {
		log.Warn("no container runtime: containerd runs containers as root only; run pgkube up as root, or give --container-runtime-endpoint")
		return endpoint, func() {}, nil
	}
	ctdCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p, err := containerd.Start(ctdCtx, ctdDir)
	if err != nil {
		cancel()
		// The API still serves; the node says it has no runtime.
		log.Error("containerd did not start: pods will not run", "err", err)
		return endpoint, func() {}, nil
	}
	log.Info("containerd started", "endpoint", endpoint, "log", filepath.Join(ctdDir, "containerd.log"))
	var once sync.Once
	return endpoint, func() {
		once.Do(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer scancel()
			if rt, err := cri.New(cri.Options{Endpoint: endpoint, RootDir: filepath.Join(dir, "agent")}); err == nil {
				if err := rt.StopAll(sctx); err != nil {
					log.Warn("stopping pods", "err", err)
				}
				rt.Close()
			}
			cancel()
			select {
			case <-p.Done():
			case <-sctx.Done():
			}
		})
	}, nil
}
