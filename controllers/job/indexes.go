package job

import (
	"sort"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// noIndex is the completion index of a pod without a valid one.
const noIndex = -1

// completionIndexEnv is the variable Indexed Jobs' containers find their
// index in.
const completionIndexEnv = "JOB_COMPLETION_INDEX"

func isIndexed(j *batchv1.Job) bool {
	return j.Spec.CompletionMode != nil && *j.Spec.CompletionMode == batchv1.IndexedCompletion
}

// completionIndex is the pod's index from its annotation, or noIndex.
func completionIndex(p *corev1.Pod) int {
	v, ok := p.Annotations[batchv1.JobCompletionIndexAnnotation]
	if !ok {
		return noIndex
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 {
		return noIndex
	}
	return i
}

// validIndex: the pod has an index below completions.
func validIndex(j *batchv1.Job, p *corev1.Pod) (int, bool) {
	ix := completionIndex(p)
	return ix, ix != noIndex && j.Spec.Completions != nil && ix < int(*j.Spec.Completions)
}

// interval is a run of indexes, First to Last included.
type interval struct{ First, Last int }

// intervals are sorted, disjoint, non-adjacent runs of indexes: the form of
// status.completedIndexes ("1,3-5,7").
type intervals []interval

// parseIntervals reads "1,3-5,7", keeping indexes below completions.
func parseIntervals(s string, completions int) intervals {
	if s == "" {
		return nil
	}
	var out intervals
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(a)
		if err != nil {
			continue
		}
		if first >= completions {
			break
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(b); err != nil {
				continue
			}
			last = min(last, completions-1)
		}
		if n := len(out); n > 0 && out[n-1].Last+1 >= first {
			out[n-1].Last = max(out[n-1].Last, last)
			continue
		}
		out = append(out, interval{first, last})
	}
	return out
}

// String writes the intervals as status.completedIndexes does: a run of
// two is written "a,b", longer ones "a-b".
func (iv intervals) String() string {
	var b strings.Builder
	for _, v := range iv {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(v.First))
		switch {
		case v.Last == v.First+1:
			b.WriteByte(',')
			b.WriteString(strconv.Itoa(v.Last))
		case v.Last > v.First:
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(v.Last))
		}
	}
	return b.String()
}

func (iv intervals) total() int {
	n := 0
	for _, v := range iv {
		n += v.Last - v.First + 1
	}
	return n
}

func (iv intervals) has(ix int) bool {
	i := sort.Search(len(iv), func(i int) bool { return iv[i].Last >= ix })
	return i < len(iv) && iv[i].First <= ix
}

// with is iv with more indexes (in any order).
func (iv intervals) with(ixs []int) intervals {
	all := make([]interval, 0, len(iv)+len(ixs))
	all = append(all, iv...)
	for _, ix := range ixs {
		all = append(all, interval{ix, ix})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].First < all[j].First })
	var out intervals
	for _, v := range all {
		if n := len(out); n > 0 && out[n-1].Last+1 >= v.First {
			out[n-1].Last = max(out[n-1].Last, v.Last)
			continue
		}
		out = append(out, v)
	}
	return out
}

// succeededIndexes are the indexes completed before (status) and now
// (pods that succeeded and are still tracked).
func succeededIndexes(j *batchv1.Job, pods []*corev1.Pod) (prev, now intervals) {
	prev = parseIntervals(j.Status.CompletedIndexes, int(*j.Spec.Completions))
	var add []int
	for _, p := range pods {
		if ix, ok := validIndex(j, p); ok && p.Status.Phase == corev1.PodSucceeded && hasFinalizer(p) {
			add = append(add, ix)
		}
	}
	return prev, prev.with(add)
}

func indexesOf(pods []*corev1.Pod) []int {
	s := sets.New[int]()
	for _, p := range pods {
		if ix := completionIndex(p); ix != noIndex {
			s.Insert(ix)
		}
	}
	return sets.List(s)
}

// firstPendingIndexes are the lowest count indexes below completions that
// neither succeeded nor have an active pod (nor a terminating one, when
// pods are replaced only once failed).
func firstPendingIndexes(sc *syncCtx, count, completions int) []int {
	if count <= 0 {
		return nil
	}
	busy := sc.succeededIdx.with(indexesOf(sc.active))
	if onlyReplaceFailed(sc.job) {
		busy = busy.with(indexesOf(terminatingPods(sc.pods)))
	}
	var out []int
	for ix := 0; ix < completions && len(out) < count; ix++ {
		if !busy.has(ix) {
			out = append(out, ix)
		}
	}
	return out
}

// duplicateIndexPods splits active pods of an Indexed Job into those to
// remove anyway (no valid index, an index beyond completions, all but the
// best pod of a repeated index) and the rest.
func duplicateIndexPods(j *batchv1.Job, pods []*corev1.Pod) (rm, keep []*corev1.Pod) {
	byIndex := map[int][]*corev1.Pod{}
	for _, p := range pods {
		ix, ok := validIndex(j, p)
		if !ok {
			rm = append(rm, p)
			continue
		}
		byIndex[ix] = append(byIndex[ix], p)
	}
	ixs := make([]int, 0, len(byIndex))
	for ix := range byIndex {
		ixs = append(ixs, ix)
	}
	sort.Ints(ixs)
	for _, ix := range ixs {
		ps := byIndex[ix]
		sortForRemoval(ps)
		rm = append(rm, ps[:len(ps)-1]...)
		keep = append(keep, ps[len(ps)-1])
	}
	return rm, keep
}

// addCompletionIndexEnv gives every container JOB_COMPLETION_INDEX from
// the pod's index label.
func addCompletionIndexEnv(t *corev1.PodTemplateSpec) {
	add := func(c *corev1.Container) {
		for _, e := range c.Env {
			if e.Name == completionIndexEnv {
				return
			}
		}
		c.Env = append(c.Env, corev1.EnvVar{Name: completionIndexEnv, ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['" + batchv1.JobCompletionIndexAnnotation + "']"},
		}})
	}
	for i := range t.Spec.InitContainers {
		add(&t.Spec.InitContainers[i])
	}
	for i := range t.Spec.Containers {
		add(&t.Spec.Containers[i])
	}
}

// maxGeneratedNameLength is how much of a generateName the server keeps.
const maxGeneratedNameLength = 63 - 5

// indexedGenerateName is "job-<index>-", shortened to fit.
func indexedGenerateName(job string, ix int) string {
	suffix := "-" + strconv.Itoa(ix) + "-"
	p := job + suffix
	if len(p) > maxGeneratedNameLength {
		p = job[:maxGeneratedNameLength-len(suffix)] + suffix
	}
	return p
}
