package daemonset

import (
	"bytes"

	"github.com/pgkube/pgkube/controllers/history"
	appsv1 "k8s.io/api/apps/v1"
)

// newRevision is the ControllerRevision of ds's current template.
func newRevision(ds *appsv1.DaemonSet, number int64) (*appsv1.ControllerRevision, error) {
	data, err := history.TemplatePatch(&ds.Spec.Template)
	if err != nil {
		return nil, err
	}
	return history.New(ds, controllerKind, ds.Spec.Template.Labels, HashLabel, data, number, ds.Status.CollisionCount), nil
}

func sameData(a, b *appsv1.ControllerRevision) bool { return bytes.Equal(a.Data.Raw, b.Data.Raw) }
