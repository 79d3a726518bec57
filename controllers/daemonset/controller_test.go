package daemonset

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/pgkube/pgkube/controllers/framework"
)

// TestControllerWithFakeClientset: the controller against an in-memory
// API: pods for eligible nodes only, a revision, status, Events.
func TestControllerWithFakeClientset(t *testing.T) {
	ds := mkDS()
	ds.UID = "ds-uid"
	tainted := mkNode("b", nil, corev1.Taint{Key: "dedicated", Effect: corev1.TaintEffectNoExecute})
	cs := fake.NewClientset(ds, mkNode("a", nil), tainted)
	var n atomic.Int32
	cs.PrependReactor("create", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		obj := a.(k8stesting.CreateAction).GetObject().(metav1.Object)
		if obj.GetName() == "" && obj.GetGenerateName() != "" {
			obj.SetName(fmt.Sprintf("%s%d", obj.GetGenerateName(), n.Add(1)))
		}
		obj.SetUID(types.UID(fmt.Sprintf("uid-%d", n.Add(1))))
		return false, nil, nil
	})
	clients := framework.NewStaticClients("root", cs, map[string]kubernetes.Interface{"root": cs})
	rec := &framework.FakeRecorder{}
	f := framework.NewFactory(clients, 0)
	c, err := New(&framework.Context{Factory: f, Clients: clients, Recorder: rec, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f.Start(ctx)
	go c.Run(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		pods, _ := cs.CoreV1().Pods("ns").List(ctx, metav1.ListOptions{})
		got, _ := cs.AppsV1().DaemonSets("ns").Get(ctx, "ds", metav1.GetOptions{})
		revs, _ := cs.AppsV1().ControllerRevisions("ns").List(ctx, metav1.ListOptions{})
		// The status written with the create may predate the cache
		// seeing the pod: wait for the one written after.
		if len(pods.Items) == 1 && got.Status.DesiredNumberScheduled == 1 && got.Status.CurrentNumberScheduled == 1 && len(revs.Items) == 1 {
			p := pods.Items[0]
			if targetNode(&p) != "a" || p.Labels[HashLabel] != revs.Items[0].Labels[HashLabel] || metav1.GetControllerOf(&p).UID != "ds-uid" {
				t.Fatalf("pod %+v", p.ObjectMeta)
			}
			if got.Status.CurrentNumberScheduled != 1 || got.Status.NumberReady != 0 || got.Status.NumberUnavailable != 1 {
				t.Fatalf("status %+v", got.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods %d, status %+v, revisions %d", len(pods.Items), got.Status, len(revs.Items))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if evs := strings.Join(rec.List(), "\n"); !strings.Contains(evs, "Normal SuccessfulCreate Created pod: ds-") {
		t.Errorf("events: %s", evs)
	}
	// Taking the taint off node b gives it a pod.
	tainted.Spec.Taints = nil
	if _, err := cs.CoreV1().Nodes().Update(ctx, tainted, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		pods, _ := cs.CoreV1().Pods("ns").List(ctx, metav1.ListOptions{})
		if len(pods.Items) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods %d after untainting", len(pods.Items))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
