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
}

func runAPIServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("apiserver", flag.ExitOnError)
	var o apiserver.Options
	serverFlags(fs, &o)
	fs.Parse(args) //nolint:errcheck // ExitOnError
	if o.DatabaseURL == "" {
		return fmt.Errorf("--database-url is required")
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
