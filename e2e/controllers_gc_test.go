package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
)

// gcOwned makes a ConfigMap owned by the given owners.
func gcConfigMap(t *testing.T, cs kubernetes.Interface, ns, name string, finalizers []string, owners ...metav1.OwnerReference) *corev1.ConfigMap {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps(ns).Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: owners, Finalizers: finalizers},
		Data:       map[string]string{"k": "v"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create configmap %s: %v", name, err)
	}
	return cm
}

func ownerRef(apiVersion, kind string, o metav1.Object, block bool) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: o.GetName(), UID: o.GetUID(), BlockOwnerDeletion: &block}
}

func cmGone(t *testing.T, cs kubernetes.Interface, ns, name string) {
	t.Helper()
	within(t, 30*time.Second, "configmap "+name+" deleted", func() error {
		_, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("still there")
	})
}

func getCM(t *testing.T, cs kubernetes.Interface, ns, name string) *corev1.ConfigMap {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("configmap %s: %v", name, err)
	}
	return cm
}

// stays checks that f keeps succeeding for d.
func stays(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestControllersGarbageCollector: the garbage collector `pgkube up` runs
// deletes dependents whose owners are gone (kubectl's default background
// cascade, an owner that never existed, a replaced owner), keeps
// dependents that have another owner, waits in the foreground for a
// blocking dependent held by its own finalizer, and orphans.
func TestControllersGarbageCollector(t *testing.T) {
	srv := sharedServer(t)
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	const ns = "gc-e2e"
	namespace(t, cs, ns)
	k := &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}

	t.Run("background", func(t *testing.T) {
		owner := gcConfigMap(t, cs, ns, "bg-owner", nil)
		other := gcConfigMap(t, cs, ns, "bg-other", nil)
		gcConfigMap(t, cs, ns, "bg-dep-1", nil, ownerRef("v1", "ConfigMap", owner, false))
		gcConfigMap(t, cs, ns, "bg-dep-2", nil, ownerRef("v1", "ConfigMap", owner, true))
		gcConfigMap(t, cs, ns, "bg-two-owners", nil, ownerRef("v1", "ConfigMap", owner, false), ownerRef("v1", "ConfigMap", other, false))
		// An owner by a uid that does not exist, and one whose name now
		// holds another object.
		ghost := owner.DeepCopy()
		ghost.UID = types.UID("00000000-0000-0000-0000-000000000001")
		gcConfigMap(t, cs, ns, "bg-ghost-dep", nil, ownerRef("v1", "ConfigMap", ghost, false))
		stale := gcConfigMap(t, cs, ns, "bg-stale-owner", nil)
		if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, "bg-stale-owner", metav1.DeleteOptions{PropagationPolicy: ptrTo(metav1.DeletePropagationOrphan)}); err != nil {
			t.Fatal(err)
		}
		within(t, 30*time.Second, "orphaned owner gone", func() error {
			_, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "bg-stale-owner", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there (%v)", err)
		})
		gcConfigMap(t, cs, ns, "bg-stale-owner", nil) // same name, another uid
		gcConfigMap(t, cs, ns, "bg-stale-dep", nil, ownerRef("v1", "ConfigMap", stale, false))
		// Dependents of a live owner stay.
		stays(t, 2*time.Second, "dependents of a live owner", func() error {
			for _, n := range []string{"bg-dep-1", "bg-dep-2", "bg-two-owners"} {
				if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, n, metav1.GetOptions{}); err != nil {
					return err
				}
			}
			return nil
		})
		cmGone(t, cs, ns, "bg-ghost-dep")
		cmGone(t, cs, ns, "bg-stale-dep")

		k.ok("delete", "configmap", "bg-owner", "-n", ns) // kubectl's default: --cascade=background
		cmGone(t, cs, ns, "bg-dep-1")
		cmGone(t, cs, ns, "bg-dep-2")
		within(t, 30*time.Second, "the reference to the deleted owner dropped", func() error {
			cm := getCM(t, cs, ns, "bg-two-owners")
			if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != other.UID {
				return fmt.Errorf("owner references %+v", cm.OwnerReferences)
			}
			return nil
		})
	})

	t.Run("foreground", func(t *testing.T) {
		owner := gcConfigMap(t, cs, ns, "fg-owner", nil)
		gcConfigMap(t, cs, ns, "fg-blocking", []string{"example.com/hold"}, ownerRef("v1", "ConfigMap", owner, true))
		gcConfigMap(t, cs, ns, "fg-plain", nil, ownerRef("v1", "ConfigMap", owner, false))
		k.ok("delete", "configmap", "fg-owner", "-n", ns, "--cascade=foreground", "--wait=false")
		o := getCM(t, cs, ns, "fg-owner")
		if o.DeletionTimestamp == nil || !slices.Contains(o.Finalizers, metav1.FinalizerDeleteDependents) {
			t.Fatalf("owner after a foreground delete: deletionTimestamp %v finalizers %v", o.DeletionTimestamp, o.Finalizers)
		}
		cmGone(t, cs, ns, "fg-plain")
		within(t, 30*time.Second, "the blocking dependent being deleted", func() error {
			if cm := getCM(t, cs, ns, "fg-blocking"); cm.DeletionTimestamp == nil {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		// While it is held, so is the owner.
		stays(t, 3*time.Second, "owner waits for its blocking dependent", func() error {
			o, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "fg-owner", metav1.GetOptions{})
			if err != nil {
				return err
			}
			if o.DeletionTimestamp == nil || !slices.Contains(o.Finalizers, metav1.FinalizerDeleteDependents) {
				return fmt.Errorf("owner %+v", o.ObjectMeta)
			}
			return nil
		})
		if _, err := cs.CoreV1().ConfigMaps(ns).Patch(ctx, "fg-blocking", types.MergePatchType,
			[]byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		cmGone(t, cs, ns, "fg-blocking")
		cmGone(t, cs, ns, "fg-owner")
	})

	t.Run("orphan", func(t *testing.T) {
		owner := gcConfigMap(t, cs, ns, "or-owner", nil)
		other := gcConfigMap(t, cs, ns, "or-other", nil)
		gcConfigMap(t, cs, ns, "or-dep-1", nil, ownerRef("v1", "ConfigMap", owner, true))
		gcConfigMap(t, cs, ns, "or-dep-2", nil, ownerRef("v1", "ConfigMap", owner, false), ownerRef("v1", "ConfigMap", other, false))
		k.ok("delete", "configmap", "or-owner", "-n", ns, "--cascade=orphan")
		cmGone(t, cs, ns, "or-owner")
		within(t, 30*time.Second, "dependents without the reference", func() error {
			if refs := getCM(t, cs, ns, "or-dep-1").OwnerReferences; len(refs) != 0 {
				return fmt.Errorf("or-dep-1 owners %+v", refs)
			}
			if refs := getCM(t, cs, ns, "or-dep-2").OwnerReferences; len(refs) != 1 || refs[0].UID != other.UID {
				return fmt.Errorf("or-dep-2 owners %+v", refs)
			}
			return nil
		})
		stays(t, 2*time.Second, "orphans stay", func() error {
			_, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "or-dep-1", metav1.GetOptions{})
			return err
		})
	})
}

// TestControllersGarbageCollectorWorkloads: deleting a ReplicaSet deletes
// its pods (background, kubectl's default), a foreground delete holds the
// ReplicaSet until its pods are gone, and --cascade=orphan keeps the pods
// without their controller reference.
func TestControllersGarbageCollectorWorkloads(t *testing.T) {
	srv := sharedServer(t)
	cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, false))
	ctx := context.Background()
	const ns = "gc-workloads-e2e"
	namespace(t, cs, ns)
	k := &kubectl{t: t, bin: kubectls(t)["default"], kubeconfig: srv.kubeconfig, cacheDir: t.TempDir()}
	newRS := func(name string) *appsv1.ReplicaSet {
		t.Helper()
		replicas := int32(2)
		rs, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.ReplicaSetSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"rs": name}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"rs": name}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		within(t, 30*time.Second, name+"'s pods", func() error {
			pods := podsOf(t, cs, ns, name)
			if len(pods) != 2 {
				return fmt.Errorf("%d pods", len(pods))
			}
			return nil
		})
		return rs
	}
	podsGone := func(name string) {
		t.Helper()
		within(t, 30*time.Second, name+"'s pods deleted", func() error {
			if pods := podsOf(t, cs, ns, name); len(pods) != 0 {
				return fmt.Errorf("%d pods left", len(pods))
			}
			return nil
		})
	}

	newRS("bg")
	k.ok("delete", "replicaset", "bg", "-n", ns)
	podsGone("bg")

	// Foreground: a pod held by a finalizer holds the ReplicaSet.
	newRS("fg")
	held := podsOf(t, cs, ns, "fg")[0].Name
	if _, err := cs.CoreV1().Pods(ns).Patch(ctx, held, types.MergePatchType, []byte(`{"metadata":{"finalizers":["example.com/hold"]}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	k.ok("delete", "replicaset", "fg", "-n", ns, "--cascade=foreground", "--wait=false")
	within(t, 30*time.Second, "the held pod being deleted and the other gone", func() error {
		pods := podsOf(t, cs, ns, "fg")
		if len(pods) != 1 || pods[0].Name != held || pods[0].DeletionTimestamp == nil {
			return fmt.Errorf("pods %d", len(pods))
		}
		return nil
	})
	stays(t, 2*time.Second, "the ReplicaSet waits for its pod", func() error {
		rs, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, "fg", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if rs.DeletionTimestamp == nil {
			return fmt.Errorf("not being deleted")
		}
		return nil
	})
	if _, err := cs.CoreV1().Pods(ns).Patch(ctx, held, types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	within(t, 30*time.Second, "the ReplicaSet gone after its pods", func() error {
		_, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, "fg", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (%v)", err)
	})
	podsGone("fg")

	// Orphan: the pods stay, without a controller.
	newRS("or")
	k.ok("delete", "replicaset", "or", "-n", ns, "--cascade=orphan")
	within(t, 30*time.Second, "orphaned pods", func() error {
		if _, err := cs.AppsV1().ReplicaSets(ns).Get(ctx, "or", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("ReplicaSet still there (%v)", err)
		}
		pods := podsOf(t, cs, ns, "or")
		if len(pods) != 2 {
			return fmt.Errorf("%d pods", len(pods))
		}
		for _, p := range pods {
			if len(p.OwnerReferences) != 0 {
				return fmt.Errorf("pod %s owners %+v", p.Name, p.OwnerReferences)
			}
		}
		return nil
	})
	stays(t, 2*time.Second, "orphaned pods stay", func() error {
		if pods := podsOf(t, cs, ns, "or"); len(pods) != 2 {
			return fmt.Errorf("%d pods", len(pods))
		}
		return nil
	})

	// Three levels in the foreground: kubectl waits until the Deployment
	// is gone, which is after its ReplicaSet, which is after the pods.
	replicas := int32(2)
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "deploy"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"rs": "deploy"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"rs": "deploy"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	within(t, 30*time.Second, "the Deployment's pods", func() error {
		if pods := podsOf(t, cs, ns, "deploy"); len(pods) != 2 {
			return fmt.Errorf("%d pods", len(pods))
		}
		return nil
	})
	k.ok("delete", "deployment", "deploy", "-n", ns, "--cascade=foreground", "--timeout=60s")
	if pods := podsOf(t, cs, ns, "deploy"); len(pods) != 0 {
		t.Fatalf("%d pods left after the Deployment's foreground deletion", len(pods))
	}
	rss, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "rs=deploy"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rss.Items) != 0 {
		t.Fatalf("%d ReplicaSets left after the Deployment's foreground deletion", len(rss.Items))
	}
}

func podsOf(t *testing.T, cs kubernetes.Interface, ns, rs string) []corev1.Pod {
	t.Helper()
	l, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "rs=" + rs})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

var gcWidgets = schema.GroupVersionResource{Group: "gctest.example.com", Version: "v1", Resource: "widgets"}

// TestControllersGarbageCollectorCustomResources: ownerReferences to and
// from custom resources, in the root cluster and in a tenant (whose custom
// resources the collector finds through the tenant's discovery).
func TestControllersGarbageCollectorCustomResources(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	for _, cluster := range []string{"root", "gc-tenant"} {
		t.Run(cluster, func(t *testing.T) {
			cfg := restConfig(t, srv, false)
			if cluster != "root" {
				cfg = tenantConfig(t, srv.url, cluster)
			}
			cs := kubernetes.NewForConfigOrDie(cfg)
			dyn := dynamic.NewForConfigOrDie(cfg)
			crd := &unstructured.Unstructured{}
			if err := yamlToUnstructured(widgetCRD(gcWidgets.Group), crd); err != nil {
				t.Fatal(err)
			}
			crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
			if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
			// Other tests on the shared server run `kubectl get widgets`
			// and `kubectl get all`: leave no second widgets kind behind.
			t.Cleanup(func() {
				crds.Delete(context.Background(), crd.GetName(), metav1.DeleteOptions{}) //nolint:errcheck
			})
			const ns = "gc-crd-e2e"
			namespace(t, cs, ns)
			widgets := dyn.Resource(gcWidgets).Namespace(ns)
			var w *unstructured.Unstructured
			within(t, 30*time.Second, "a widget (the CRD served)", func() (err error) {
				w, err = widgets.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "gctest.example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w"},
					"spec": map[string]any{"replicas": int64(1)}}}, metav1.CreateOptions{})
				return err
			})
			// A ConfigMap owned by the widget, and a widget owned by a ConfigMap.
			gcConfigMap(t, cs, ns, "owned-by-widget", nil, ownerRef("gctest.example.com/v1", "Widget", w, true))
			owner := gcConfigMap(t, cs, ns, "widget-owner", nil)
			if _, err := widgets.Create(ctx, &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "gctest.example.com/v1", "kind": "Widget",
				"metadata": map[string]any{"name": "owned", "ownerReferences": []any{map[string]any{
					"apiVersion": "v1", "kind": "ConfigMap", "name": owner.Name, "uid": string(owner.UID)}}},
				"spec": map[string]any{"replicas": int64(1)}}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			stays(t, 2*time.Second, "dependents of live owners", func() error {
				if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "owned-by-widget", metav1.GetOptions{}); err != nil {
					return err
				}
				_, err := widgets.Get(ctx, "owned", metav1.GetOptions{})
				return err
			})
			if err := widgets.Delete(ctx, "w", metav1.DeleteOptions{PropagationPolicy: ptrTo(metav1.DeletePropagationForeground)}); err != nil {
				t.Fatal(err)
			}
			cmGone(t, cs, ns, "owned-by-widget")
			within(t, 30*time.Second, "the widget gone after its dependent", func() error {
				if _, err := widgets.Get(ctx, "w", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					return fmt.Errorf("still there (%v)", err)
				}
				return nil
			})
			if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, "widget-owner", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			within(t, 30*time.Second, "the owned widget deleted", func() error {
				if _, err := widgets.Get(ctx, "owned", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					return fmt.Errorf("still there (%v)", err)
				}
				return nil
			})
		})
	}
}
