package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pgkube/pgkube/apiserver"
	"github.com/pgkube/pgkube/embedpg"
)

// runUp starts a whole local cluster: PostgreSQL (embedded unless given),
// the API server, and an admin kubeconfig in the data dir.
func runUp(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	var o apiserver.Options
	serverFlags(fs, &o)
	dataDir := fs.String("data-dir", defaultDataDir(), "where pgkube keeps its state")
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
		o.DatabaseURL = pg.URL("pgkube")
		log.Info("embedded PostgreSQL started", "dir", filepath.Join(dir, "postgres"))
	}
	s, err := apiserver.Start(ctx, o)
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, s.URL()); err != nil {
		return err
	}
	fmt.Printf("pgkube is up at %s\nexport KUBECONFIG=%s\n", s.URL(), kubeconfig)
	var pgDone <-chan struct{}
	if pg != nil {
		pgDone = pg.Done()
	}
	select {
	case <-ctx.Done():
	case <-pgDone:
		log.Error("embedded PostgreSQL exited; stopping")
	}
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

// writeKubeconfig writes an admin kubeconfig for the server.
func writeKubeconfig(path, server string) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: pgkube
  cluster:
    server: %s
users:
- name: admin
  user: {}
contexts:
- name: pgkube
  context:
    cluster: pgkube
    user: admin
    namespace: default
current-context: pgkube
`, server)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return os.Rename(tmp, path)
}
