package manager

import (
	"github.com/pgkube/pgkube/controllers/deployment"
	"github.com/pgkube/pgkube/controllers/framework"
	"github.com/pgkube/pgkube/controllers/namespace"
	"github.com/pgkube/pgkube/controllers/replicaset"
	"github.com/pgkube/pgkube/controllers/serviceaccount"
	"github.com/pgkube/pgkube/controllers/statefulset"
)

// Controllers are the controllers the manager knows, by the names
// --controllers takes (kube-controller-manager's where there is one).
var Controllers = map[string]func(*framework.Context) (framework.Runnable, error){
	"namespace":              namespace.New,
	"serviceaccount":         serviceaccount.NewServiceAccounts,
	"root-ca-cert-publisher": serviceaccount.NewRootCAPublisher,
	"replicaset":             replicaset.NewReplicaSet,
	"replicationcontroller":  replicaset.NewReplicationController,
	"deployment":             deployment.New,
	"statefulset":            statefulset.New,
}

// DisabledByDefault are left out of "*".
var DisabledByDefault = []string{}
