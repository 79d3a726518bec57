package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgkube/pgkube/embedpg"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/features"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// watchListGate switches client-go's WatchListClient feature, which
// decides whether a new reflector streams its initial list.
type watchListGate struct {
	features.Gates
	on bool
}

func (g watchListGate) Enabled(f features.Feature) bool {
	if f == features.WatchListClient {
		return g.on
	}
	return g.Gates.Enabled(f)
}

// apiServerProc is a `pgkube apiserver` process that can be killed and
// started again on the same address.
type apiServerProc struct {
	t      *testing.T
	db     string
	listen string
	cmd    *exec.Cmd
	out    *strings.Builder
}

func (p *apiServerProc) start() {
	p.out = &strings.Builder{}
	certs, _ := testCerts(p.t)
	p.cmd = exec.Command(pgkubeBinary(p.t), "apiserver", "--database-url", p.db, "--listen", p.listen, "--cert-dir", certs)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if ready("https://" + p.listen) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("apiserver not ready:\n%s", p.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *apiServerProc) kill() {
	p.cmd.Process.Kill() //nolint:errcheck
	p.cmd.Wait()         //nolint:errcheck
}

// TestInformersSurviveRestarts runs client-go shared informers on pods and
// configmaps, with and without streaming lists (WatchList), while a writer
// creates, updates and deletes objects, the API server process is killed
// and restarted, and PostgreSQL is restarted under it. In the end every
// informer's cache equals what the database holds.
func TestInformersSurviveRestarts(t *testing.T) {
	dir := filepath.Join(tempDir(t), "pg")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pg, err := embedpg.Start(ctx, embedpg.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { pg.Stop() }() //nolint:errcheck
	api := &apiServerProc{t: t, db: pg.URL("pgkube"), listen: freePort(t)}
	api.start()
	defer api.kill()
	cfg := adminConfig(t, "https://"+api.listen)
	cs := kubernetes.NewForConfigOrDie(cfg)
	namespace(t, cs, "inf")

	// Informers of both kinds, before any data exists.
	defaults := features.FeatureGates()
	type informerSet struct {
		name    string
		factory informers.SharedInformerFactory
		pods    cache.SharedIndexInformer
		cms     cache.SharedIndexInformer
	}
	var sets []*informerSet
	for _, on := range []bool{true, false} {
		features.ReplaceFeatureGates(watchListGate{Gates: defaults, on: on})
		f := informers.NewSharedInformerFactoryWithOptions(kubernetes.NewForConfigOrDie(cfg), 0, informers.WithNamespace("inf"))
		s := &informerSet{name: fmt.Sprintf("watchlist=%v", on), factory: f,
			pods: f.Core().V1().Pods().Informer(), cms: f.Core().V1().ConfigMaps().Informer()}
		f.Start(ctx.Done())
		synced := f.WaitForCacheSync(ctx.Done())
		for typ, ok := range synced {
			if !ok {
				t.Fatalf("%s: informer for %v did not sync", s.name, typ)
			}
		}
		sets = append(sets, s)
	}
	features.ReplaceFeatureGates(defaults)

	// The writer keeps going through the restarts, retrying what fails
	// while the server or the database is down.
	var wg sync.WaitGroup
	stopWriting := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stopWriting:
				return
			default:
			}
			persist(func() error { return writeStep(ctx, cs, i) })
		}
	}()

	time.Sleep(time.Second)
	api.kill() // kill -9 of the API server
	time.Sleep(500 * time.Millisecond)
	api.start()
	time.Sleep(time.Second)
	if err := pg.Stop(); err != nil { // PostgreSQL restarts under a running API server
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if pg, err = embedpg.Start(ctx, embedpg.Options{DataDir: dir}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	close(stopWriting)
	wg.Wait()

	// The caches converge on the database.
	pods, err := cs.CoreV1().Pods("inf").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cms, err := cs.CoreV1().ConfigMaps("inf").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantPods, wantCMs := keysOf(pods.Items), keysOf(cms.Items)
	if !strings.Contains(wantCMs, "cm-") || !strings.Contains(wantPods, "pod-") {
		t.Fatalf("the writer wrote nothing: %s %s", wantCMs, wantPods)
	}
	for _, s := range sets {
		deadline := time.Now().Add(30 * time.Second)
		for {
			gotPods, gotCMs := storeKeys(s.pods.GetStore()), storeKeys(s.cms.GetStore())
			if gotPods == wantPods && gotCMs == wantCMs {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: cache never matched the database:\npods  got %s\n      want %s\ncms   got %s\n      want %s",
					s.name, gotPods, wantPods, gotCMs, wantCMs)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// writeStep is the i-th write of the informer test's writer: creates,
// updates and deletes of configmaps and pods, idempotent so a retry after
// an unknown outcome is safe.
func writeStep(ctx context.Context, cs kubernetes.Interface, i int) error {
	cms, pods := cs.CoreV1().ConfigMaps("inf"), cs.CoreV1().Pods("inf")
	name := fmt.Sprintf("cm-%d", i%40)
	switch i % 4 {
	case 0, 1:
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"i": fmt.Sprint(i)}}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		}
		if err != nil {
			return err
		}
		cm.Data = map[string]string{"i": fmt.Sprint(i)}
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return nil
		}
		return err
	case 2:
		err := cms.Delete(ctx, fmt.Sprintf("cm-%d", (i*7)%40), metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	default:
		pname := fmt.Sprintf("pod-%d", i%20)
		pod, err := pods.Get(ctx, pname, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = pods.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pname},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		}
		if err != nil {
			return err
		}
		if (i/4)%3 == 0 {
			err = pods.Delete(ctx, pname, metav1.DeleteOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		pod.Labels = map[string]string{"i": fmt.Sprint(i)}
		_, err = pods.Update(ctx, pod, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			return nil
		}
		return err
	}
}

func persist(f func() error) {
	for i := 0; i < 200; i++ {
		if f() == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func keysOf[T any, PT interface {
	*T
	metav1.Object
}](items []T) string {
	var keys []string
	for i := range items {
		o := PT(&items[i])
		keys = append(keys, o.GetName()+"@"+o.GetResourceVersion())
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func storeKeys(s cache.Store) string {
	var items []metav1.ObjectMeta
	for _, o := range s.List() {
		items = append(items, *o.(metav1.ObjectMetaAccessor).GetObjectMeta().(*metav1.ObjectMeta))
	}
	return keysOf(items)
}
