package registry

import (
	"maps"
	"math"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func defaultDeployment(d *appsv1.Deployment) {
	setIfNil(&d.Spec.Replicas, 1)
	st := &d.Spec.Strategy
	setIfEmpty(&st.Type, appsv1.RollingUpdateDeploymentStrategyType)
	if st.Type == appsv1.RollingUpdateDeploymentStrategyType {
		setIfNil(&st.RollingUpdate, appsv1.RollingUpdateDeployment{})
		setIfNil(&st.RollingUpdate.MaxUnavailable, intstr.FromString("25%"))
		setIfNil(&st.RollingUpdate.MaxSurge, intstr.FromString("25%"))
	}
	setIfNil(&d.Spec.RevisionHistoryLimit, 10)
	setIfNil(&d.Spec.ProgressDeadlineSeconds, 600)
	defaultPodTemplateSpec(&d.Spec.Template)
}

func defaultReplicaSet(rs *appsv1.ReplicaSet) {
	setIfNil(&rs.Spec.Replicas, 1)
	defaultPodTemplateSpec(&rs.Spec.Template)
}

func defaultStatefulSet(ss *appsv1.StatefulSet) {
	s := &ss.Spec
	setIfEmpty(&s.PodManagementPolicy, appsv1.OrderedReadyPodManagement)
	if s.UpdateStrategy.Type == "" {
		s.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
		setIfNil(&s.UpdateStrategy.RollingUpdate, appsv1.RollingUpdateStatefulSetStrategy{})
	}
	// An explicit RollingUpdate type without parameters stays without them;
	// only parameters that are there get their partition. maxUnavailable is
	// left unset: it is defaulted only with the MaxUnavailableStatefulSet
	// gate, off in 1.33.
	if s.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType && s.UpdateStrategy.RollingUpdate != nil {
		setIfNil(&s.UpdateStrategy.RollingUpdate.Partition, 0)
	}
	setIfNil(&s.PersistentVolumeClaimRetentionPolicy, appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{})
	setIfEmpty(&s.PersistentVolumeClaimRetentionPolicy.WhenDeleted, appsv1.RetainPersistentVolumeClaimRetentionPolicyType)
	setIfEmpty(&s.PersistentVolumeClaimRetentionPolicy.WhenScaled, appsv1.RetainPersistentVolumeClaimRetentionPolicyType)
	setIfNil(&s.Replicas, 1)
	setIfNil(&s.RevisionHistoryLimit, 10)
	defaultPodTemplateSpec(&s.Template)
	for i := range s.VolumeClaimTemplates {
		t := &s.VolumeClaimTemplates[i]
		// The claim templates are whole objects; upstream's conversion has
		// always written out their apiVersion and kind.
		t.APIVersion, t.Kind = "v1", "PersistentVolumeClaim"
		defaultPersistentVolumeClaim(t)
	}
}

func defaultDaemonSet(ds *appsv1.DaemonSet) {
	st := &ds.Spec.UpdateStrategy
	setIfEmpty(&st.Type, appsv1.RollingUpdateDaemonSetStrategyType)
	if st.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		setIfNil(&st.RollingUpdate, appsv1.RollingUpdateDaemonSet{})
		setIfNil(&st.RollingUpdate.MaxUnavailable, intstr.FromInt32(1))
		setIfNil(&st.RollingUpdate.MaxSurge, intstr.FromInt32(0))
	}
	setIfNil(&ds.Spec.RevisionHistoryLimit, 10)
	defaultPodTemplateSpec(&ds.Spec.Template)
}

func defaultJob(j *batchv1.Job) {
	s := &j.Spec
	// A job giving neither count runs one pod to completion. Completions
	// stays unset when only parallelism is given: that is a work-queue job,
	// done when any pod succeeds.
	if s.Completions == nil && s.Parallelism == nil {
		setIfNil(&s.Completions, 1)
	}
	setIfNil(&s.Parallelism, 1)
	if s.BackoffLimit == nil {
		// With per-index limits the global limit must not cut in first.
		if s.BackoffLimitPerIndex != nil {
			setIfNil(&s.BackoffLimit, math.MaxInt32)
		} else {
			setIfNil(&s.BackoffLimit, 6)
		}
	}
	if l := s.Template.Labels; l != nil && len(j.Labels) == 0 {
		j.Labels = maps.Clone(l)
	}
	setIfNil(&s.CompletionMode, batchv1.NonIndexedCompletion)
	setIfNil(&s.Suspend, false)
	if s.PodFailurePolicy != nil {
		for i := range s.PodFailurePolicy.Rules {
			conds := s.PodFailurePolicy.Rules[i].OnPodConditions
			for k := range conds {
				setIfEmpty(&conds[k].Status, corev1.ConditionTrue)
			}
		}
	}
	// Pods are replaced only once gone when a failure policy has to see
	// how they ended; otherwise as soon as they start terminating.
	if s.PodFailurePolicy != nil {
		setIfNil(&s.PodReplacementPolicy, batchv1.Failed)
	} else {
		setIfNil(&s.PodReplacementPolicy, batchv1.TerminatingOrFailed)
	}
	setIfNil(&s.ManualSelector, false)
	defaultPodTemplateSpec(&s.Template)
}

// defaultCronJob defaults the schedule's own fields and the pod template
// inside its job template, but not the job template's Job fields: upstream
// leaves those for when each Job is created.
func defaultCronJob(cj *batchv1.CronJob) {
	s := &cj.Spec
	setIfEmpty(&s.ConcurrencyPolicy, batchv1.AllowConcurrent)
	setIfNil(&s.Suspend, false)
	setIfNil(&s.SuccessfulJobsHistoryLimit, 3)
	setIfNil(&s.FailedJobsHistoryLimit, 1)
	defaultPodTemplateSpec(&s.JobTemplate.Spec.Template)
}
