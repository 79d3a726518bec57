package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

func restConfig(t *testing.T, p *pgkube, protobuf bool) *rest.Config {
	cfg, err := clientcmd.BuildConfigFromFlags("", p.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	if protobuf {
		cfg.ContentType = "application/vnd.kubernetes.protobuf"
		cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	}
	return cfg
}

func namespace(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func TestClientGoTyped(t *testing.T) {
	srv := sharedServer(t)
	for _, proto := range []bool{false, true} {
		name := "json"
		if proto {
			name = "protobuf"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, proto))
			ns := "clientgo-" + name
			namespace(t, cs, ns)

			// Create, get, list, update, delete a ConfigMap.
			cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "cm", Labels: map[string]string{"k": "v"}},
				Data:       map[string]string{"a": "1"},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if cm.UID == "" || cm.ResourceVersion == "" || cm.CreationTimestamp.IsZero() {
				t.Fatalf("server did not set uid/resourceVersion/creationTimestamp: %+v", cm.ObjectMeta)
			}
			got, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "cm", metav1.GetOptions{})
			if err != nil || got.Data["a"] != "1" || got.ResourceVersion != cm.ResourceVersion {
				t.Fatalf("get: %v %+v", err, got)
			}
			list, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: "k=v"})
			if err != nil || len(list.Items) != 1 || list.ResourceVersion == "" {
				t.Fatalf("list: %v %+v", err, list)
			}
			got.Data["a"] = "2"
			upd, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, got, metav1.UpdateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !newer(upd.ResourceVersion, cm.ResourceVersion) {
				t.Fatalf("update did not advance resourceVersion: %s → %s", cm.ResourceVersion, upd.ResourceVersion)
			}

			// A stale update is a Conflict; RetryOnConflict recovers.
			stale := cm.DeepCopy()
			stale.Data["a"] = "stale"
			_, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, stale, metav1.UpdateOptions{})
			if !apierrors.IsConflict(err) {
				t.Fatalf("stale update: want Conflict, got %v", err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					errs <- retry.RetryOnConflict(wait.Backoff{Steps: 100, Duration: 2 * time.Millisecond, Factor: 1.2, Jitter: 1, Cap: 100 * time.Millisecond}, func() error {
						cur, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "cm", metav1.GetOptions{})
						if err != nil {
							return err
						}
						cur.Data[fmt.Sprint("w", i)] = "x"
						_, err = cs.CoreV1().ConfigMaps(ns).Update(ctx, cur, metav1.UpdateOptions{})
						return err
					})
				}(i)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			final, _ := cs.CoreV1().ConfigMaps(ns).Get(ctx, "cm", metav1.GetOptions{})
			if len(final.Data) != 9 {
				t.Fatalf("concurrent RetryOnConflict updates lost writes: %v", final.Data)
			}

			// Creating an existing name is AlreadyExists; generateName picks one.
			_, err = cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{})
			if !apierrors.IsAlreadyExists(err) {
				t.Fatalf("duplicate create: want AlreadyExists, got %v", err)
			}
			gen, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{GenerateName: "gen-"}}, metav1.CreateOptions{})
			if err != nil || len(gen.Name) != len("gen-")+5 {
				t.Fatalf("generateName: %v %q", err, gen.Name)
			}

			// Deployments: generation, status subresource, scale subresource.
			dep := &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: "d"},
				Spec: appsv1.DeploymentSpec{
					Replicas: ptr.To[int32](1),
					Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "d"}},
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "d"}},
						Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
					},
				},
				Status: appsv1.DeploymentStatus{Replicas: 99},
			}
			d, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if d.Generation != 1 || d.Status.Replicas != 0 {
				t.Fatalf("create: generation %d (want 1), status.replicas %d (want 0: status is ignored on create)", d.Generation, d.Status.Replicas)
			}
			// The deployment controller writes this status too, so each
			// write starts from a fresh read and retries on Conflict; a
			// write that lands was made against exactly the state read.
			apps := cs.AppsV1().Deployments(ns)
			err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cur, err := apps.Get(ctx, "d", metav1.GetOptions{})
				if err != nil {
					return err
				}
				cur.Status.ReadyReplicas, cur.Status.Replicas = 7, 7
				d, err = apps.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
				return err
			})
			if err != nil || d.Status.ReadyReplicas != 7 || d.Generation != 1 {
				t.Fatalf("update status: %v %+v gen %d", err, d.Status, d.Generation)
			}
			err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cur, err := apps.Get(ctx, "d", metav1.GetOptions{})
				if err != nil {
					return err
				}
				stored, gen := cur.Status, cur.Generation
				cur.Status.ReadyReplicas = stored.ReadyReplicas + 3
				cur.Spec.Replicas = ptr.To[int32](2)
				d, err = apps.Update(ctx, cur, metav1.UpdateOptions{})
				if err == nil && (d.Status.ReadyReplicas != stored.ReadyReplicas || d.Generation != gen+1) {
					t.Fatalf("main-resource update must keep status (%d ready, got %d) and bump generation (%d, got %d)",
						stored.ReadyReplicas, d.Status.ReadyReplicas, gen+1, d.Generation)
				}
				return err
			})
			if err != nil {
				t.Fatalf("main-resource update: %v", err)
			}
			sc, err := apps.GetScale(ctx, "d", metav1.GetOptions{})
			if err != nil || sc.Spec.Replicas != 2 || sc.Status.Selector != "app=d" {
				t.Fatalf("get scale: %v %+v", err, sc)
			}
			err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				sc, err := apps.GetScale(ctx, "d", metav1.GetOptions{})
				if err != nil {
					return err
				}
				sc.Spec.Replicas = 5
				_, err = apps.UpdateScale(ctx, "d", sc, metav1.UpdateOptions{})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			d, _ = apps.Get(ctx, "d", metav1.GetOptions{})
			if *d.Spec.Replicas != 5 {
				t.Fatalf("scale did not set replicas: %d", *d.Spec.Replicas)
			}
			err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cur, err := apps.Get(ctx, "d", metav1.GetOptions{})
				if err != nil {
					return err
				}
				cur.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}}
				_, err = apps.Update(ctx, cur, metav1.UpdateOptions{})
				return err
			})
			if !apierrors.IsInvalid(err) {
				t.Fatalf("changing an immutable selector: want Invalid, got %v", err)
			}

			// Strategic merge patch keeps list items by merge key.
			_, err = cs.AppsV1().Deployments(ns).Patch(ctx, "d", types.StrategicMergePatchType,
				[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"side","image":"busybox"}]}}}}`), metav1.PatchOptions{})
			if err != nil {
				t.Fatal(err)
			}
			d, _ = cs.AppsV1().Deployments(ns).Get(ctx, "d", metav1.GetOptions{})
			if len(d.Spec.Template.Spec.Containers) != 2 {
				t.Fatalf("strategic merge patch should add a container: %+v", d.Spec.Template.Spec.Containers)
			}

			// Delete with a stale precondition is a Conflict; then delete.
			err = cs.CoreV1().ConfigMaps(ns).Delete(ctx, "cm", metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &cm.ResourceVersion}})
			if !apierrors.IsConflict(err) {
				t.Fatalf("delete with stale precondition: want Conflict, got %v", err)
			}
			if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, "cm", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "cm", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("get after delete: want NotFound, got %v", err)
			}

			// Finalizers hold a deleted object until they are removed.
			fcm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx, "held", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			fcm, err = cs.CoreV1().ConfigMaps(ns).Get(ctx, "held", metav1.GetOptions{})
			if err != nil || fcm.DeletionTimestamp == nil {
				t.Fatalf("object with finalizer should be marked, not removed: %v %+v", err, fcm)
			}
			fcm.Finalizers = nil
			if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx, fcm, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "held", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("removing the last finalizer should complete deletion, got %v", err)
			}

			// Pods: scheduled by binding, then deleted gracefully.
			pod, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
			if err != nil || pod.Status.Phase != corev1.PodPending || pod.Status.QOSClass != corev1.PodQOSBestEffort {
				t.Fatalf("pod create: %v %+v", err, pod.Status)
			}
			err = cs.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Target: corev1.ObjectReference{Kind: "Node", Name: "n1"}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			err = cs.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Target: corev1.ObjectReference{Kind: "Node", Name: "n2"}}, metav1.CreateOptions{})
			if !apierrors.IsConflict(err) {
				t.Fatalf("second binding: want Conflict, got %v", err)
			}
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=n1"})
			if err != nil || len(pods.Items) != 1 {
				t.Fatalf("field selector spec.nodeName: %v %d", err, len(pods.Items))
			}
			if err := cs.CoreV1().Pods(ns).Delete(ctx, "p", metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
			pod, err = cs.CoreV1().Pods(ns).Get(ctx, "p", metav1.GetOptions{})
			if err != nil || pod.DeletionTimestamp == nil || *pod.DeletionGracePeriodSeconds != 30 {
				t.Fatalf("a bound pod is deleted gracefully (marked for its node): %v %+v", err, pod.ObjectMeta)
			}
			if err := cs.CoreV1().Pods(ns).Delete(ctx, "p", metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.CoreV1().Pods(ns).Get(ctx, "p", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("grace period 0 removes the pod, got %v", err)
			}

			// Events have two faces over one store.
			ev, err := cs.CoreV1().Events(ns).Create(ctx, &corev1.Event{
				ObjectMeta:     metav1.ObjectMeta{Name: "ev1"},
				InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p", Namespace: ns},
				Reason:         "Testing", Message: "hello", Type: "Normal",
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			nev, err := cs.EventsV1().Events(ns).Get(ctx, "ev1", metav1.GetOptions{})
			if err != nil || nev.Note != "hello" || nev.Regarding.Name != "p" || nev.ResourceVersion != ev.ResourceVersion {
				t.Fatalf("events.k8s.io view of a core event: %v %+v", err, nev)
			}
			_, err = cs.EventsV1().Events(ns).Create(ctx, &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Name: "ev2"},
				EventTime: metav1.NowMicro(), Regarding: corev1.ObjectReference{Kind: "Pod", Name: "q", Namespace: ns},
				Reason: "R", Note: "n2", Type: "Normal", Action: "A", ReportingController: "test", ReportingInstance: "i"}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			evs, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=q"})
			if err != nil || len(evs.Items) != 1 || evs.Items[0].Message != "n2" {
				t.Fatalf("core view of an events.k8s.io event: %v %+v", err, evs)
			}
		})
	}
}

// newer compares resourceVersions, which pgkube makes integers.
func newer(a, b string) bool {
	var x, y int64
	fmt.Sscan(a, &x)
	fmt.Sscan(b, &y)
	return x > y
}

func TestClientGoDynamic(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	cfg := restConfig(t, srv, false)
	cs := kubernetes.NewForConfigOrDie(cfg)
	namespace(t, cs, "dynamic")
	dyn := dynamic.NewForConfigOrDie(cfg)
	gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "StatefulSet",
		"metadata": map[string]any{"name": "db"},
		"spec": map[string]any{
			"serviceName": "db", "replicas": int64(1),
			"selector": map[string]any{"matchLabels": map[string]any{"app": "db"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "db"}},
				"spec":     map[string]any{"containers": []any{map[string]any{"name": "c", "image": "busybox"}}},
			},
		},
	}}
	created, err := dyn.Resource(gvr).Namespace("dynamic").Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.GetUID() == "" || created.GetGeneration() != 1 {
		t.Fatalf("dynamic create: %+v", created.Object["metadata"])
	}
	unstructured.SetNestedField(created.Object, int64(3), "spec", "replicas")
	upd, err := dyn.Resource(gvr).Namespace("dynamic").Update(ctx, created, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r, _, _ := unstructured.NestedInt64(upd.Object, "spec", "replicas"); r != 3 || upd.GetGeneration() != 2 {
		t.Fatalf("dynamic update: replicas %d gen %d", r, upd.GetGeneration())
	}
	list, err := dyn.Resource(gvr).Namespace("dynamic").List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("dynamic list: %v", err)
	}
	if _, err := dyn.Resource(gvr).Namespace("dynamic").Patch(ctx, "db", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := dyn.Resource(gvr).Namespace("dynamic").Delete(ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(gvr).Namespace("dynamic").Get(ctx, "db", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("want NotFound after delete, got %v", err)
	}
}

// TestWatchBasics checks the watch kubectl delete --wait and informers rely
// on: events in order from a resourceVersion, with selectors.
func TestWatchBasics(t *testing.T) {
	srv := sharedServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, proto := range []bool{false, true} {
		cs := kubernetes.NewForConfigOrDie(restConfig(t, srv, proto))
		ns := fmt.Sprintf("watch-%v", proto)
		namespace(t, cs, ns)
		list, err := cs.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		w, err := cs.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion, LabelSelector: "w=yes"})
		if err != nil {
			t.Fatal(err)
		}
		cm, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"w": "yes"}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "ignored"}}, metav1.CreateOptions{})
		cm.Labels["w"] = "no"
		cs.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
		want := []watch.EventType{watch.Added, watch.Deleted}
		for i, wt := range want {
			select {
			case ev := <-w.ResultChan():
				if ev.Type != wt || ev.Object.(*corev1.ConfigMap).Name != "a" {
					t.Fatalf("event %d: got %s %v, want %s a", i, ev.Type, ev.Object, wt)
				}
			case <-ctx.Done():
				t.Fatalf("event %d (%s) never came", i, wt)
			}
		}
		w.Stop()
	}
}
