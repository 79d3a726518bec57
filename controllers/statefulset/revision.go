package statefulset

import (
	"bytes"
	"encoding/json"

	"github.com/pgkube/pgkube/controllers/framework"
	"github.com/pgkube/pgkube/controllers/history"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// RevisionHashLabel is the label ControllerRevisions carry their hash in.
const RevisionHashLabel = "controller.kubernetes.io/hash"

// newRevision is the ControllerRevision of set's current template.
func newRevision(set *appsv1.StatefulSet, revision int64, collisionCount *int32) (*appsv1.ControllerRevision, error) {
	patch, err := history.TemplatePatch(&set.Spec.Template)
	if err != nil {
		return nil, err
	}
	cr := history.New(set, controllerKind, set.Spec.Template.Labels, RevisionHashLabel, patch, revision, collisionCount)
	if len(set.Annotations) > 0 {
		cr.Annotations = map[string]string{}
		for k, v := range set.Annotations {
			cr.Annotations[k] = v
		}
		framework.StripCluster(cr)
	}
	return cr, nil
}

// applyRevision is set with the template the revision recorded.
func applyRevision(set *appsv1.StatefulSet, rev *appsv1.ControllerRevision) (*appsv1.StatefulSet, error) {
	clone := set.DeepCopy()
	orig, err := json.Marshal(clone)
	if err != nil {
		return nil, err
	}
	patched, err := strategicpatch.StrategicMergePatch(orig, rev.Data.Raw, &appsv1.StatefulSet{})
	if err != nil {
		return nil, err
	}
	var restored appsv1.StatefulSet
	if err := json.Unmarshal(patched, &restored); err != nil {
		return nil, err
	}
	clone.Spec = restored.Spec
	return clone, nil
}

func equalRevision(a, b *appsv1.ControllerRevision) bool {
	if a == nil || b == nil {
		return a == b
	}
	return bytes.Equal(a.Data.Raw, b.Data.Raw)
}

func nextRevision(sorted []*appsv1.ControllerRevision) int64 {
	if len(sorted) == 0 {
		return 1
	}
	return sorted[len(sorted)-1].Revision + 1
}

// sameAsLatest: restoring the latest revision onto set gives the proposed
// revision's template, though the bytes differ (written by another
// encoder): no new revision is needed.
func sameAsLatest(set *appsv1.StatefulSet, proposed, latest *appsv1.ControllerRevision) bool {
	restored, err := applyRevision(set, latest)
	if err != nil {
		return false
	}
	again, err := newRevision(restored, -1, nil)
	if err != nil {
		return false
	}
	return equalRevision(proposed, again)
}
