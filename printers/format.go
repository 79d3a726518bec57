package printers

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
)

// Placeholders kubectl users are used to seeing in empty cells.
const (
	none    = "<none>"
	unknown = "<unknown>"
	unset   = "<unset>"
	pending = "<pending>"
)

// since renders how long ago t was, in kubectl's coarse human units.
func since(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return unknown
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func sinceMicro(t metav1.MicroTime, now time.Time) string {
	if t.IsZero() {
		return unknown
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func age(m *metav1.ObjectMeta, now time.Time) string { return since(m.CreationTimestamp, now) }

// containerCells renders the wide Containers and Images cells, which list the
// template's regular containers in spec order (init containers are omitted).
func containerCells(cs []corev1.Container) (names, images string) {
	n := make([]string, len(cs))
	im := make([]string, len(cs))
	for i := range cs {
		n[i], im[i] = cs[i].Name, cs[i].Image
	}
	return strings.Join(n, ","), strings.Join(im, ",")
}

// firstN collects at most limit items and remembers how many were offered,
// producing upstream's "a,b,c + 4 more..." shorthand for long lists.
type firstN struct {
	limit int
	items []string
	total int
}

func (f *firstN) add(s string) {
	if len(f.items) < f.limit {
		f.items = append(f.items, s)
	}
	f.total++
}

func (f *firstN) String() string {
	s := strings.Join(f.items, ",")
	if f.total > f.limit {
		return fmt.Sprintf("%s + %d more...", s, f.total-f.limit)
	}
	return s
}

// orUnset mirrors the discovery printers, which show "<unset>" for an empty list.
func orUnset(s string) string {
	if s == "" {
		return unset
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// boolPtrCell renders an optional boolean as a string column, the way the
// CronJob Suspend column does, distinguishing "not set" from false.
func boolPtrCell(b *bool) string {
	switch {
	case b == nil:
		return unset
	case *b:
		return "True"
	default:
		return "False"
	}
}

func derefInt32(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// sortedUnique joins the distinct non-empty values in lexical order.
func sortedUnique(values []string) string {
	seen := make(map[string]bool, len(values))
	var out []string
	for _, v := range values {
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// accessModesShort abbreviates PV access modes in a fixed order regardless of
// how they were listed, dropping duplicates.
func accessModesShort(modes []corev1.PersistentVolumeAccessMode) string {
	has := make(map[corev1.PersistentVolumeAccessMode]bool, len(modes))
	for _, m := range modes {
		has[m] = true
	}
	var out []string
	for _, m := range []struct {
		mode  corev1.PersistentVolumeAccessMode
		short string
	}{
		{corev1.ReadWriteOnce, "RWO"},
		{corev1.ReadOnlyMany, "ROX"},
		{corev1.ReadWriteMany, "RWX"},
		{corev1.ReadWriteOncePod, "RWOP"},
	} {
		if has[m.mode] {
			out = append(out, m.short)
		}
	}
	return strings.Join(out, ",")
}
