package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

var logicalClustersGVR = schema.GroupVersionResource{Group: "tenancy.pgkube.io", Version: "v1alpha1", Resource: "logicalclusters"}

// runTenant manages logical clusters through the root cluster's API, as
// its admin: create, list, delete, and print a tenant's admin kubeconfig.
func runTenant(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("tenant", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "the root cluster's admin kubeconfig (default: $KUBECONFIG, else DATA_DIR/kubeconfig)")
	dataDir := fs.String("data-dir", defaultDataDir(), "pgkube up's data dir, for its kubeconfig")
	timeout := fs.Duration("timeout", 30*time.Second, "how long create and delete wait")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: pgkube tenant create|list|delete|kubeconfig [NAME] [flags]")
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		fs.Usage()
		return errors.New("missing subcommand")
	}
	verb, rest := args[0], args[1:]
	var name string
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		name, rest = rest[0], rest[1:]
	}
	fs.Parse(rest) //nolint:errcheck // ExitOnError
	if verb != "list" && name == "" {
		return fmt.Errorf("tenant %s needs a NAME", verb)
	}
	path := *kubeconfig
	if path == "" {
		path = os.Getenv("KUBECONFIG")
	}
	if path == "" {
		path = filepath.Join(*dataDir, "kubeconfig")
	}
	raw, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return fmt.Errorf("root kubeconfig: %w", err)
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*raw, nil).ClientConfig()
	if err != nil {
		return fmt.Errorf("root kubeconfig %s: %w", path, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	lcs := dyn.Resource(logicalClustersGVR)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	switch verb {
	case "create":
		lc := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "tenancy.pgkube.io/v1alpha1", "kind": "LogicalCluster",
			"metadata": map[string]any{"name": name}}}
		if _, err := lcs.Create(ctx, lc, metav1.CreateOptions{}); err != nil {
			return err
		}
		for {
			got, err := lcs.Get(ctx, name, metav1.GetOptions{})
			if err == nil {
				if phase, _, _ := unstructured.NestedString(got.Object, "status", "phase"); phase == "Ready" {
					fmt.Fprintf(out, "logical cluster %s ready at %s/clusters/%s\n", name, strings.TrimSuffix(cfg.Host, "/"), name)
					return nil
				}
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return fmt.Errorf("logical cluster %s not ready: %w", name, err)
			}
		}
	case "list":
		list, err := lcs.List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
		fmt.Fprintln(w, "NAME\tPHASE\tURL")
		for _, lc := range list.Items {
			phase, _, _ := unstructured.NestedString(lc.Object, "status", "phase")
			fmt.Fprintf(w, "%s\t%s\t%s/clusters/%s\n", lc.GetName(), phase, strings.TrimSuffix(cfg.Host, "/"), lc.GetName())
		}
		return w.Flush()
	case "delete":
		if err := lcs.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return err
		}
		for {
			if _, err := lcs.Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				fmt.Fprintf(out, "logical cluster %s deleted\n", name)
				return nil
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return fmt.Errorf("logical cluster %s not gone: %w", name, err)
			}
		}
	case "kubeconfig":
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return err
		}
		sec, err := cs.CoreV1().Secrets("kube-system").Get(ctx, "tenant-"+name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("credentials of %s: %w", name, err)
		}
		kc := clientcmdapi.NewConfig()
		kc.Clusters[name] = &clientcmdapi.Cluster{Server: strings.TrimSuffix(cfg.Host, "/") + "/clusters/" + name,
			CertificateAuthorityData: cfg.CAData}
		kc.AuthInfos["admin@"+name] = &clientcmdapi.AuthInfo{ClientCertificateData: sec.Data["admin.crt"], ClientKeyData: sec.Data["admin.key"]}
		kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: "admin@" + name, Namespace: "default"}
		kc.CurrentContext = name
		b, err := clientcmd.Write(*kc)
		if err != nil {
			return err
		}
		_, err = out.Write(b)
		return err
	default:
		fs.Usage()
		return fmt.Errorf("unknown tenant subcommand %q", verb)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
