package job

import (
	"fmt"
	"slices"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
)

// matchFailurePolicy applies a Job's podFailurePolicy to a failed pod: the
// first matching rule decides. It answers the message failing the Job
// (FailJob), whether the failure counts against backoffLimit (all but
// Ignore), and the action taken (nil: no rule matched).
func matchFailurePolicy(pfp *batchv1.PodFailurePolicy, p *corev1.Pod) (*string, bool, *batchv1.PodFailurePolicyAction) {
	if pfp == nil {
		return nil, true, nil
	}
	for i, r := range pfp.Rules {
		action := r.Action
		var msg string
		switch {
		case r.OnExitCodes != nil:
			cs := matchExitCodes(&p.Status, r.OnExitCodes)
			if cs == nil {
				continue
			}
			msg = fmt.Sprintf("Container %s for pod %s/%s failed with exit code %v matching %v rule at index %d",
				cs.Name, p.Namespace, p.Name, cs.State.Terminated.ExitCode, r.Action, i)
		case r.OnPodConditions != nil:
			c := matchPodConditions(&p.Status, r.OnPodConditions)
			if c == nil {
				continue
			}
			msg = fmt.Sprintf("Pod %s/%s has condition %v matching %v rule at index %d", p.Namespace, p.Name, c.Type, r.Action, i)
		default:
			continue
		}
		switch action {
		case batchv1.PodFailurePolicyActionIgnore:
			return nil, false, &action
		case batchv1.PodFailurePolicyActionFailJob:
			return &msg, true, &action
		case batchv1.PodFailurePolicyActionCount, batchv1.PodFailurePolicyActionFailIndex:
			return nil, true, &action
		}
	}
	return nil, true, nil
}

func matchExitCodes(st *corev1.PodStatus, req *batchv1.PodFailurePolicyOnExitCodesRequirement) *corev1.ContainerStatus {
	for _, list := range [][]corev1.ContainerStatus{st.ContainerStatuses, st.InitContainerStatuses} {
		for i := range list {
			cs := &list[i]
			t := cs.State.Terminated
			if t == nil || t.ExitCode == 0 {
				continue
			}
			if req.ContainerName != nil && *req.ContainerName != cs.Name {
				continue
			}
			in := slices.Contains(req.Values, t.ExitCode)
			if req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && in ||
				req.Operator == batchv1.PodFailurePolicyOnExitCodesOpNotIn && !in {
				return cs
			}
		}
	}
	return nil
}

func matchPodConditions(st *corev1.PodStatus, pats []batchv1.PodFailurePolicyOnPodConditionsPattern) *corev1.PodCondition {
	for i := range st.Conditions {
		c := &st.Conditions[i]
		for _, pat := range pats {
			if c.Type == pat.Type && c.Status == pat.Status {
				return c
			}
		}
	}
	return nil
}

// matchSuccessPolicy: whether an Indexed Job's successPolicy is met by
// its succeeded indexes, and the message saying which rule.
func matchSuccessPolicy(sp *batchv1.SuccessPolicy, completions int32, succeeded intervals) (string, bool) {
	if sp == nil || len(succeeded) == 0 {
		return "", false
	}
	for i, r := range sp.Rules {
		if r.SucceededIndexes != nil {
			want := parseIntervals(*r.SucceededIndexes, int(completions))
			if len(want) == 0 {
				continue
			}
			n := 0
			for _, w := range want {
				for ix := w.First; ix <= w.Last; ix++ {
					if succeeded.has(ix) {
						n++
					}
				}
			}
			if n == want.total() || r.SucceededCount != nil && n >= int(*r.SucceededCount) {
				return fmt.Sprintf("Matched rules at index %d", i), true
			}
		} else if r.SucceededCount != nil && succeeded.total() >= int(*r.SucceededCount) {
			return fmt.Sprintf("Matched rules at index %d", i), true
		}
	}
	return "", false
}

// backoffRecord is a Job's failures since its last success, which delay
// the creation of replacement pods.
type backoffRecord struct {
	failuresAfterLastSuccess int32
	lastFailure              *time.Time
}

// nextBackoff is rec after the pods that newly succeeded and failed: a
// success resets the count, failures after the last success add up.
func nextBackoff(rec backoffRecord, succeeded, failed []*corev1.Pod) backoffRecord {
	sortByFinish(succeeded)
	sortByFinish(failed)
	if len(succeeded) == 0 {
		if len(failed) == 0 {
			return rec
		}
		t := finishTime(failed[len(failed)-1])
		return backoffRecord{failuresAfterLastSuccess: rec.failuresAfterLastSuccess + int32(len(failed)), lastFailure: &t}
	}
	out := backoffRecord{}
	lastSuccess := finishTime(succeeded[len(succeeded)-1])
	for i := len(failed) - 1; i >= 0; i-- {
		t := finishTime(failed[i])
		if !t.After(lastSuccess) {
			break
		}
		if out.lastFailure == nil {
			out.lastFailure = &t
		}
		out.failuresAfterLastSuccess++
	}
	return out
}

// remaining is how long pod creation still waits: base doubled for every
// failure after the first, capped at max, from the last failure.
func (rec backoffRecord) remaining(c clock.PassiveClock, base, maxDelay time.Duration) time.Duration {
	return Backoff(c.Now(), rec.failuresAfterLastSuccess, rec.lastFailure, base, maxDelay)
}

// Backoff is the delay left at now after failures (the last at last):
// base, doubled per further failure, capped at maxDelay.
func Backoff(now time.Time, failures int32, last *time.Time, base, maxDelay time.Duration) time.Duration {
	if failures == 0 || last == nil {
		return 0
	}
	d := base
	for i := int32(1); i < failures; i++ {
		d *= 2
		if d >= maxDelay {
			d = maxDelay
			break
		}
	}
	elapsed := now.Sub(*last)
	if d < elapsed {
		return 0
	}
	return d - elapsed
}

func sortByFinish(pods []*corev1.Pod) {
	sort.SliceStable(pods, func(i, j int) bool { return finishTime(pods[i]).Before(finishTime(pods[j])) })
}

// finishTime is when a pod finished: its containers' last termination,
// else when it stopped being Ready, else when it was deleted, else its
// creation.
func finishTime(p *corev1.Pod) time.Time {
	if t := containersFinished(p); t != nil {
		return *t
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionFalse && !c.LastTransitionTime.IsZero() {
			return c.LastTransitionTime.Time
		}
	}
	if p.DeletionTimestamp != nil {
		grace := int64(0)
		if p.DeletionGracePeriodSeconds != nil {
			grace = *p.DeletionGracePeriodSeconds
		}
		return p.DeletionTimestamp.Add(-time.Duration(grace) * time.Second)
	}
	return p.CreationTimestamp.Time
}

// containersFinished is the latest finishedAt of the pod's containers (and
// sidecars), nil unless all of them terminated.
func containersFinished(p *corev1.Pod) *time.Time {
	var latest *time.Time
	take := func(cs corev1.ContainerStatus) bool {
		t := cs.State.Terminated
		if t == nil || t.FinishedAt.IsZero() {
			return false
		}
		if latest == nil || latest.Before(t.FinishedAt.Time) {
			ft := t.FinishedAt.Time
			latest = &ft
		}
		return true
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !take(cs) {
			return nil
		}
	}
	sidecars := map[string]bool{}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecars[c.Name] = true
		}
	}
	for _, cs := range p.Status.InitContainerStatuses {
		if sidecars[cs.Name] && !take(cs) {
			return nil
		}
	}
	return latest
}
