package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pgkube/pgkube/internal/pgtest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// rawWatch reads a JSON watch stream and records each event's type and
// resourceVersion, without decoding whole objects (so that hundreds of
// watchers fit on two cores).
type rawWatch struct {
	mu     sync.Mutex
	rvs    []int64
	types  []string
	err    error
	cancel context.CancelFunc
}

var rvKey = []byte(`"resourceVersion":"`)

func startRawWatch(t *testing.T, url string) *rawWatch {
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := adminHTTP(t).Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		cancel()
		t.Fatalf("watch %s: %d", url, resp.StatusCode)
	}
	w := &rawWatch{cancel: cancel}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			line := sc.Bytes()
			typ := ""
			if i := bytes.Index(line, []byte(`"type":"`)); i >= 0 {
				rest := line[i+8:]
				typ = string(rest[:bytes.IndexByte(rest, '"')])
			}
			i := bytes.Index(line, rvKey)
			if i < 0 {
				continue
			}
			rest := line[i+len(rvKey):]
			rv, err := strconv.ParseInt(string(rest[:bytes.IndexByte(rest, '"')]), 10, 64)
			w.mu.Lock()
			if err != nil && w.err == nil {
				w.err = fmt.Errorf("bad resourceVersion in %s", line)
			}
			w.rvs = append(w.rvs, rv)
			w.types = append(w.types, typ)
			w.mu.Unlock()
		}
	}()
	t.Cleanup(cancel)
	return w
}

func (w *rawWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.rvs)
}

// TestWatchFanOutAcrossServers: three API server processes on one
// database, 200 watchers spread over them, 5000 writes from concurrent
// writers through all three. Every watcher gets every event once, in
// resourceVersion order; a watch resumed from a resourceVersion in the
// middle gets exactly the events after it.
func TestWatchFanOutAcrossServers(t *testing.T) {
	urls := startAPIServers(t, pgtest.NewDatabase(t), 3)
	var wg sync.WaitGroup
	ctx := context.Background()
	clients := make([]kubernetes.Interface, len(urls))
	for i, u := range urls {
		clients[i] = kubernetes.NewForConfigOrDie(withQPS(adminConfig(t, u), 5000))
	}
	namespace(t, clients[0], "fan")
	start, err := clients[0].CoreV1().ConfigMaps("fan").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const watchers, writers, objects, updatesPerObject = 200, 8, 1000, 4
	ws := make([]*rawWatch, watchers)
	for i := range ws {
		ws[i] = startRawWatch(t, urls[i%len(urls)]+"/api/v1/namespaces/fan/configmaps?watch=true&resourceVersion="+start.ResourceVersion)
	}

	var mu sync.Mutex
	var written []int64
	errs := make(chan error, writers)
	for wr := 0; wr < writers; wr++ {
		wg.Add(1)
		go func(wr int) {
			defer wg.Done()
			cs := clients[wr%len(clients)]
			for o := wr; o < objects; o += writers {
				cm, err := cs.CoreV1().ConfigMaps("fan").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprint("cm-", o)}}, metav1.CreateOptions{})
				if err != nil {
					errs <- err
					return
				}
				rvs := []string{cm.ResourceVersion}
				for u := 0; u < updatesPerObject; u++ {
					cm.Data = map[string]string{"u": fmt.Sprint(u)}
					if cm, err = cs.CoreV1().ConfigMaps("fan").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
						errs <- err
						return
					}
					rvs = append(rvs, cm.ResourceVersion)
				}
				mu.Lock()
				for _, rv := range rvs {
					n, _ := strconv.ParseInt(rv, 10, 64)
					written = append(written, n)
				}
				mu.Unlock()
			}
		}(wr)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := objects * (1 + updatesPerObject)
	if len(written) != total {
		t.Fatalf("%d writes, want %d", len(written), total)
	}
	sort.Slice(written, func(i, j int) bool { return written[i] < written[j] })

	deadline := time.Now().Add(60 * time.Second)
	for i, w := range ws {
		for w.count() < total && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		w.mu.Lock()
		got := append([]int64(nil), w.rvs...)
		w.mu.Unlock()
		if len(got) != total {
			t.Fatalf("watcher %d (server %d) got %d events, want %d", i, i%len(urls), len(got), total)
		}
		for j := range got {
			if got[j] != written[j] {
				t.Fatalf("watcher %d: event %d has resourceVersion %d, want %d (out of order, missing or doubled)", i, j, got[j], written[j])
			}
		}
		added := 0
		for _, typ := range w.types {
			if typ == "ADDED" {
				added++
			} else if typ != "MODIFIED" {
				t.Fatalf("watcher %d: unexpected %s event", i, typ)
			}
		}
		if added != objects {
			t.Fatalf("watcher %d: %d ADDED events, want %d", i, added, objects)
		}
	}

	// Resume from the middle: exactly the events after it.
	mid := written[total/2]
	r := startRawWatch(t, urls[1]+"/api/v1/namespaces/fan/configmaps?watch=true&resourceVersion="+strconv.FormatInt(mid, 10))
	want := written[total/2+1:]
	for r.count() < len(want) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // anything extra would show up now
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.rvs) != len(want) || r.rvs[0] != want[0] || r.rvs[len(r.rvs)-1] != want[len(want)-1] {
		t.Fatalf("resumed watch got %d events (%v…), want %d from %d", len(r.rvs), r.rvs[:min(3, len(r.rvs))], len(want), want[0])
	}
}
