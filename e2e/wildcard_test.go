package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

const clusterMark = "pgkube.io/cluster"

// wildcardConfig is the root admin's view of every logical cluster.
func wildcardConfig(t *testing.T, url string) *rest.Config {
	cfg := adminConfig(t, url)
	cfg.Host = url + "/clusters/*"
	return cfg
}

// TestWildcardInformer: a client-go informer on /clusters/*/ sees the
// objects and changes of every logical cluster, each marked with its
// cluster, and sees nothing twice.
func TestWildcardInformer(t *testing.T) {
	srv := sharedServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := kubernetes.NewForConfigOrDie(tenantConfig(t, srv.url, "wild-a"))
	b := kubernetes.NewForConfigOrDie(tenantConfig(t, srv.url, "wild-b"))
	root := kubernetes.NewForConfigOrDie(adminConfig(t, srv.url))
	for _, c := range []kubernetes.Interface{a, b, root} {
		namespace(t, c, "wild")
	}
	create := func(c kubernetes.Interface, name string) {
		t.Helper()
		if _, err := c.CoreV1().ConfigMaps("wild").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name},
			Data: map[string]string{"v": "1"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Before the informer starts: these come from its list.
	create(a, "before-a")
	create(b, "before-b")

	var mu sync.Mutex
	var seen []string // "TYPE cluster/name"
	record := func(typ string, obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		cm := obj.(*corev1.ConfigMap)
		if cm.Namespace != "wild" {
			return
		}
		mu.Lock()
		seen = append(seen, typ+" "+cm.Annotations[clusterMark]+"/"+cm.Name)
		mu.Unlock()
	}
	f := informers.NewSharedInformerFactory(kubernetes.NewForConfigOrDie(wildcardConfig(t, srv.url)), 0)
	inf := f.Core().V1().ConfigMaps().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{ //nolint:errcheck
		AddFunc:    func(o any) { record("ADDED", o) },
		UpdateFunc: func(_, o any) { record("MODIFIED", o) },
		DeleteFunc: func(o any) { record("DELETED", o) },
	})
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("wildcard informer never synced")
	}
	// After: these come from its watch.
	create(a, "after-a")
	create(b, "after-b")
	create(root, "after-root")
	cm, err := b.CoreV1().ConfigMaps("wild").Get(ctx, "before-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["v"] = "2"
	if _, err := b.CoreV1().ConfigMaps("wild").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := a.CoreV1().ConfigMaps("wild").Delete(ctx, "before-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"ADDED wild-a/before-a", "ADDED wild-b/before-b", "ADDED wild-a/after-a", "ADDED wild-b/after-b",
		"ADDED root/after-root", "MODIFIED wild-b/before-b", "DELETED wild-a/before-a"}
	eventually(t, "the wildcard informer's events", func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, w := range want {
			if count(seen, w) != 1 {
				return fmt.Errorf("%q seen %d times; all: %v", w, count(seen, w), seen)
			}
		}
		return nil
	})
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

// TestWildcardWatchResumes: a list's resourceVersion and a bookmark's are
// positions a new watch continues from, each change once; an event's own
// resourceVersion (its cluster's) is not one, and is 410 as any expired
// version, so the client lists again.
func TestWildcardWatchResumes(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	a := kubernetes.NewForConfigOrDie(tenantConfig(t, srv.url, "wild-c"))
	namespace(t, a, "resume")
	// The root-ca-cert-publisher's ConfigMap arrives before the list, so
	// the watches below see only the test's own.
	eventually(t, "kube-root-ca.crt in resume", func() error {
		_, err := a.CoreV1().ConfigMaps("resume").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err
	})
	wild := kubernetes.NewForConfigOrDie(wildcardConfig(t, srv.url)).CoreV1().ConfigMaps("resume")
	list, err := wild.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string) {
		t.Helper()
		if _, err := a.CoreV1().ConfigMaps("resume").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk("one")
	// From the list's position: "one", then a bookmark as the watch times out.
	names, bookmark := watchNames(t, wild, list.ResourceVersion)
	if strings.Join(names, ",") != "wild-c/one" {
		t.Errorf("watch from the list: %v, want [wild-c/one]", names)
	}
	if bookmark == "" {
		t.Fatal("no bookmark before the watch timed out")
	}
	mk("two")
	names, _ = watchNames(t, wild, bookmark)
	if strings.Join(names, ",") != "wild-c/two" {
		t.Errorf("watch from the bookmark: %v, want [wild-c/two]", names)
	}
	// An object's resourceVersion is its cluster's, not a position.
	one, err := a.CoreV1().ConfigMaps("resume").Get(ctx, "one", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wild.Watch(ctx, metav1.ListOptions{ResourceVersion: one.ResourceVersion})
	if err == nil {
		ev := <-w.ResultChan()
		w.Stop()
		if st, ok := ev.Object.(*metav1.Status); !ok || st.Code != 410 {
			t.Errorf("watch from a cluster's resourceVersion: %v %#v, want a 410 error event", ev.Type, ev.Object)
		}
	} else if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Errorf("watch from a cluster's resourceVersion: %v, want 410", err)
	}
}

// watchNames watches from rv for three seconds and returns the names of
// the ADDED objects and the last bookmark's resourceVersion.
func watchNames(t *testing.T, c interface {
	Watch(context.Context, metav1.ListOptions) (watch.Interface, error)
}, rv string) ([]string, string) {
	t.Helper()
	timeout := int64(3)
	w, err := c.Watch(context.Background(), metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true, TimeoutSeconds: &timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var names []string
	var bookmark string
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return names, bookmark
			}
			switch ev.Type {
			case watch.Added:
				cm := ev.Object.(*corev1.ConfigMap)
				names = append(names, cm.Annotations[clusterMark]+"/"+cm.Name)
			case watch.Bookmark:
				bookmark = ev.Object.(*corev1.ConfigMap).ResourceVersion
			case watch.Error:
				t.Fatalf("watch from %q: %v", rv, apierrors.FromObject(ev.Object))
			}
		case <-deadline:
			t.Fatal("the watch did not end at its timeout")
		}
	}
}

// TestWildcardIsForSystemIdentities: only list and watch are served, to
// the root's system:masters (or whoever RBAC grants /clusters/*); a
// tenant's credentials are 401 there; writes go to a named cluster, where
// the view's mark is not stored.
func TestWildcardIsForSystemIdentities(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	tcfg := tenantConfig(t, srv.url, "wild-d")
	a := kubernetes.NewForConfigOrDie(tcfg)
	namespace(t, a, "marks")
	if _, err := a.CoreV1().ConfigMaps("marks").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "m"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Another root user, with every right on resources but not /clusters/*.
	root := kubernetes.NewForConfigOrDie(adminConfig(t, srv.url))
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "all-resources"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}}
	if _, err := root.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "wild-editor"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "all-resources"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "wild-editor"}}}
	if _, err := root.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	eventually(t, "wild-editor can list configmaps in the root", func() error {
		cfg := adminConfig(t, srv.url)
		cfg.Impersonate = rest.ImpersonationConfig{UserName: "wild-editor"}
		_, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
		return err
	})
	editor := wildcardConfig(t, srv.url)
	editor.Impersonate = rest.ImpersonationConfig{UserName: "wild-editor"}
	if _, err := kubernetes.NewForConfigOrDie(editor).CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a root user without /clusters/*: %v, want 403", err)
	}
	tw := rest.CopyConfig(tcfg)
	tw.Host = srv.url + "/clusters/*"
	if _, err := kubernetes.NewForConfigOrDie(tw).CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("a tenant's credentials on the wildcard view: %v, want 401", err)
	}

	wild := kubernetes.NewForConfigOrDie(wildcardConfig(t, srv.url))
	if _, err := wild.CoreV1().ConfigMaps("marks").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "w"}}, metav1.CreateOptions{}); !apierrors.IsMethodNotSupported(err) {
		t.Errorf("create through the wildcard view: %v, want 405", err)
	}
	if _, err := wild.CoreV1().ConfigMaps("marks").Get(ctx, "m", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get by name through the wildcard view: %v, want 404", err)
	}

	// The root's system:masters write to the tenant by name, sending back
	// what the view gave them; the mark is not stored.
	list, err := wild.CoreV1().ConfigMaps("marks").List(ctx, metav1.ListOptions{})
	if err == nil { // (the root-ca-cert-publisher's kube-root-ca.crt may be there too)
		list.Items = slices.DeleteFunc(list.Items, func(cm corev1.ConfigMap) bool { return cm.Name == "kube-root-ca.crt" })
	}
	if err != nil || len(list.Items) != 1 || list.Items[0].Annotations[clusterMark] != "wild-d" {
		t.Fatalf("wildcard list: %v %v", err, list)
	}
	cm := list.Items[0]
	cm.Data = map[string]string{"by": "root"}
	inTenant := adminConfig(t, srv.url)
	inTenant.Host = srv.url + "/clusters/wild-d"
	if _, err := kubernetes.NewForConfigOrDie(inTenant).CoreV1().ConfigMaps("marks").Update(ctx, &cm, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("root admin updating a tenant's object: %v", err)
	}
	got, err := a.CoreV1().ConfigMaps("marks").Get(ctx, "m", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Data["by"] != "root" || got.Annotations[clusterMark] != "" {
		t.Errorf("stored after the update: data %v annotations %v; want the data and no mark", got.Data, got.Annotations)
	}
}

// TestWildcardSelectors: label and field selectors select in the wildcard
// view's lists as in its watches.
func TestWildcardSelectors(t *testing.T) {
	srv := sharedServer(t)
	ctx := context.Background()
	a := kubernetes.NewForConfigOrDie(tenantConfig(t, srv.url, "wild-e"))
	namespace(t, a, "sel")
	for _, name := range []string{"x", "y"} {
		if _, err := a.CoreV1().ConfigMaps("sel").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{"pick": name}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	wild := kubernetes.NewForConfigOrDie(wildcardConfig(t, srv.url)).CoreV1().ConfigMaps("sel")
	for _, opts := range []metav1.ListOptions{{LabelSelector: "pick=y"}, {FieldSelector: "metadata.name=y"}} {
		l, err := wild.List(ctx, opts)
		if err != nil || len(l.Items) != 1 || l.Items[0].Name != "y" {
			t.Errorf("wildcard list with %+v: %v %v", opts, err, l)
		}
	}
}
