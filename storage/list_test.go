package storage

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
)

func TestListSelectors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	if err := s.EnsureCluster(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	type obj struct {
		key    Key
		labels map[string]string
		fields map[string]string
	}
	objs := []obj{
		{pod("ns2", "c"), nil, nil},
		{pod("ns1", "a"), map[string]string{"app": "web", "tier": "fe"}, map[string]string{"spec.nodeName": "n1", "status.phase": "Running"}},
		{pod("ns2", "a"), map[string]string{"app": "web", "tier": "be"}, map[string]string{"spec.nodeName": "n1", "status.phase": "Pending"}},
		{pod("ns1", "b"), map[string]string{"app": "db", "example.com/role": "primary"}, map[string]string{"spec.nodeName": "n2", "status.phase": "Running"}},
		// Not /pods, or not root, or not live: never listed below.
		{Key{Resource: "/configmaps", Namespace: "ns1", Name: "a"}, map[string]string{"app": "web"}, nil},
		{pod("ns1", "gone"), map[string]string{"app": "web"}, map[string]string{"spec.nodeName": "n1"}},
	}
	stored := map[string]Object{}
	for _, o := range objs {
		c := create(t, s, "root", o.key, "first", o.labels, o.fields)
		stored[o.key.String()] = c
	}
	create(t, s, "other", pod("ns1", "a"), "", map[string]string{"app": "web"}, nil)
	remove(t, s, "root", pod("ns1", "gone"), 0)
	// An update shows its new version, with its new labels.
	upd := update(t, s, "root", pod("ns2", "c"), 0, "second", map[string]string{"app": "cache"}, map[string]string{"spec.nodeName": "n3"})
	stored[upd.Key.String()] = upd

	cases := []struct {
		ns, labels, fields string
		want               []string
	}{
		{"", "", "", []string{"ns1/a", "ns1/b", "ns2/a", "ns2/c"}},
		{"ns1", "", "", []string{"ns1/a", "ns1/b"}},
		{"ns3", "", "", nil},
		{"", "app=web", "", []string{"ns1/a", "ns2/a"}},
		{"", "app==web", "", []string{"ns1/a", "ns2/a"}},
		{"", "app=cache", "", []string{"ns2/c"}},
		{"", "app!=web", "", []string{"ns1/b", "ns2/c"}},
		{"", "tier!=fe", "", []string{"ns1/b", "ns2/a", "ns2/c"}}, // objects without the label match
		{"", "app in (web,db)", "", []string{"ns1/a", "ns1/b", "ns2/a"}},
		{"", "tier notin (fe)", "", []string{"ns1/b", "ns2/a", "ns2/c"}},
		{"", "tier notin (fe,be)", "", []string{"ns1/b", "ns2/c"}},
		{"", "tier", "", []string{"ns1/a", "ns2/a"}},
		{"", "!tier", "", []string{"ns1/b", "ns2/c"}},
		{"", "example.com/role=primary", "", []string{"ns1/b"}},
		{"", "example.com/role", "", []string{"ns1/b"}},
		{"", "app=web,tier=fe", "", []string{"ns1/a"}},
		{"", "app=web,tier!=fe", "", []string{"ns2/a"}},
		{"", "app=nothing", "", nil},
		{"ns2", "app=web", "", []string{"ns2/a"}},
		{"", "", "metadata.name=a", []string{"ns1/a", "ns2/a"}},
		{"", "", "metadata.name==a", []string{"ns1/a", "ns2/a"}},
		{"", "", "metadata.name!=a", []string{"ns1/b", "ns2/c"}},
		{"", "", "metadata.namespace=ns2", []string{"ns2/a", "ns2/c"}},
		{"", "", "metadata.namespace!=ns2", []string{"ns1/a", "ns1/b"}},
		{"", "", "spec.nodeName=n1", []string{"ns1/a", "ns2/a"}},
		{"", "", "spec.nodeName=n3", []string{"ns2/c"}},
		{"", "", "spec.nodeName!=n1", []string{"ns1/b", "ns2/c"}},
		{"", "", "status.phase!=Running", []string{"ns2/a", "ns2/c"}}, // ns2/c has no phase
		{"", "", "spec.nodeName=n1,status.phase=Running", []string{"ns1/a"}},
		{"", "", "spec.nodeName=", nil},
		{"", "app=web", "spec.nodeName=n1,metadata.namespace=ns2", []string{"ns2/a"}},
		{"ns1", "app", "spec.nodeName!=n1", []string{"ns1/b"}},
	}
	cur := currentRV(t, s, "root")
	for _, tc := range cases {
		opts := ListOptions{Resource: "/pods", Namespace: tc.ns}
		var err error
		if tc.labels != "" {
			opts.Labels = mustParseLabels(t, tc.labels)
		}
		if tc.fields != "" {
			if opts.Fields, err = fields.ParseSelector(tc.fields); err != nil {
				t.Fatal(err)
			}
		}
		l, err := s.List(ctx, "root", opts)
		if err != nil {
			t.Errorf("ns %q labels %q fields %q: %v", tc.ns, tc.labels, tc.fields, err)
			continue
		}
		if got := keysOf(l.Items); !slices.Equal(got, tc.want) {
			t.Errorf("ns %q labels %q fields %q: got %s, want %s", tc.ns, tc.labels, tc.fields, fmtKeys(got), fmtKeys(tc.want))
		}
		if l.RV != cur || l.More || l.Remaining != 0 {
			t.Errorf("ns %q labels %q fields %q: rv %d more %v remaining %d; want rv %d, no more", tc.ns, tc.labels, tc.fields, l.RV, l.More, l.Remaining, cur)
		}
		for _, o := range l.Items {
			want := stored[o.Key.String()]
			if o.Key != want.Key || o.RV != want.RV || o.Deleted || string(o.Data) != string(want.Data) ||
				!maps.Equal(o.Labels, want.Labels) || !maps.Equal(o.Fields, want.Fields) {
				t.Errorf("listed %+v, want %+v", o, want)
			}
		}
	}
	// Selectors that can match nothing.
	nothing, err := s.List(ctx, "root", ListOptions{Resource: "/pods", Labels: labels.Nothing()})
	if err != nil || len(nothing.Items) != 0 {
		t.Errorf("labels.Nothing() listed %s, %v", fmtKeys(keysOf(nothing.Items)), err)
	}
	everything, err := s.List(ctx, "root", ListOptions{Resource: "/pods", Labels: labels.Everything(), Fields: fields.Everything()})
	if err != nil || len(everything.Items) != 4 {
		t.Errorf("Everything() listed %s, %v", fmtKeys(keysOf(everything.Items)), err)
	}
}

// TestListPaging walks every page size over a snapshot that keeps changing
// underneath: each object comes exactly once, in (namespace, name) order,
// and More and Remaining tell the truth on every page.
func TestListPaging(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	// Names whose bytewise order differs from naive "natural" orders.
	names := []string{"a", "a-1", "a.1", "a1", "b", "b0", "b-0", "z"}
	var all []string
	var even []string
	for _, ns := range []string{"", "kube-system", "ns", "ns-1"} {
		for i, name := range names {
			lbl := map[string]string{"parity": []string{"even", "odd"}[i%2]}
			create(t, s, "root", Key{Resource: "/things", Namespace: ns, Name: name}, "", lbl, nil)
			all = append(all, ns+"/"+name)
			if i%2 == 0 {
				even = append(even, ns+"/"+name)
			}
		}
	}
	// (namespace, name) order, which is not the order of the joined
	// strings: "ns" < "ns-1", but "ns-1/a" < "ns/a".
	byKey := func(a, b string) int {
		an, aname, _ := strings.Cut(a, "/")
		bn, bname, _ := strings.Cut(b, "/")
		return cmp.Or(cmp.Compare(an, bn), cmp.Compare(aname, bname))
	}
	slices.SortFunc(all, byKey)
	slices.SortFunc(even, byKey)
	snapshot := currentRV(t, s, "root")
	evenSel := labels.SelectorFromSet(labels.Set{"parity": "even"})

	// mutate changes the data between pages: with the snapshot pinned
	// (AtRV), pages must not notice.
	step := 0
	mutate := func() {
		step++
		create(t, s, "root", Key{Resource: "/things", Namespace: "ns", Name: fmt.Sprintf("new-%d", step)}, "", map[string]string{"parity": "even"}, nil)
		if step <= 4 {
			// Delete something late in the order, and update another.
			remove(t, s, "root", Key{Resource: "/things", Namespace: "ns-1", Name: names[len(names)-step]}, 0)
			update(t, s, "root", Key{Resource: "/things", Namespace: "ns-1", Name: names[step-1]}, 0, "", map[string]string{"parity": "odd"}, nil)
		}
	}

	for _, tc := range []struct {
		sel  labels.Selector
		want []string
	}{{nil, all}, {evenSel, even}} {
		for _, limit := range []int64{1, 2, 3, 7, int64(len(tc.want)) - 1, int64(len(tc.want)), int64(len(tc.want)) + 1} {
			for _, pinned := range []bool{false, true} {
				name := fmt.Sprintf("sel=%v limit=%d pinned=%v", tc.sel, limit, pinned)
				opts := ListOptions{Resource: "/things", Labels: tc.sel, Limit: limit, CountRemaining: true}
				want := tc.want
				if pinned {
					opts.AtRV = snapshot
				} else {
					// Unpinned, the first page reads the present, which
					// earlier runs have changed; the continuation then
					// carries that page's resourceVersion.
					l, err := s.List(ctx, "root", ListOptions{Resource: "/things", Labels: tc.sel})
					if err != nil {
						t.Fatal(err)
					}
					want = keysOf(l.Items)
				}
				var got []string
				for page := 0; ; page++ {
					if page > len(want)+1 {
						t.Fatalf("%s: paging does not end", name)
					}
					l, err := s.List(ctx, "root", opts)
					if err != nil {
						t.Fatalf("%s page %d: %v", name, page, err)
					}
					if pinned && l.RV != snapshot {
						t.Errorf("%s page %d: rv %d, want the pinned %d", name, page, l.RV, snapshot)
					}
					if int64(len(l.Items)) > limit {
						t.Errorf("%s page %d: %d items over the limit", name, page, len(l.Items))
					}
					got = append(got, keysOf(l.Items)...)
					left := int64(len(want) - len(got))
					if l.More != (left > 0) {
						t.Errorf("%s page %d: More = %v with %d left", name, page, l.More, left)
					}
					if l.More && l.Remaining != left {
						t.Errorf("%s page %d: Remaining = %d, want %d", name, page, l.Remaining, left)
					}
					if !l.More {
						if l.Remaining != 0 {
							t.Errorf("%s page %d: last page has Remaining %d", name, page, l.Remaining)
						}
						break
					}
					last := l.Items[len(l.Items)-1]
					opts.AtRV, opts.AfterNamespace, opts.AfterName = l.RV, last.Namespace, last.Name
					if pinned {
						mutate()
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: pages gave %s, want %s", name, fmtKeys(got), fmtKeys(want))
				}
			}
		}
		// Without CountRemaining, nothing is counted.
		l, err := s.List(ctx, "root", ListOptions{Resource: "/things", Labels: tc.sel, Limit: 1, AtRV: snapshot})
		if err != nil || !l.More || l.Remaining != 0 {
			t.Errorf("no CountRemaining: more %v remaining %d err %v", l.More, l.Remaining, err)
		}
	}
	if step == 0 {
		t.Fatal("the data never changed between pages; the test proves less than it claims")
	}
}

// TestListAtRV reads the exact state at past resourceVersions.
func TestListAtRV(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	x, y, z := pod("ns", "x"), pod("ns", "y"), pod("ns", "z")
	create(t, s, "root", x, "x1", map[string]string{"v": "1"}, map[string]string{"spec.nodeName": "n1"})    // 1
	create(t, s, "root", y, "y1", nil, nil)                                                                 // 2
	update(t, s, "root", x, 1, "x2", map[string]string{"v": "2"}, map[string]string{"spec.nodeName": "n2"}) // 3
	remove(t, s, "root", y, 2)                                                                              // 4
	create(t, s, "root", z, "z1", nil, nil)                                                                 // 5
	remove(t, s, "root", z, 5)                                                                              // 6
	create(t, s, "root", y, "y2", nil, nil)                                                                 // 7
	create(t, s, "root", Key{Resource: "/configmaps", Namespace: "ns", Name: "x"}, "cm", nil, nil)          // 8

	type item struct {
		name  string
		rv    int64
		value string
	}
	states := map[int64][]item{
		1: {{"x", 1, "x1"}},
		2: {{"x", 1, "x1"}, {"y", 2, "y1"}},
		3: {{"x", 3, "x2"}, {"y", 2, "y1"}},
		4: {{"x", 3, "x2"}},
		5: {{"x", 3, "x2"}, {"z", 5, "z1"}},
		6: {{"x", 3, "x2"}},
		7: {{"x", 3, "x2"}, {"y", 7, "y2"}},
		8: {{"x", 3, "x2"}, {"y", 7, "y2"}},
	}
	for at := int64(0); at <= 8; at++ {
		l, err := s.List(ctx, "root", ListOptions{Resource: "/pods", AtRV: at})
		if err != nil {
			t.Errorf("at %d: %v", at, err)
			continue
		}
		wantRV := at
		if at == 0 {
			wantRV = 8 // AtRV 0: the present
		}
		if l.RV != wantRV {
			t.Errorf("at %d: result rv %d, want %d", at, l.RV, wantRV)
		}
		want := states[wantRV]
		var got []item
		for _, o := range l.Items {
			got = append(got, item{o.Name, o.RV, decode(t, o.Data).Value})
		}
		if !slices.Equal(got, want) {
			t.Errorf("at %d: got %+v, want %+v", at, got, want)
		}
	}
	// Selectors apply to the version of the time, not the present one.
	for _, tc := range []struct {
		at             int64
		labels, fields string
		want           int
	}{
		{1, "v=1", "", 1}, {3, "v=1", "", 0}, {3, "v=2", "", 1}, {2, "v=2", "", 0},
		{2, "", "spec.nodeName=n1", 1}, {5, "", "spec.nodeName=n1", 0}, {5, "", "spec.nodeName=n2", 1},
	} {
		opts := ListOptions{Resource: "/pods", AtRV: tc.at}
		if tc.labels != "" {
			opts.Labels = mustParseLabels(t, tc.labels)
		}
		if tc.fields != "" {
			opts.Fields = fields.ParseSelectorOrDie(tc.fields)
		}
		l, err := s.List(ctx, "root", opts)
		if err != nil || len(l.Items) != tc.want {
			t.Errorf("at %d labels %q fields %q: %s, %v; want %d items", tc.at, tc.labels, tc.fields, fmtKeys(keysOf(l.Items)), err, tc.want)
		}
	}
	_, err := s.List(ctx, "root", ListOptions{Resource: "/pods", AtRV: 9})
	wantErr(t, "List beyond the current rv", err, ErrTooLarge)
	// Reads at old resourceVersions change nothing.
	if rv := currentRV(t, s, "root"); rv != 8 {
		t.Errorf("CurrentRV = %d after reads, want 8", rv)
	}
}

func mustParseLabels(t *testing.T, s string) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}
