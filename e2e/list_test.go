package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/pgtest"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// TestListSemantics covers paging, resourceVersion and resourceVersionMatch
// as kube-apiserver serves them, including expiry of old snapshots.
func TestListSemantics(t *testing.T) {
	url := startAPIServer(t, pgtest.NewDatabase(t), "--history-retention", "1s", "--watch-bookmark-interval", "1s")
	cs := kubernetes.NewForConfigOrDie(adminConfig(t, url))
	ctx := context.Background()
	namespace(t, cs, "lists")
	cms := cs.CoreV1().ConfigMaps("lists")

	// A quiet watch that allows bookmarks keeps learning the cluster's
	// progress, so it can resume without a 410 after others' writes.
	quiet, err := cs.CoreV1().Secrets("lists").Watch(ctx, metav1.ListOptions{AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)},
			Data: map[string]string{"v": "old"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	lastWrite, _ := cms.Get(ctx, "cm-4", metav1.GetOptions{})
	select {
	case ev := <-quiet.ResultChan():
		sec, ok := ev.Object.(*corev1.Secret)
		if ev.Type != watch.Bookmark || !ok || !newer(sec.ResourceVersion, lastWrite.ResourceVersion) && sec.ResourceVersion != lastWrite.ResourceVersion {
			t.Fatalf("want a BOOKMARK at or after %s, got %s %+v", lastWrite.ResourceVersion, ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no bookmark on a quiet watch")
	}
	quiet.Stop()

	// Page 1, then change the world, then the next pages: they show the
	// snapshot of page 1.
	page, err := cms.List(ctx, metav1.ListOptions{Limit: 2})
	if err != nil || len(page.Items) != 2 || page.Continue == "" || page.RemainingItemCount == nil || *page.RemainingItemCount != 3 {
		t.Fatalf("page 1: %v %+v", err, page.ListMeta)
	}
	snapshot := page.ResourceVersion
	cm4, _ := cms.Get(ctx, "cm-4", metav1.GetOptions{})
	cm4.Data["v"] = "new"
	if _, err := cms.Update(ctx, cm4, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cms.Delete(ctx, "cm-3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm-9"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range page.Items {
		names = append(names, it.Name)
	}
	for page.Continue != "" {
		page, err = cms.List(ctx, metav1.ListOptions{Limit: 2, Continue: page.Continue})
		if err != nil {
			t.Fatal(err)
		}
		if page.ResourceVersion != snapshot {
			t.Fatalf("later page at resourceVersion %s, first at %s", page.ResourceVersion, snapshot)
		}
		for _, it := range page.Items {
			names = append(names, it.Name)
			if it.Name == "cm-4" && it.Data["v"] != "old" {
				t.Fatalf("paged list shows a change made after its snapshot: %+v", it.Data)
			}
		}
	}
	if got := strings.Join(names, ","); got != "cm-0,cm-1,cm-2,cm-3,cm-4" {
		t.Fatalf("paged list = %s, want the snapshot cm-0..cm-4", got)
	}

	// Exact at the old resourceVersion; NotOlderThan serves the present.
	exact, err := cms.List(ctx, metav1.ListOptions{ResourceVersion: snapshot, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
	if err != nil || len(exact.Items) != 5 || exact.ResourceVersion != snapshot {
		t.Fatalf("exact list: %v %d items rv %s", err, len(exact.Items), exact.ResourceVersion)
	}
	now, err := cms.List(ctx, metav1.ListOptions{ResourceVersion: snapshot, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
	if err != nil || len(now.Items) != 5 || now.ResourceVersion == snapshot {
		t.Fatalf("not-older-than list: %v %d items rv %s", err, len(now.Items), now.ResourceVersion)
	}

	// A resourceVersion the server has not reached: 504 with a
	// ResourceVersionTooLarge cause after waiting, never stale data.
	start := time.Now()
	_, err = cms.List(ctx, metav1.ListOptions{ResourceVersion: "999999999", ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
	if !apierrors.IsTimeout(err) || !apierrors.HasStatusCause(err, metav1.CauseTypeResourceVersionTooLarge) {
		t.Fatalf("future resourceVersion: want Timeout with ResourceVersionTooLarge, got %v", err)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("future resourceVersion answered after %v, upstream waits ~3s first", d)
	}

	// Once compacted, the continue token is 410 Expired with a fresh token.
	page, err = cms.List(ctx, metav1.ListOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	old := page.ResourceVersion
	deadline := time.Now().Add(20 * time.Second)
	for {
		cm0, _ := cms.Get(ctx, "cm-0", metav1.GetOptions{})
		cm0.Data = map[string]string{"t": time.Now().String()}
		cms.Update(ctx, cm0, metav1.UpdateOptions{}) //nolint:errcheck // just moving time on
		resp, err := adminHTTP(t).Get(url + "/api/v1/namespaces/lists/configmaps?limit=2&continue=" + page.Continue)
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Reason   string `json:"reason"`
			Code     int    `json:"code"`
			Metadata struct {
				Continue string `json:"continue"`
			} `json:"metadata"`
		}
		json.NewDecoder(resp.Body).Decode(&st) //nolint:errcheck
		resp.Body.Close()
		if resp.StatusCode == http.StatusGone {
			if st.Reason != "Expired" || st.Metadata.Continue == "" {
				t.Fatalf("410 without Expired reason or fresh continue token: %+v", st)
			}
			next, err := cms.List(ctx, metav1.ListOptions{Limit: 2, Continue: st.Metadata.Continue})
			if err != nil || next.ResourceVersion == old {
				t.Fatalf("the inconsistent continue token should list from the present: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("continue token at %s never expired (status %d)", old, resp.StatusCode)
		}
		time.Sleep(300 * time.Millisecond)
	}
	_, err = cms.List(ctx, metav1.ListOptions{ResourceVersion: old, ResourceVersionMatch: metav1.ResourceVersionMatchExact})
	if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		t.Fatalf("exact list at a compacted resourceVersion: want 410, got %v", err)
	}
	// A watch from a compacted resourceVersion ends with a 410 ERROR
	// event, so informers relist.
	w, err := cms.Watch(ctx, metav1.ListOptions{ResourceVersion: old})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		st, ok := ev.Object.(*metav1.Status)
		if ev.Type != watch.Error || !ok || st.Code != http.StatusGone {
			t.Fatalf("watch from a compacted resourceVersion: got %s %+v, want ERROR 410", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch from a compacted resourceVersion sent nothing")
	}
	w.Stop()
}
