package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// within retries f until it succeeds or d passes.
func within(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// namespaceDefaults checks that ns of the cluster cs talks to gets the
// "default" ServiceAccount and kube-root-ca.crt holding ca, and that both
// come back when deleted or, for the ConfigMap, edited.
func namespaceDefaults(t *testing.T, cs kubernetes.Interface, ns, ca string) {
	t.Helper()
	ctx := context.Background()
	namespace(t, cs, ns)
	var sa *corev1.ServiceAccount
	within(t, 15*time.Second, "default service account in "+ns, func() (err error) {
		sa, err = cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	within(t, 15*time.Second, "kube-root-ca.crt in "+ns, func() error {
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cm.Data["ca.crt"] != ca || len(cm.Data) != 1 {
			return fmt.Errorf("kube-root-ca.crt holds %v, want only ca.crt = the kubeconfig's CA", cm.Data)
		}
		return nil
	})

	// Deleted: made again (a new object).
	if err := cs.CoreV1().ServiceAccounts(ns).Delete(ctx, "default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	within(t, 15*time.Second, "default service account made again", func() error {
		again, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if again.UID == sa.UID {
			return fmt.Errorf("still the deleted one")
		}
		return nil
	})
	// Edited: restored; deleted: made again.
	if _, err := cs.CoreV1().ConfigMaps(ns).Patch(ctx, "kube-root-ca.crt", types.MergePatchType,
		[]byte(`{"data":{"ca.crt":"forged","extra":"x"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	restored := func() error {
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cm.Data["ca.crt"] != ca || len(cm.Data) != 1 {
			return fmt.Errorf("kube-root-ca.crt holds %v", cm.Data)
		}
		return nil
	}
	within(t, 15*time.Second, "kube-root-ca.crt restored after an edit", restored)
	if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, "kube-root-ca.crt", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	within(t, 15*time.Second, "kube-root-ca.crt made again after a delete", restored)
}

// TestControllersNamespaceDefaults: the serviceaccount and
// root-ca-cert-publisher controllers that `pgkube up` runs give every
// namespace its "default" ServiceAccount and kube-root-ca.crt, in the root
// cluster and in a tenant (the manager sees tenants through the wildcard
// view). Every cluster is served with the root's certificate, so the CA is
// the one in the root's kubeconfig everywhere.
func TestControllersNamespaceDefaults(t *testing.T) {
	srv := sharedServer(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", srv.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ca := string(cfg.CAData)
	if ca == "" {
		t.Fatal("the kubeconfig has no CA data")
	}
	root := kubernetes.NewForConfigOrDie(cfg)
	namespaceDefaults(t, root, "cm-defaults", ca)
	for _, ns := range []string{"default", "kube-system", "kube-public"} {
		if _, err := root.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
			t.Errorf("built-in namespace %s has no default service account: %v", ns, err)
		}
	}

	kc := tenant(t, srv, "cm-tenant")
	tc := clientFor(t, kc)
	tcfg, _ := clientcmd.BuildConfigFromFlags("", kc)
	if string(tcfg.CAData) != ca {
		t.Fatal("the tenant's kubeconfig trusts another CA than the root's: which one belongs in kube-root-ca.crt?")
	}
	namespaceDefaults(t, tc, "cm-defaults", ca)
	within(t, 15*time.Second, "the tenant's default namespace has its service account", func() error {
		_, err := tc.CoreV1().ServiceAccounts("default").Get(context.Background(), "default", metav1.GetOptions{})
		return err
	})

	// A deleted tenant: the controllers that wrote there stop without
	// trouble, and the manager keeps serving the others.
	if out, err := exec.Command(pgkubeBinary(t), "tenant", "delete", "cm-tenant", "--kubeconfig", srv.kubeconfig).CombinedOutput(); err != nil {
		t.Fatalf("tenant delete: %v\n%s", err, out)
	}
	within(t, 15*time.Second, "the manager forgetting the removed tenant", func() error {
		if !strings.Contains(srv.output(), "forgetting its objects") || !strings.Contains(srv.output(), "cluster=cm-tenant") {
			return fmt.Errorf("not in pgkube up's output")
		}
		return nil
	})
	namespaceDefaults(t, root, "cm-defaults-after", ca)
}

// gadgets are a namespaced custom resource of the namespace tests (not
// "widgets": other tests run `kubectl get widgets` on the shared server).
var gadgetsGVR = schema.GroupVersionResource{Group: "cmtest.example.com", Version: "v1", Resource: "gadgets"}

const gadgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.cmtest.example.com}
spec:
  group: cmtest.example.com
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

// TestControllersNamespaceDeletion: deleting a namespace deletes everything
// in it (pods, ConfigMaps, a custom resource) and then the namespace;
// content held by a finalizer keeps it Terminating, with the conditions
// upstream sets, until the finalizer goes.
func TestControllersNamespaceDeletion(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	cfg := restConfig(t, srv, false)
	cs := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	k := &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}
	k.okIn(gadgetCRD, "apply", "-f", "-")

	fill := func(ns string) {
		t.Helper()
		namespace(t, cs, ns)
		for i := range 3 {
			if _, err := cs.CoreV1().Pods(ns).Create(ctx, simplePod(fmt.Sprint("pod-", i)), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("cm-", i)}},
				metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		w := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "cmtest.example.com/v1", "kind": "Gadget",
			"metadata": map[string]any{"name": "w"}, "spec": map[string]any{"replicas": int64(1)}}}
		within(t, 15*time.Second, "a gadget (the CRD served)", func() error {
			_, err := dyn.Resource(gadgetsGVR).Namespace(ns).Create(ctx, w, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		})
	}
	gone := func(ns string) {
		t.Helper()
		within(t, 30*time.Second, "namespace "+ns+" gone", func() error {
			n, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("still there: phase %s, conditions %+v", n.Status.Phase, n.Status.Conditions)
		})
		left(t, cs, dyn, ns)
	}

	// Plain: kubectl waits for the namespace to go.
	fill("cm-delete")
	k.ok("delete", "namespace", "cm-delete", "--timeout=30s")
	gone("cm-delete")

	// Held: a ConfigMap with a finalizer.
	fill("cm-held")
	if _, err := cs.CoreV1().ConfigMaps("cm-held").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held",
		Finalizers: []string{"cmtest.example.com/hold"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().Namespaces().Delete(ctx, "cm-held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want := map[corev1.NamespaceConditionType]string{
		corev1.NamespaceContentRemaining:         "SomeResourcesRemain/Some resources are remaining: configmaps. has 1 resource instances",
		corev1.NamespaceFinalizersRemaining:      "SomeFinalizersRemain/Some content in the namespace has finalizers remaining: cmtest.example.com/hold in 1 resource instances",
		corev1.NamespaceDeletionDiscoveryFailure: "ResourcesDiscovered/",
		corev1.NamespaceDeletionGVParsingFailure: "ParsedGroupVersions/",
		corev1.NamespaceDeletionContentFailure:   "ContentDeleted/",
	}
	within(t, 30*time.Second, "the held namespace's conditions", func() error {
		n, err := cs.CoreV1().Namespaces().Get(ctx, "cm-held", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if n.Status.Phase != corev1.NamespaceTerminating {
			return fmt.Errorf("phase %s", n.Status.Phase)
		}
		for typ, rm := range want {
			reason, msg, _ := strings.Cut(rm, "/")
			c := condition(n, typ)
			wantStatus := corev1.ConditionTrue
			if msg == "" {
				wantStatus = corev1.ConditionFalse
			}
			if c == nil || c.Status != wantStatus || c.Reason != reason || (msg != "" && c.Message != msg) {
				return fmt.Errorf("condition %s = %+v, want %s %s %q", typ, c, wantStatus, reason, msg)
			}
		}
		return nil
	})
	// Everything else went already.
	if l, err := cs.CoreV1().ConfigMaps("cm-held").List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) != 1 || l.Items[0].Name != "held" {
		t.Errorf("configmaps in the held namespace: %v %+v", err, l)
	}
	if l, err := cs.CoreV1().Pods("cm-held").List(ctx, metav1.ListOptions{}); err != nil || len(l.Items) != 0 {
		t.Errorf("pods in the held namespace: %v %+v", err, l)
	}
	if _, err := cs.CoreV1().ConfigMaps("cm-held").Patch(ctx, "held", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`),
		metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	gone("cm-held")
}

// left fails the test when anything of the test's kinds is in ns.
func left(t *testing.T, cs kubernetes.Interface, dyn dynamic.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) > 0 {
		t.Errorf("pods of the deleted namespace %s: %v %d", ns, err, len(pods.Items))
	}
	cms, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(cms.Items) > 0 {
		t.Errorf("configmaps of the deleted namespace %s: %v %d", ns, err, len(cms.Items))
	}
	gs, err := dyn.Resource(gadgetsGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(gs.Items) > 0 {
		t.Errorf("gadgets of the deleted namespace %s: %v %d", ns, err, len(gs.Items))
	}
}

func condition(ns *corev1.Namespace, t corev1.NamespaceConditionType) *corev1.NamespaceCondition {
	for i := range ns.Status.Conditions {
		if ns.Status.Conditions[i].Type == t {
			return &ns.Status.Conditions[i]
		}
	}
	return nil
}
