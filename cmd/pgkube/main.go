// Command pgkube is the Kubernetes-compatible API server on PostgreSQL and
// its companions, as subcommands.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgkube/pgkube/apiserver"
)

func main() {
	tuneGC()
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "apiserver":
		err = runAPIServer(ctx, os.Args[2:])
	case "up":
		err = runUp(ctx, os.Args[2:])
	case "tenant":
		err = runTenant(ctx, os.Args[2:], os.Stdout)
	case "controller-manager":
		err = runControllerManager(ctx, os.Args[2:])
	case "scheduler":
		err = runScheduler(ctx, os.Args[2:])
	case "agent":
		err = runAgent(ctx, os.Args[2:])
	case "image":
		err = runImage(ctx, os.Args[2:])
	case "-h", "--help", "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "pgkube: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgkube %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// tuneGC trades memory for CPU: an API server's heap is mostly short-lived
// request garbage, and the default GOGC=100 collects it a hundred
// times a second under load. A soft memory limit keeps the larger target
// from growing without bound. GOGC and GOMEMLIMIT still override.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(250)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(1 << 30)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: pgkube COMMAND [flags]

commands:
  up          a complete local cluster (embedded PostgreSQL unless --database-url)
  apiserver   the API server alone, on an existing PostgreSQL database
  tenant      create|list|delete|kubeconfig NAME: logical clusters (tenants)
  controller-manager
              the controllers (namespace, service accounts, ...), as a client of the API server
  scheduler   places pending pods on nodes, as a client of the API server
  agent       the node agent: registers nodes and runs the pods bound to them (--runtime simulated|cri)
  image       import FILE | busybox: load images into the private containerd of pgkube up
`)
}

// serverFlags are the API server's flags, shared by apiserver and up.
func serverFlags(fs *flag.FlagSet, o *apiserver.Options) {
	fs.StringVar(&o.DatabaseURL, "database-url", "", "PostgreSQL connection URL")
	fs.StringVar(&o.ListenDatabaseURL, "listen-database-url", "",
		"direct PostgreSQL connection URL for LISTEN, when --database-url goes through a transaction-pooling proxy (default: --database-url)")
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:6443", "address to serve the API on")
	fs.StringVar(&o.ServiceCIDR, "service-cluster-ip-range", "10.96.0.0/12", "range of Service ClusterIPs")
	fs.StringVar(&o.NodePortRange, "service-node-port-range", "30000-32767", "range of Service NodePorts")
	fs.DurationVar(&o.HistoryRetention, "history-retention", 5*time.Minute, "how long superseded versions stay readable")
	fs.DurationVar(&o.WatchBookmarkInterval, "watch-bookmark-interval", 30*time.Second, "how often watches that allow bookmarks get one")
	fs.StringVar(&o.CertDir, "cert-dir", "", "directory of the cluster CA, serving certificate and service-account key (generated when missing)")
	fs.StringVar(&o.TokenAuthFile, "token-auth-file", "", "static bearer tokens, CSV: token,user,uid,\"group1,group2\"")
	fs.StringVar(&o.OIDC.IssuerURL, "oidc-issuer-url", "", "accept ID tokens from this OpenID Connect issuer (https)")
	fs.StringVar(&o.OIDC.ClientID, "oidc-client-id", "", "audience OIDC tokens must carry")
	fs.StringVar(&o.OIDC.CAFile, "oidc-ca-file", "", "CA bundle for the OIDC issuer's certificate (default: system roots)")
	fs.StringVar(&o.OIDC.UsernameClaim, "oidc-username-claim", "sub", "OIDC claim naming the user")
	fs.StringVar(&o.OIDC.UsernamePrefix, "oidc-username-prefix", "", "prefix of OIDC user names (default: issuer URL + \"#\" unless the claim is email; \"-\" for none)")
	fs.StringVar(&o.OIDC.GroupsClaim, "oidc-groups-claim", "", "OIDC claim listing the user's groups")
	fs.StringVar(&o.OIDC.GroupsPrefix, "oidc-groups-prefix", "", "prefix of OIDC group names")
	fs.StringVar(&o.ServiceAccountIssuer, "service-account-issuer", "https://kubernetes.default.svc.cluster.local", "iss of service-account tokens")
	fs.Func("api-audiences", "comma-separated audiences the API accepts tokens for (default: the service-account issuer)", func(v string) error {
		o.APIAudiences = strings.Split(v, ",")
		return nil
	})
	fs.DurationVar(&o.ServiceAccountMaxTokenTTL, "service-account-max-token-expiration", 48*time.Hour, "longest lifetime of a requested token")
	fs.BoolFunc("anonymous-auth", "serve requests without credentials as system:anonymous (default true)", func(v string) error {
		b, err := strconv.ParseBool(v)
		o.NoAnonymous = !b
		return err
	})
	fs.StringVar(&o.EncryptionConfig, "encryption-provider-config", "", "EncryptionConfiguration file: resources encrypted at rest and their keys")
	fs.StringVar(&o.AuditLogPath, "audit-log-path", "", "file receiving one JSON audit event per request")
	fs.Float64Var(&o.TenantQPS, "tenant-qps", 200, "requests per second each tenant (logical cluster other than root) may make; 0 for no limit")
	fs.IntVar(&o.TenantBurst, "tenant-burst", 400, "burst of requests above --tenant-qps")
	fs.DurationVar(&o.TenantIdleTimeout, "tenant-idle-timeout", 5*time.Minute, "a tenant without requests for this long keeps no goroutines (its feeds stop until its next request)")
	fs.IntVar(&o.TenantMaxInFlight, "tenant-max-inflight", 50, "concurrent requests each tenant may have, watches not counted; 0 for no limit")
	fs.Int64Var(&o.TenantMaxObjects, "tenant-max-objects", 100000, "objects each tenant may store; 0 for no limit")
	fs.Int64Var(&o.TenantMaxBytes, "tenant-max-bytes", 1<<30, "bytes of objects each tenant may store; 0 for no limit")
}

func runAPIServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("apiserver", flag.ExitOnError)
	var o apiserver.Options
	serverFlags(fs, &o)
	fs.Parse(args) //nolint:errcheck // ExitOnError
	if o.DatabaseURL == "" {
		return fmt.Errorf("--database-url is required")
	}
	if o.CertDir == "" {
		return fmt.Errorf("--cert-dir is required: processes serving one database share its CA and service-account key")
	}
	o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	s, err := apiserver.Start(ctx, o)
	if err != nil {
		return err
	}
	o.Log.Info("serving", "url", s.URL())
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Shutdown(shutdown)
}
